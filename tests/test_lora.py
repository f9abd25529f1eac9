"""LoRA trainable-parameter counts, as PEFT 0.21.2 reports them.

A LoRA adapter on an ``out x in`` weight trains ``B`` (``out x r``) and ``A`` (``r x in``): ``r·(in+out)``
elements (Hu et al. 2021). Expected values are published numbers (PEFT's README) or hand derivations
written out here from the model's config.json.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calc.architecture import Architecture
from calc.errors import CalcError
from calc.lora import LoraSpec, count_lora, scaling
from calc.presets import get_preset
from tests.strategies import llama_configs


def count(preset_id: str, **spec):
    return count_lora(get_preset(preset_id).architecture, LoraSpec(**spec))


def one_layer_4096() -> Architecture:
    return Architecture.from_hf_config({
        "model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
        "num_hidden_layers": 1, "num_attention_heads": 32,
    })


# -- published and hand-derived counts ------------------------------------------------------------------

def test_one_4096_by_4096_projection_at_r16_trains_r_times_d_plus_k():
    c = count_lora(one_layer_4096(), LoraSpec(r=16, target_modules=("q_proj",)))
    assert c.trainable_params == 16 * (4096 + 4096) == 131_072


def test_peft_readme_qwen2_5_3b_r16_q_v_trains_3_686_400():
    # PEFT README (LoraConfig(r=16, lora_alpha=32), qwen2 default targets q_proj, v_proj):
    #   trainable params: 3,686,400 || all params: 3,089,625,088 || trainable%: 0.1193
    c = count("qwen2.5-3b", r=16, lora_alpha=32, target_modules=("q_proj", "v_proj"))
    # by hand: 36 layers x (q 2048->2048 + v 2048->2x128) at r=16
    assert 36 * 16 * ((2048 + 2048) + (2048 + 256)) == 3_686_400
    assert c.trainable_params == 3_686_400
    assert c.peft_all_params == 3_089_625_088
    assert round(c.trainable_percent, 4) == 0.1193


def test_qv_shortcut_means_q_proj_and_v_proj_on_llama_like_models():
    assert count("qwen2.5-3b", r=16, target_modules="qv").trainable_params == 3_686_400


def test_llama_3_2_3b_r32_q_v_trains_9_175_040():
    # 28 layers; q 3072->24x128, v 3072->8x128
    by_hand = 28 * 32 * ((3072 + 3072) + (3072 + 1024))
    assert by_hand == 9_175_040
    assert count("llama-3.2-3b", r=32, target_modules=("q_proj", "v_proj")).trainable_params == by_hand


def test_dora_adds_one_magnitude_per_output_row_llama_3_2_3b():
    # DoRA adds a magnitude vector of out_features per adapted matrix: 28 x (3072 + 1024)
    by_hand = 9_175_040 + 28 * (3072 + 1024)
    assert by_hand == 9_289_728
    c = count("llama-3.2-3b", r=32, target_modules=("q_proj", "v_proj"), use_dora=True)
    assert c.trainable_params == by_hand


def test_llama_3_2_1b_r8_q_only_trains_524_288():
    # 16 layers, q 2048 -> 32 x 64
    assert 16 * 8 * (2048 + 32 * 64) == 524_288
    c = count("llama-3.2-1b", r=8, target_modules=("q_proj",))
    assert c.trainable_params == 524_288
    # print_trainable_parameters' share: trainable / (base + adapter)
    assert c.trainable_percent == pytest.approx(100 * 524_288 / (1_235_814_400 + 524_288))


def test_llama_3_1_8b_all_linear_r16_by_hand():
    # per layer: q, o 4096x4096; k, v 4096->1024; gate, up 4096->14336; down 14336->4096
    per_layer = 16 * (2 * (4096 + 4096) + 2 * (4096 + 1024) + 3 * (4096 + 14336))
    assert count("llama-3.1-8b", r=16).trainable_params == 32 * per_layer == 41_943_040


# -- scaling --------------------------------------------------------------------------------------------

def test_lora_scales_the_update_by_alpha_over_r():
    assert LoraSpec(r=16, lora_alpha=32).scaling == 32 / 16 == 2.0
    assert scaling(8, 16) == 2.0


def test_rslora_scales_the_update_by_alpha_over_sqrt_r():
    assert LoraSpec(r=16, lora_alpha=32, use_rslora=True).scaling == 32 / math.sqrt(16) == 8.0
    assert scaling(64, 16, use_rslora=True) == 16 / 8


def test_rslora_does_not_change_the_parameter_count():
    plain = count("llama-3.2-1b", r=8, target_modules="attention")
    rs = count("llama-3.2-1b", r=8, target_modules="attention", use_rslora=True)
    assert plain.trainable_params == rs.trainable_params


# -- mixture of experts ---------------------------------------------------------------------------------

def test_mixtral_all_linear_gives_the_fused_experts_rank_2r():
    """PEFT 0.21.2 rewrites Mixtral's v4 names w1+w3 into the stacked gate_up_proj parameter at rank 2r.

    A stacked ``E x out x in`` parameter gets A of ``(E·r') x in`` and B of ``out x (E·r')``.
    """
    r, experts, hidden, inter = 16, 8, 4096, 14336
    c = count("mixtral-8x7b", r=r, lora_alpha=32)
    gate_up = next(m for m in c.modules if m.name == "mlp.experts.gate_up_proj")
    assert gate_up.r == 2 * r
    assert gate_up.lora_alpha == 2 * 32                   # alpha doubles with it: scaling stays alpha/r
    assert gate_up.lora_params == 32 * experts * 2 * r * (hidden + 2 * inter)
    down = next(m for m in c.modules if m.name == "mlp.experts.down_proj")
    assert down.lora_params == 32 * experts * r * (inter + hidden)
    per_layer = (r * (2 * (4096 + 4096) + 2 * (4096 + 1024))     # q, o, k, v
                 + r * (hidden + experts)                         # router gate 4096 -> 8
                 + experts * 2 * r * (hidden + 2 * inter)         # w1 + w3 -> gate_up_proj
                 + experts * r * (inter + hidden))                # w2 -> down_proj
    assert c.trainable_params == 32 * per_layer


def test_mixtral_w1_without_w3_is_refused_because_peft_fuses_them():
    with pytest.raises(CalcError, match="w1 cannot be targeted without w3"):
        count("mixtral-8x7b", target_modules=("w1",))


def test_mixtral_w1_w3_together_are_one_rank_2r_target():
    c = count("mixtral-8x7b", r=4, target_modules=("w1", "w3"))
    assert [m.name for m in c.modules] == ["mlp.experts.gate_up_proj"]
    assert c.trainable_params == 32 * 8 * (2 * 4) * (4096 + 2 * 14336)


def test_dora_on_moe_parameter_targets_is_refused():
    with pytest.raises(CalcError, match="DoRA") as exc:
        count("mixtral-8x7b", use_dora=True)
    assert exc.value.field == "use_dora"


def test_deepseek_v2_lite_all_linear_skips_dense_mlp_and_shared_experts():
    """PEFT 0.21.2 (``transformers_weight_conversion``) rewrites the names gate_proj/up_proj/down_proj into
    the routed experts' stacked parameters, so no nn.Linear of those names gets an adapter: the dense MLP of
    layer 0 (first_k_dense_replace: 1) and the shared experts of layers 1-26 stay untouched.
    """
    r = 16
    c = count("deepseek-v2-lite", r=r)
    names = {m.name for m in c.modules}
    assert not names & {"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "mlp.shared_experts.gate_proj",
                        "mlp.shared_experts.up_proj", "mlp.shared_experts.down_proj"}
    # MLA attention, all 27 layers: q 2048->16x192, kv_a 2048->512+64, kv_b 512->16x256, o 16x128->2048
    attention = r * ((2048 + 3072) + (2048 + 576) + (512 + 4096) + (2048 + 2048))
    # 26 MoE layers: router 2048->64, gate_up at 2r over 64 experts, down over 64 experts
    moe = r * (2048 + 64) + 64 * 2 * r * (2048 + 2 * 1408) + 64 * r * (1408 + 2048)
    assert c.trainable_params == 27 * attention + 26 * moe


def test_qwen1_5_moe_all_linear_reaches_shared_expert_but_not_routed_experts():
    """PEFT 0.21.2 has no rewrite for qwen2_moe: the stacked experts are 3-D parameters and the router a
    custom module, so all-linear only finds the nn.Linear layers, shared_expert_gate (hidden -> 1) included."""
    c = count("qwen1.5-moe-a2.7b", r=16)
    names = {m.name for m in c.modules}
    assert "mlp.shared_expert_gate" in names
    assert {"mlp.shared_expert.gate_proj", "mlp.shared_expert.up_proj", "mlp.shared_expert.down_proj"} <= names
    assert not names & {"mlp.experts.gate_up_proj", "mlp.experts.down_proj", "mlp.gate"}
    seg = next(m for m in c.modules if m.name == "mlp.shared_expert_gate")
    assert seg.lora_params == 24 * 16 * (2048 + 1)
    per_layer = 16 * (4 * (2048 + 2048) + 3 * (2048 + 5632) + (2048 + 1))  # MHA: k, v are 2048 wide
    assert c.trainable_params == 24 * per_layer


# -- GPT-2 naming, biases and modules_to_save ------------------------------------------------------------

def test_gpt2_c_proj_targets_both_attention_and_mlp_output():
    both = count("gpt2", r=8, target_modules=("c_proj",))
    assert {m.name for m in both.modules} == {"attn.c_proj", "mlp.c_proj"}
    assert both.trainable_params == 12 * 8 * ((768 + 768) + (3072 + 768))


def test_gpt2_attn_c_proj_targets_only_the_attention_output():
    one = count("gpt2", r=8, target_modules=("attn.c_proj",))
    assert [m.name for m in one.modules] == ["attn.c_proj"]
    assert one.trainable_params == 12 * 8 * (768 + 768)


def test_phi3_qv_shortcut_means_the_fused_qkv_proj():
    c = count("phi-3-medium", r=8, target_modules="qv")
    assert [m.name for m in c.modules] == ["self_attn.qkv_proj"]
    assert c.trainable_params == 40 * 8 * (5120 + (40 * 128 + 2 * 10 * 128))


GPT2_C_ATTN_LORA = 12 * 8 * (768 + 3 * 768)  # r=8 on c_attn 768 -> 2304, 12 layers


def test_gpt2_bias_lora_only_trains_the_biases_of_adapted_modules():
    c = count("gpt2", r=8, target_modules=("c_attn",), bias="lora_only")
    assert c.trainable_params == GPT2_C_ATTN_LORA + 12 * 3 * 768


def test_gpt2_bias_all_trains_every_bias_layernorms_included():
    # PEFT bias="all": every parameter whose name contains "bias". Per layer: c_attn 3h, attn.c_proj h,
    # c_fc 4h, mlp.c_proj h, ln_1 h, ln_2 h; plus ln_f h.
    h = 768
    all_biases = 12 * (3 * h + h + 4 * h + h + h + h) + h
    assert all_biases == 102_144
    c = count("gpt2", r=8, target_modules=("c_attn",), bias="all")
    assert c.trainable_params == GPT2_C_ATTN_LORA + all_biases


def test_bias_none_trains_no_bias():
    assert count("gpt2", r=8, target_modules=("c_attn",)).trainable_params == GPT2_C_ATTN_LORA


def test_modules_to_save_lm_head_copies_vocab_by_hidden_even_when_tied():
    c = count("gpt2", r=8, target_modules=("c_attn",), modules_to_save=("lm_head",))
    assert c.trainable_params == GPT2_C_ATTN_LORA + 50257 * 768
    # the copy is a new parameter: PEFT's all_param grows by it
    assert c.peft_all_params == 124_439_808 + GPT2_C_ATTN_LORA + 50257 * 768


def test_naming_lm_head_twice_in_modules_to_save_copies_it_once():
    c = count("gpt2", r=8, target_modules=("c_attn",), modules_to_save=("lm_head", "lm_head"))
    assert c.trainable_params == GPT2_C_ATTN_LORA + 50257 * 768


def test_modules_to_save_rejects_a_non_embedding_module():
    with pytest.raises(CalcError) as exc:
        count("gpt2", target_modules=("c_attn",), modules_to_save=("c_fc",))
    assert exc.value.field == "modules_to_save"


# -- bad specs ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, field", [
    ({"r": 0}, "r"),
    ({"r": -1}, "r"),
    ({"r": 1.5}, "r"),
    ({"r": True}, "r"),
    ({"lora_alpha": 0}, "lora_alpha"),
    ({"lora_alpha": float("nan")}, "lora_alpha"),
    ({"bias": "bogus"}, "bias"),
    ({"target_modules": ()}, "target_modules"),
])
def test_invalid_spec_fields_are_named(kwargs, field):
    with pytest.raises(CalcError) as exc:
        LoraSpec(**kwargs)
    assert exc.value.field == field


def test_a_module_name_the_family_lacks_is_an_error_not_silently_ignored():
    with pytest.raises(CalcError, match="no module 'w1'") as exc:
        count("llama-3.1-8b", target_modules=("q_proj", "w1"))
    assert exc.value.field == "target_modules"


# -- properties over random Llama-shaped configs ---------------------------------------------------------

LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")




def shapes(cfg: dict) -> dict[str, tuple[int, int]]:
    """(in, out) of each Llama projection, from the config by hand."""
    h, i = cfg["hidden_size"], cfg["intermediate_size"]
    hd = cfg.get("head_dim", h // cfg["num_attention_heads"])
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


targets = st.lists(st.sampled_from(LLAMA_TARGETS), min_size=1, max_size=7, unique=True)
ranks = st.integers(1, 256)
PROPS = settings(max_examples=200, deadline=None)


@PROPS
@given(llama_configs(mlp_bias=False), targets, ranks)
def test_lora_count_is_r_times_in_plus_out_summed_over_targets(cfg, names, r):
    layers = cfg["num_hidden_layers"]
    expected = sum(layers * r * sum(shapes(cfg)[n]) for n in names)
    c = count_lora(Architecture.from_hf_config(cfg), LoraSpec(r=r, target_modules=tuple(names)))
    assert c.trainable_params == expected


@PROPS
@given(llama_configs(mlp_bias=False), targets, ranks, ranks)
def test_lora_count_is_linear_in_r(cfg, names, r1, r2):
    arch = Architecture.from_hf_config(cfg)

    def lora(r):
        return count_lora(arch, LoraSpec(r=r, target_modules=tuple(names))).lora_params

    assert lora(r1 + r2) == lora(r1) + lora(r2)


@PROPS
@given(llama_configs(mlp_bias=False), targets, ranks)
def test_lora_count_is_additive_over_modules(cfg, names, r):
    arch = Architecture.from_hf_config(cfg)
    together = count_lora(arch, LoraSpec(r=r, target_modules=tuple(names))).trainable_params
    apart = sum(count_lora(arch, LoraSpec(r=r, target_modules=(n,))).trainable_params for n in names)
    assert together == apart


@PROPS
@given(llama_configs(mlp_bias=False), st.permutations(LLAMA_TARGETS), st.integers(1, 7), ranks)
def test_lora_count_does_not_depend_on_target_order(cfg, order, k, r):
    arch = Architecture.from_hf_config(cfg)
    chosen = order[:k]
    forward = count_lora(arch, LoraSpec(r=r, target_modules=tuple(chosen)))
    backward = count_lora(arch, LoraSpec(r=r, target_modules=tuple(reversed(chosen))))
    assert forward.trainable_params == backward.trainable_params


@PROPS
@given(llama_configs(mlp_bias=False), targets, ranks)
def test_dora_adds_exactly_out_features_per_adapted_matrix(cfg, names, r):
    arch = Architecture.from_hf_config(cfg)
    plain = count_lora(arch, LoraSpec(r=r, target_modules=tuple(names)))
    dora = count_lora(arch, LoraSpec(r=r, target_modules=tuple(names), use_dora=True))
    magnitudes = sum(cfg["num_hidden_layers"] * shapes(cfg)[n][1] for n in names)
    assert dora.trainable_params - plain.trainable_params == magnitudes


@PROPS
@given(llama_configs(mlp_bias=False), ranks, ranks)
def test_base_model_total_does_not_depend_on_r(cfg, r1, r2):
    arch = Architecture.from_hf_config(cfg)
    a = count_lora(arch, LoraSpec(r=r1))
    b = count_lora(arch, LoraSpec(r=r2, target_modules=("q_proj",)))
    assert a.total_params == b.total_params == arch.total_params


@settings(max_examples=50, deadline=None)
@given(ranks, ranks)
def test_moe_parameter_targets_are_linear_in_r_too(r1, r2):
    arch = get_preset("mixtral-8x7b").architecture

    def lora(r):
        return count_lora(arch, LoraSpec(r=r)).lora_params

    assert lora(r1 + r2) == lora(r1) + lora(r2)
