"""The architecture model: what a config.json says a decoder holds, weight by weight.

Every expected number here comes from outside calc: a published parameter count, or a hand derivation
written out in the test from the model's config.json (shape of each matrix, times the layer count).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calc.architecture import Architecture
from calc.errors import CalcError
from calc.presets import get_preset
from tests.strategies import llama_configs


def preset_arch(preset_id: str) -> Architecture:
    return get_preset(preset_id).architecture


def llama(**overrides) -> dict:
    """A Llama-3.1-8B-shaped config.json (the published one, minus keys calc does not read)."""
    cfg = {
        "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
        "tie_word_embeddings": False,
    }
    cfg.update(overrides)
    return cfg


# -- published totals, re-derived by hand ------------------------------------------------------------

def test_llama_3_1_8b_total_is_meta_published_8_030_261_248():
    # Hand derivation from config.json (hidden 4096, 32 layers, 32 heads, 8 KV heads, head_dim 128,
    # intermediate 14336, vocab 128256, untied):
    embed_and_head = 128256 * 4096 * 2
    per_layer = (
        4096 * 4096               # q_proj
        + 2 * 4096 * (8 * 128)    # k_proj, v_proj: 8 KV heads x 128
        + 4096 * 4096             # o_proj
        + 3 * 4096 * 14336        # gate, up, down
        + 2 * 4096                # input / post-attention RMSNorm
    )
    by_hand = embed_and_head + 32 * per_layer + 4096  # + final norm
    assert by_hand == 8_030_261_248  # the count Meta / the HF model card publish
    assert preset_arch("llama-3.1-8b").total_params == by_hand
    assert Architecture.from_hf_config(llama()).total_params == by_hand


def test_ignoring_gqa_overcounts_llama_3_1_8b_as_8_84b():
    """A peer calculator that sizes k_proj/v_proj as hidden x hidden reports 8.84B; calc must not."""
    mha = Architecture.from_hf_config(llama(num_key_value_heads=32)).total_params
    # 32 layers x 2 matrices (k, v) x 4096 x (4096 - 1024) extra elements
    assert mha == 8_030_261_248 + 32 * 2 * 4096 * (4096 - 1024) == 8_835_567_616
    assert preset_arch("llama-3.1-8b").total_params != mha


def test_llama_2_7b_total_is_6_738_415_616():
    # MHA (no num_key_value_heads), intermediate 11008, vocab 32000, untied.
    by_hand = 32000 * 4096 * 2 + 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096) + 4096
    assert by_hand == 6_738_415_616
    assert preset_arch("llama-2-7b").total_params == by_hand


def test_tied_embeddings_are_counted_once_llama_3_2_1b():
    # hidden 2048, 16 layers, 32 heads x head_dim 64, 8 KV heads, intermediate 8192, vocab 128256, tied.
    per_layer = 2048 * 2048 + 2 * 2048 * (8 * 64) + 2048 * 2048 + 3 * 2048 * 8192 + 2 * 2048
    by_hand = 128256 * 2048 + 16 * per_layer + 2048  # one embedding table: lm_head shares it
    assert by_hand == 1_235_814_400  # HF shows "1.24B params"
    arch = preset_arch("llama-3.2-1b")
    assert arch.tie_word_embeddings
    assert arch.total_params == by_hand
    assert arch.lm_head_params == 0


def test_untying_the_embeddings_adds_exactly_one_vocab_by_hidden_table():
    tied = Architecture.from_hf_config(llama(tie_word_embeddings=True))
    untied = Architecture.from_hf_config(llama(tie_word_embeddings=False))
    assert untied.total_params - tied.total_params == 128256 * 4096


def test_qwen2_5_totals_match_keras_hub_published_counts():
    # KerasHub's Qwen2.5 presets publish "params": 494032768 (0.5B) and 3085938688 (3B).
    assert preset_arch("qwen2.5-0.5b").total_params == 494_032_768
    assert preset_arch("qwen2.5-3b").total_params == 3_085_938_688


def test_qwen2_5_3b_total_by_hand_includes_qkv_biases():
    # hidden 2048, 36 layers, 16 heads (head_dim 128), 2 KV heads, intermediate 11008, vocab 151936, tied.
    # Qwen2 puts a bias on q, k and v (not o).
    q, kv = 16 * 128, 2 * 128
    per_layer = (2048 * q + q) + 2 * (2048 * kv + kv) + q * 2048 + 3 * 2048 * 11008 + 2 * 2048
    assert preset_arch("qwen2.5-3b").total_params == 151936 * 2048 + 36 * per_layer + 2048


@pytest.mark.parametrize("preset_id, non_embedding", [
    # Gemma / Gemma 2 technical reports, Table 2 "non-embedding parameters"
    ("gemma-2b", 1_981_884_416),
    ("gemma-7b", 7_751_248_896),
    ("gemma-2-2b", 2_024_517_888),
    ("gemma-2-9b", 8_324_201_984),
    ("gemma-2-27b", 26_047_480_320),
])
def test_gemma_non_embedding_counts_match_the_technical_reports(preset_id, non_embedding):
    arch = preset_arch(preset_id)
    assert arch.tie_word_embeddings
    assert arch.total_params - arch.vocab_size * arch.hidden_size == non_embedding


def test_gpt2_small_total_is_124_439_808():
    # Conv1D layers with biases, LayerNorm with weight and bias, learned positions, tied lm_head.
    h = 768
    per_layer = ((h * 3 * h + 3 * h)        # c_attn
                 + (h * h + h)              # attn.c_proj
                 + (h * 4 * h + 4 * h)      # c_fc
                 + (4 * h * h + h)          # mlp.c_proj
                 + 2 * 2 * h)               # ln_1, ln_2
    by_hand = 50257 * h + 1024 * h + 12 * per_layer + 2 * h  # wte + wpe + layers + ln_f
    assert by_hand == 124_439_808  # the well-known "124M" GPT-2
    assert preset_arch("gpt2").total_params == by_hand


def test_mixtral_8x7b_total_is_46_7b_by_hand():
    # 8 experts of (gate, up, down) 4096 x 14336, router 4096 -> 8, GQA attention with 8 KV heads.
    per_layer = (2 * 4096 * 4096 + 2 * 4096 * 1024    # q, o, k, v
                 + 8 * 3 * 4096 * 14336               # experts
                 + 4096 * 8                           # router
                 + 2 * 4096)                          # norms
    by_hand = 32000 * 4096 * 2 + 32 * per_layer + 4096
    assert by_hand == 46_702_792_704  # Mistral: "46.7B total parameters"
    assert preset_arch("mixtral-8x7b").total_params == by_hand


def test_falcon_7b_multi_query_shares_one_k_and_one_v_head():
    # hidden 4544 = 71 heads x 64; multi_query: query_key_value = hidden + 2 x head_dim.
    arch = preset_arch("falcon-7b")
    qkv = arch.module("self_attention.query_key_value")
    assert (qkv.in_features, qkv.out_features) == (4544, 4544 + 2 * 64)
    assert arch.num_key_value_heads == 1
    ffn = 4 * 4544
    per_layer = 4544 * (4544 + 128) + 4544 * 4544 + 2 * 4544 * ffn + 2 * 4544  # one LayerNorm (w + b)
    assert arch.total_params == 65024 * 4544 + 32 * per_layer + 2 * 4544


# -- shapes ---------------------------------------------------------------------------------------------

def test_gqa_makes_k_and_v_smaller_than_q():
    arch = Architecture.from_hf_config(llama())
    q, k, v = (arch.module(f"self_attn.{n}_proj") for n in "qkv")
    assert q.out_features == 32 * 128
    assert k.out_features == v.out_features == 8 * 128  # num_key_value_heads x head_dim
    assert k.out_features < q.out_features


def test_without_num_key_value_heads_llama_is_multi_head():
    cfg = llama()
    del cfg["num_key_value_heads"]
    arch = Architecture.from_hf_config(cfg)
    assert arch.module("self_attn.k_proj").out_features == 4096


def test_mistral_nemo_q_proj_uses_head_dim_not_hidden_over_heads():
    # Mistral-Nemo: hidden 5120, 32 heads, head_dim 128 (not 5120/32 = 160).
    arch = preset_arch("mistral-nemo-12b")
    q = arch.module("self_attn.q_proj")
    assert (q.in_features, q.out_features) == (5120, 32 * 128)
    o = arch.module("self_attn.o_proj")
    assert (o.in_features, o.out_features) == (32 * 128, 5120)
    assert arch.module("self_attn.k_proj").out_features == 8 * 128


def test_phi3_fused_qkv_proj_holds_q_plus_two_kv():
    # Phi-3-medium: hidden 5120, 40 heads (head_dim 128), 10 KV heads.
    arch = preset_arch("phi-3-medium")
    qkv = arch.module("self_attn.qkv_proj")
    assert qkv.out_features == 40 * 128 + 2 * 10 * 128 == 7680
    assert arch.module("mlp.gate_up_proj").out_features == 2 * 17920


def test_qwen1_5_moe_stacks_60_experts_and_a_one_wide_shared_expert_gate():
    arch = preset_arch("qwen1.5-moe-a2.7b")
    gate_up = arch.module("mlp.experts.gate_up_proj")
    assert (gate_up.experts, gate_up.in_features, gate_up.out_features) == (60, 2048, 2 * 1408)
    assert gate_up.weight_params == 60 * 2048 * 2 * 1408
    seg = arch.module("mlp.shared_expert_gate")
    assert (seg.in_features, seg.out_features, seg.count) == (2048, 1, 24)


def test_deepseek_v2_lite_has_one_dense_layer_and_26_moe_layers():
    arch = preset_arch("deepseek-v2-lite")
    assert arch.module("mlp.gate_proj").count == 1          # first_k_dense_replace: 1
    assert arch.module("mlp.experts.gate_up_proj").count == 26
    assert arch.module("mlp.shared_experts.gate_proj").out_features == 2 * 1408
    # MLA without query compression (q_lora_rank null): q_proj is hidden -> heads x (128 + 64)
    assert arch.module("self_attn.q_proj").out_features == 16 * (128 + 64)
    assert arch.module("self_attn.kv_a_proj_with_mqa").out_features == 512 + 64


def test_deepseek_v2_without_q_lora_rank_uses_transformers_default_1536():
    cfg = {
        "model_type": "deepseek_v2", "vocab_size": 1000, "hidden_size": 2048, "intermediate_size": 4096,
        "num_hidden_layers": 2, "num_attention_heads": 16, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
        "qk_rope_head_dim": 64, "v_head_dim": 128, "moe_intermediate_size": 1408,
    }
    arch = Architecture.from_hf_config(cfg)
    assert arch.module("self_attn.q_a_proj").out_features == 1536


# -- config resolution and validation -------------------------------------------------------------------

def test_keys_calc_does_not_read_are_ignored():
    with_extras = llama(rope_theta=500000.0, architectures=["LlamaForCausalLM"], torch_dtype="bfloat16")
    assert Architecture.from_hf_config(with_extras).total_params == 8_030_261_248


@pytest.mark.parametrize("overrides, field", [
    ({"hidden_size": None}, "hidden_size"),
    ({"hidden_size": "4096"}, "hidden_size"),
    ({"num_attention_heads": 0}, "num_attention_heads"),
    ({"hidden_size": "4096", "head_dim": 128}, "hidden_size"),
    ({"num_attention_heads": 0, "head_dim": 128}, "num_attention_heads"),
    ({"hidden_size": 4096.0}, "hidden_size"),
    ({"num_hidden_layers": True}, "num_hidden_layers"),
    ({"num_hidden_layers": 0}, "num_hidden_layers"),
    ({"intermediate_size": -1}, "intermediate_size"),
    ({"num_key_value_heads": 5}, "num_key_value_heads"),
    ({"tie_word_embeddings": "yes"}, "tie_word_embeddings"),
    ({"vocab_size": 10**12}, "vocab_size"),
])
def test_bad_config_values_raise_an_error_naming_the_key(overrides, field):
    cfg = llama(**overrides)
    with pytest.raises(CalcError) as exc:
        Architecture.from_hf_config(cfg)
    assert exc.value.field == field
    assert field in str(exc.value)


def test_missing_required_key_is_named():
    cfg = llama()
    del cfg["intermediate_size"]
    with pytest.raises(CalcError, match="intermediate_size"):
        Architecture.from_hf_config(cfg)


def test_unsupported_model_type_lists_what_is_supported():
    with pytest.raises(CalcError, match="unsupported model_type 'bert'.*llama"):
        Architecture.from_hf_config({"model_type": "bert", "hidden_size": 768})


def test_gpt2_config_json_spellings_are_understood():
    arch = Architecture.from_hf_config({"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768, "n_layer": 12,
                                        "n_head": 12, "n_positions": 1024})
    assert arch.total_params == 124_439_808


# -- property: any Llama-shaped config matches the textbook formula -------------------------------------



@settings(max_examples=200, deadline=None)
@given(llama_configs(mlp_bias=True))
def test_any_llama_config_totals_the_textbook_formula(cfg):
    h, i, layers, vocab = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    hd = cfg.get("head_dim", h // cfg["num_attention_heads"])
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h
    if cfg["attention_bias"]:
        per_layer += q + 2 * kv + h
    if cfg["mlp_bias"]:
        per_layer += 2 * i + h
    embeddings = vocab * h * (1 if cfg["tie_word_embeddings"] else 2)
    assert Architecture.from_hf_config(cfg).total_params == embeddings + layers * per_layer + h
