"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def llama_configs(draw, mlp_bias: bool = True):
    """A small, valid Llama ``config.json``: GQA (heads a multiple of KV heads), optional head_dim, tied or
    untied embeddings, optional attention bias and (when ``mlp_bias``) MLP bias."""
    kv = draw(st.integers(1, 8))
    heads = kv * draw(st.integers(1, 6))
    cfg = {
        "model_type": "llama",
        "vocab_size": draw(st.integers(1, 4000)),
        "hidden_size": heads * draw(st.integers(1, 48)),
        "intermediate_size": draw(st.integers(1, 1024)),
        "num_hidden_layers": draw(st.integers(1, 6)),
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "tie_word_embeddings": draw(st.booleans()),
        "attention_bias": draw(st.booleans()),
    }
    if mlp_bias:
        cfg["mlp_bias"] = draw(st.booleans())
    if draw(st.booleans()):
        cfg["head_dim"] = draw(st.sampled_from([8, 16, 64, 128]))
    return cfg
