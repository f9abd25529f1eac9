"""calc's ``defaults`` table (calc/families.py) equals transformers' config-class defaults, family by family.

A config.json that omits optional keys must be counted as transformers builds it. For every family a config with
*only* the family's required keys (small values) goes to calc (``resolve_config``) and to transformers 5.23.0
(``AutoConfig.for_model``; the model built from it on the meta device). Compared:

* every value calc fills in that the transformers config also has (under calc's key or a config.json alias);
* ``head_dim`` and the KV head count as the modeling code uses them (the built attention module and its
  projection shapes), since several config classes leave ``head_dim`` unset and the model derives it;
* the total parameter count.
"""

from __future__ import annotations

from typing import Any

import pytest

from calc.architecture import Architecture, resolve_config
from calc.families import FAMILIES, Family
from tests.verify.hf import build_meta, numel, transformers

# Small values for every key any family requires.
REQUIRED_VALUES: dict[str, int] = {
    "vocab_size": 100, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
    "num_attention_heads": 4, "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8,
    "moe_intermediate_size": 16,
}
# Families whose default num_key_value_heads is a fixed number need a head count it divides.
HEADS = {"mistral": 8, "mixtral": 8, "qwen2": 32, "qwen3": 32, "qwen2_moe": 16, "gemma": 16}

# Known calc bugs (strict xfail: they must fail until fixed). None open: deepseek_v2's q_lora_rank default
# (1536 in DeepseekV2Config, once None in calc) was one; the minimal deepseek_v2 config below guards it.
XFAIL_VALUES: dict[str, str] = {}
XFAIL_TOTAL: dict[str, str] = {}
XFAIL_SHAPES: dict[str, str] = {}


def minimal(model_type: str) -> dict[str, Any]:
    family = FAMILIES[model_type]
    mapping: dict[str, Any] = {"model_type": model_type}
    for key in family.required:
        mapping[key] = REQUIRED_VALUES[key]
    if model_type in HEADS:
        mapping["num_attention_heads"] = HEADS[model_type]
    return mapping


def _params(xfails: dict[str, str]):
    for mt in sorted(FAMILIES):
        marks = [pytest.mark.xfail(strict=True, reason=xfails[mt])] if mt in xfails else []
        yield pytest.param(mt, id=mt, marks=marks)


def _hf_names(family: Family, key: str) -> list[str]:
    """Names the transformers config may hold calc's canonical ``key`` under."""
    return [key] + [alias for alias, canonical in family.aliases.items() if canonical == key]


def _hf_value(hf_cfg, family: Family, key: str) -> tuple[bool, Any]:
    for name in _hf_names(family, key):
        try:
            return True, getattr(hf_cfg, name)
        except AttributeError:
            continue
    return False, None


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def test_minimal_configs_cover_every_family():
    assert set(HEADS) <= set(FAMILIES)
    for mt in FAMILIES:
        assert set(FAMILIES[mt].required) <= set(REQUIRED_VALUES), mt


@pytest.mark.parametrize("model_type", list(_params(XFAIL_VALUES)))
def test_resolved_defaults_equal_transformers_config(model_type):
    family = FAMILIES[model_type]
    mapping = minimal(model_type)
    ours = resolve_config(family, mapping).as_dict()
    hf_cfg = transformers.AutoConfig.for_model(**mapping)
    compared, differ = [], {}
    for key in sorted(set(family.defaults) | set(family.required)):
        if key == "head_dim" and model_type != "deepseek_v2":
            continue  # several config classes leave it None; compared against the modeling code below
        found, theirs = _hf_value(hf_cfg, family, key)
        if not found:
            continue
        compared.append(key)
        if _norm(ours[key]) != _norm(theirs):
            differ[key] = (ours[key], theirs)
    assert not differ, f"calc vs transformers defaults for {model_type}: {differ}"
    # the comparison must have reached the keys that decide shapes
    assert "tie_word_embeddings" in compared
    for key in family.required:
        assert key in compared, key
    for key in ("attention_bias", "mlp_bias", "qkv_bias", "bias", "num_local_experts", "num_experts",
                "n_routed_experts", "n_shared_experts", "multi_query", "new_decoder_architecture", "parallel_attn",
                "ffn_hidden_size", "num_kv_heads", "num_key_value_heads", "q_lora_rank", "first_k_dense_replace",
                "moe_intermediate_size", "shared_expert_intermediate_size", "decoder_sparse_step",
                "mlp_only_layers", "num_experts_per_tok"):
        if key in family.defaults and not (model_type in ("falcon", "gpt2") and key == "num_key_value_heads"):
            assert key in compared, key


def _attention(model):
    for name, module in model.named_modules():
        if name.endswith((".self_attn", ".self_attention", ".attn")):
            return module
    raise AssertionError("no attention module found")


def _first(model, suffix: str):
    for name, module in model.named_modules():
        if name.endswith(suffix):
            return module
    return None


@pytest.mark.parametrize("model_type", list(_params(XFAIL_SHAPES)))
def test_head_dim_and_kv_heads_equal_modeling_code(model_type):
    mapping = minimal(model_type)
    arch = Architecture.from_hf_config(mapping)
    c = arch.config
    model = build_meta(mapping)
    attn = _attention(model)
    heads = c.num_attention_heads

    if model_type == "deepseek_v2":  # MLA: head_dim is the rope part; shapes come from the MLA dims
        assert c.head_dim == model.config.head_dim
    else:
        modeling_head_dim = getattr(attn, "head_dim", None)
        assert modeling_head_dim is not None
        assert c.head_dim == modeling_head_dim
    q = _first(model, "self_attn.q_proj")
    if q is not None and model_type != "deepseek_v2":
        assert q.out_features == heads * c.head_dim
        k = _first(model, "self_attn.k_proj")
        assert k.out_features == arch.num_key_value_heads * c.head_dim
    qkv = _first(model, "self_attn.qkv_proj")
    if qkv is not None:
        assert qkv.out_features == (heads + 2 * arch.num_key_value_heads) * c.head_dim
    modeling_kv = getattr(attn, "num_key_value_heads", getattr(attn, "num_kv_heads", None))
    if modeling_kv is None:
        modeling_kv = getattr(model.config, "num_key_value_heads", None)
    if modeling_kv is not None:
        assert arch.num_key_value_heads == modeling_kv
    # every linear module calc lists has the shape the model built (first instance)
    params = dict(model.named_parameters())
    for m in arch.modules:
        if m.kind in ("experts", "router"):  # transformers v5 MoE: 3-D expert stacks, 2-D router weights
            suffix = m.name if m.kind == "experts" else m.name + ".weight"
            shape = next((tuple(p.shape) for n, p in params.items() if n.endswith("." + suffix)), None)
            want = (m.experts, m.out_features, m.in_features) if m.kind == "experts" else (m.out_features,
                                                                                            m.in_features)
            assert shape == want, m.name
            continue
        built = _first(model, m.name)
        assert built is not None, m.name
        if m.kind == "linear":
            assert (built.in_features, built.out_features, built.bias is not None) == (
                m.in_features, m.out_features, m.bias), m.name
        elif m.kind == "conv1d":  # GPT-2's Conv1D stores its weight as (in, out)
            assert (tuple(built.weight.shape), built.bias is not None) == ((m.in_features, m.out_features),
                                                                             m.bias), m.name


@pytest.mark.parametrize("model_type", list(_params(XFAIL_TOTAL)))
def test_total_params_of_minimal_config_equal_transformers(model_type):
    mapping = minimal(model_type)
    assert Architecture.from_hf_config(mapping).total_params == numel(build_meta(mapping))
