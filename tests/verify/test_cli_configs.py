"""``python -m calc params CONFIG.json --json`` equals PEFT for configs that are *not* presets.

The acceptance criterion: "`python -m calc params path/to/config.json --targets all-linear --rank 16 --json`
equals PEFT on that architecture for configs of every listed family, including configs that are not presets".
Every config below is small (fast on the meta device) and deliberately odd for its family: head_dim that is not
hidden/heads, GQA with one KV head or none shared, biases switched on, tied embeddings flipped from the default,
sparse/dense MoE layer patterns, DeepSeek's two query paths, Falcon's three attention layouts, GPT-2 with n_inner.
Each carries the unused keys real config.json files have (architectures, rope_theta, torch_dtype, ...) to show they
are ignored.

Independent source: the config goes to transformers 5.23.0 (``AutoConfig.for_model``, meta device) and PEFT 0.21.2
wraps the model with ``r=16, lora_alpha=32`` and the ``target_modules`` the CLI reports; calc runs in a subprocess,
exactly as a user runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from calc.architecture import Architecture
from calc.cli import params_result
from calc.families import FAMILIES
from calc.lora import LoraSpec
from tests.verify.hf import build_meta, numel, peft_counts

REPO = Path(__file__).resolve().parents[2]
RANK = 16
ALPHA = 2 * RANK

# Keys real config.json files carry that calc must ignore (transformers accepts them all).
EXTRAS: dict[str, Any] = {
    "rope_theta": 500000.0,
    "torch_dtype": "bfloat16",
    "rms_norm_eps": 1e-5,
    "transformers_version": "4.46.0",
    "bos_token_id": 1,
    "eos_token_id": 2,
    "initializer_range": 0.02,
    "use_cache": True,
    "attention_dropout": 0.0,
    "max_position_embeddings": 4096,
}


def cfg(model_type: str, architectures: str, **keys: Any) -> dict[str, Any]:
    """A config.json dict: the family's keys plus the usual unused ones."""
    return {"architectures": [architectures], "model_type": model_type, **EXTRAS, **keys}


@dataclass(frozen=True)
class Case:
    id: str
    config: dict[str, Any]
    targets: tuple[str, ...]                    # --targets values; all-linear is always added
    file: dict[str, Any] | None = None          # what config.json holds, when not ``config`` itself
    xfail: str | None = None                    # a known calc bug (strict: the case must fail)

    @property
    def model_type(self) -> str:
        return self.config["model_type"]

    @property
    def all_targets(self) -> tuple[str, ...]:
        return ("all-linear",) + tuple(t for t in self.targets if t != "all-linear")


CASES: tuple[Case, ...] = (
    # --- llama -----------------------------------------------------------------------------------------------
    Case("llama-kv1-headdim12-biases-tied", cfg(
        "llama", "LlamaForCausalLM", vocab_size=101, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
        num_attention_heads=6, num_key_value_heads=1, head_dim=12, attention_bias=True, mlp_bias=True,
        tie_word_embeddings=True, hidden_act="silu", pretraining_tp=1),
        ("qv", "mlp", "q_proj,down_proj")),
    Case("llama-mha-mlp-bias-only", cfg(
        "llama", "LlamaForCausalLM", vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=4, attention_bias=False, mlp_bias=True,
        tie_word_embeddings=False, rope_scaling=None),
        ("attention",)),
    Case("llama-minimal-keys", {"model_type": "llama", "vocab_size": 90, "hidden_size": 32, "intermediate_size": 40,
                                "num_hidden_layers": 1, "num_attention_heads": 2},
         ("qv",)),
    # --- mistral ---------------------------------------------------------------------------------------------
    Case("mistral-headdim32-kv2-tied", cfg(
        "mistral", "MistralForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, tie_word_embeddings=True, sliding_window=None),
        ("qv", "mlp")),
    Case("mistral-default-kv8-16heads", cfg(
        "mistral", "MistralForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=72, num_hidden_layers=2,
        num_attention_heads=16, sliding_window=4096),
        ("attention",)),
    # --- mixtral ---------------------------------------------------------------------------------------------
    Case("mixtral-3experts-kv1-tied", cfg(
        "mixtral", "MixtralForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=40, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, num_local_experts=3, num_experts_per_tok=1,
        tie_word_embeddings=True, router_aux_loss_coef=0.02, output_router_logits=False),
        ("mlp", "attention", "q_proj,gate")),
    Case("mixtral-2experts-headdim24-mha", cfg(
        "mixtral", "MixtralForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=48, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=4, head_dim=24, num_local_experts=2, num_experts_per_tok=2),
        ("qv", "w1,w3")),
    # --- qwen2 -----------------------------------------------------------------------------------------------
    Case("qwen2-kv1-tied", cfg(
        "qwen2", "Qwen2ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=True, use_sliding_window=False,
        max_window_layers=2, sliding_window=None),
        ("qv",)),
    Case("qwen2-headdim24-kv2", cfg(
        "qwen2", "Qwen2ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=80, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=24),
        ("attention", "mlp")),
    Case("qwen2-default-kv32-32heads", cfg(
        "qwen2", "Qwen2ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=80, num_hidden_layers=1,
        num_attention_heads=32),
        ("qv",)),
    # --- qwen3 -----------------------------------------------------------------------------------------------
    Case("qwen3-default-headdim128-bias", cfg(
        "qwen3", "Qwen3ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, attention_bias=True),
        ("qv",)),
    Case("qwen3-headdim8-mha-tied", cfg(
        "qwen3", "Qwen3ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, head_dim=8, tie_word_embeddings=True),
        ("mlp",)),
    # --- qwen2_moe -------------------------------------------------------------------------------------------
    Case("qwen2_moe-mlp-only-1-step2", cfg(
        "qwen2_moe", "Qwen2MoeForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=56,
        num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
        moe_intermediate_size=24, shared_expert_intermediate_size=40, decoder_sparse_step=2, mlp_only_layers=[1],
        qkv_bias=False, router_aux_loss_coef=0.001),
        ("mlp", "attention")),
    Case("qwen2_moe-3experts-default-kv16-tied", cfg(
        "qwen2_moe", "Qwen2MoeForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=56,
        num_hidden_layers=2, num_attention_heads=16, num_experts=3, num_experts_per_tok=1, moe_intermediate_size=20,
        shared_expert_intermediate_size=36, tie_word_embeddings=True),
        ("qv", "mlp")),
    Case("qwen2_moe-zero-experts-all-dense", cfg(
        "qwen2_moe", "Qwen2MoeForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=56,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, num_experts=0, num_experts_per_tok=1,
        moe_intermediate_size=20, shared_expert_intermediate_size=36),
        ("mlp",)),
    # --- gemma -----------------------------------------------------------------------------------------------
    Case("gemma-default-headdim256-kv1-untied", cfg(
        "gemma", "GemmaForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=False,
        hidden_activation="gelu_pytorch_tanh"),
        ("qv",)),
    Case("gemma-headdim16-bias", cfg(
        "gemma", "GemmaForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, head_dim=16, attention_bias=True),
        ("attention",)),
    # --- gemma2 ----------------------------------------------------------------------------------------------
    Case("gemma2-defaults-kv4-untied", cfg(
        "gemma2", "Gemma2ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=8, tie_word_embeddings=False, final_logit_softcapping=30.0,
        attn_logit_softcapping=50.0, query_pre_attn_scalar=256),
        ("mlp",)),
    Case("gemma2-headdim12-kv1-bias", cfg(
        "gemma2", "Gemma2ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=1, head_dim=12, attention_bias=True),
        ("qv",)),
    # --- gemma3_text -----------------------------------------------------------------------------------------
    Case("gemma3_text-defaults", cfg(
        "gemma3_text", "Gemma3ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=96,
        num_hidden_layers=2, num_attention_heads=4, sliding_window=512, rope_local_base_freq=10000.0),
        ("qv",)),
    Case("gemma3_text-headdim16-kv2-bias-untied", cfg(
        "gemma3_text", "Gemma3ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=96,
        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=16, attention_bias=True,
        tie_word_embeddings=False),
        ("attention",)),
    Case("gemma3_text-inside-multimodal-text_config",
         {"model_type": "gemma3_text", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 96,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 32},
         ("mlp",),
         file={"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "torch_dtype": "bfloat16",
               "text_config": {"model_type": "gemma3_text", "vocab_size": 100, "hidden_size": 64,
                               "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
                               "num_key_value_heads": 1, "head_dim": 32},
               "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 32}}),
    # --- phi3 ------------------------------------------------------------------------------------------------
    Case("phi3-kv1-tied", cfg(
        "phi3", "Phi3ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=True, original_max_position_embeddings=4096),
        ("qv",)),
    Case("phi3-headdim24-default-kv", cfg(
        "phi3", "Phi3ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=80, num_hidden_layers=2,
        num_attention_heads=4, head_dim=24, sliding_window=2047),
        ("mlp", "attention")),
    # --- olmo2 -----------------------------------------------------------------------------------------------
    Case("olmo2-kv2-bias-tied", cfg(
        "olmo2", "Olmo2ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, attention_bias=True, tie_word_embeddings=True,
        pad_token_id=1),
        ("qv",)),
    Case("olmo2-headdim24-default-kv", cfg(
        "olmo2", "Olmo2ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, head_dim=24),
        ("attention",)),
    # --- falcon ----------------------------------------------------------------------------------------------
    Case("falcon-new-arch-kv2", cfg(
        "falcon", "FalconForCausalLM", vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        new_decoder_architecture=True, num_kv_heads=2, multi_query=False, parallel_attn=True,
        layer_norm_epsilon=1e-5),
        ("qv", "mlp")),
    Case("falcon-bias-sequential-mha-untied", cfg(
        "falcon", "FalconForCausalLM", vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        bias=True, parallel_attn=False, multi_query=False, ffn_hidden_size=80, tie_word_embeddings=False),
        ("attention", "mlp")),
    Case("falcon-multi-query-alibi", cfg(
        "falcon", "FalconForCausalLM", vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=8,
        alibi=True),
        ("qv",)),
    Case("falcon-new-arch-one-ln", cfg(
        "falcon", "FalconForCausalLM", vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        new_decoder_architecture=True, num_kv_heads=1, num_ln_in_parallel_attn=1, ffn_hidden_size=96),
        ("attention",)),
    Case("falcon-old-arch-two-ln", cfg(
        "falcon", "FalconForCausalLM", vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        new_decoder_architecture=False, parallel_attn=True, num_ln_in_parallel_attn=2),
        ("qv",)),
    Case("falcon-legacy-n_head_kv", cfg(
        "falcon", "FalconForCausalLM", vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        new_decoder_architecture=True, n_head_kv=2),
        ("qv",)),
    Case("falcon-legacy-n_embed", cfg(
        "falcon", "FalconForCausalLM", vocab_size=100, n_embed=64, num_hidden_layers=2, num_attention_heads=4),
        ("qv",)),
    # --- gpt2 ------------------------------------------------------------------------------------------------
    Case("gpt2-n_inner-aliases", {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 100, "n_embd": 64, "n_head": 4,
        "n_layer": 2, "n_positions": 32, "n_ctx": 32, "n_inner": 100, "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5, "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2,
        "summary_type": "cls_index", "transformers_version": "4.46.0"},
        ("qv", "mlp", "attn.c_proj")),
    Case("gpt2-canonical-keys-untied", {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 100, "hidden_size": 64,
        "num_attention_heads": 8, "num_hidden_layers": 3, "max_position_embeddings": 48,
        "tie_word_embeddings": False, "rope_theta": 10000.0, "torch_dtype": "bfloat16"},
        ("attention", "c_proj")),
    # --- deepseek_v2 -----------------------------------------------------------------------------------------
    Case("deepseek_v2-q_lora-k0", cfg(
        "deepseek_v2", "DeepseekV2ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=48,
        num_hidden_layers=2, num_attention_heads=4, q_lora_rank=24, kv_lora_rank=16, qk_nope_head_dim=8,
        qk_rope_head_dim=4, v_head_dim=12, moe_intermediate_size=20, n_routed_experts=4, n_shared_experts=1,
        num_experts_per_tok=2, first_k_dense_replace=0, topk_method="greedy", n_group=1, topk_group=1,
        routed_scaling_factor=1.0, norm_topk_prob=False, moe_layer_freq=1),
        ("qv", "attention", "mlp", "gate")),
    Case("deepseek_v2-null-q_lora-k2-biases-tied", cfg(
        "deepseek_v2", "DeepseekV2ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=48,
        num_hidden_layers=3, num_attention_heads=4, q_lora_rank=None, kv_lora_rank=16, qk_nope_head_dim=8,
        qk_rope_head_dim=4, v_head_dim=8, moe_intermediate_size=20, n_routed_experts=3, n_shared_experts=2,
        num_experts_per_tok=1, first_k_dense_replace=2, attention_bias=True, mlp_bias=True,
        tie_word_embeddings=True),
        ("qv", "mlp", "attention")),
    Case("deepseek_v2-num_experts-alias-kv2", cfg(
        "deepseek_v2", "DeepseekV2ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=48,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, q_lora_rank=None, kv_lora_rank=8,
        qk_nope_head_dim=4, qk_rope_head_dim=8, v_head_dim=8, moe_intermediate_size=12, num_experts=5,
        n_shared_experts=1, num_experts_per_tok=2, first_k_dense_replace=1),
        ("qv", "down_proj")),
    Case("deepseek_v2-q_lora_rank-omitted", cfg(
        "deepseek_v2", "DeepseekV2ForCausalLM", vocab_size=100, hidden_size=64, intermediate_size=48,
        num_hidden_layers=2, num_attention_heads=4, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=4,
        v_head_dim=8, moe_intermediate_size=20, n_routed_experts=4, num_experts_per_tok=2),
        ("qv", "attention")),  # transformers' default q_lora_rank is 1536: q_a_proj/q_b_proj
)


def _write(tmp_path: Path, case: Case) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(case.file if case.file is not None else case.config, indent=2))
    return path


def run_calc(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "calc", "params", str(path), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def calc_json(path: Path, targets: str, *extra: str) -> dict[str, Any]:
    proc = run_calc(path, "--targets", targets, "--rank", str(RANK), "--json", *extra)
    assert proc.returncode == 0, f"calc exited {proc.returncode}: {proc.stderr.strip()}"
    assert proc.stderr == ""
    return json.loads(proc.stdout)


def assert_equals_peft(config: dict[str, Any], out: dict[str, Any], *, dora: bool = False,
                       modules_to_save: list[str] | None = None) -> None:
    assert out["model_type"] == config["model_type"]
    assert (out["r"], out["lora_alpha"], out["use_dora"]) == (RANK, ALPHA, dora)
    model = build_meta(config)
    total = numel(model)
    trainable, all_param, per = peft_counts(model, r=RANK, lora_alpha=ALPHA, target_modules=out["target_modules"],
                                            use_dora=dora, modules_to_save=modules_to_save)
    ours = {m["name"]: m["lora_params"] for m in out["modules"]}
    assert (out["total_params"], out["trainable_params"], out["all_params"]) == (total, trainable, all_param), (
        f"calc (total, trainable, all) != transformers/PEFT; per-module calc {ours} vs PEFT {per}")
    assert ours == per
    assert sum(ours.values()) + sum(m["params"] for m in out["modules_to_save"]) + out["bias_params"] == trainable


def _params():
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        for t in case.all_targets:
            yield pytest.param(case, t, id=f"{case.id}-{t}", marks=marks)


@pytest.mark.parametrize(("case", "targets"), list(_params()))
def test_cli_params_json_equals_peft(tmp_path, case, targets):
    out = calc_json(_write(tmp_path, case), targets)
    if targets == "all-linear":
        assert out["target_modules"] == "all-linear"
    assert_equals_peft(case.config, out)


def test_every_family_has_odd_configs():
    per_family: dict[str, int] = {}
    for case in CASES:
        if case.xfail is None:
            per_family[case.model_type] = per_family.get(case.model_type, 0) + 1
    assert {mt: n for mt, n in per_family.items() if n >= 2}.keys() == set(FAMILIES)


@pytest.mark.parametrize("case", [c for c in CASES if c.xfail is None and c.file is None], ids=lambda c: c.id)
def test_unused_keys_are_ignored(case):
    """The same config without the extra keys gives the same numbers (in-process; the CLI path is above)."""
    stripped = {k: v for k, v in case.config.items() if k not in EXTRAS or k == "max_position_embeddings"}
    stripped.pop("architectures", None)
    spec = LoraSpec(r=RANK, lora_alpha=ALPHA, target_modules="all-linear")
    assert params_result(Architecture.from_hf_config(stripped), spec) == \
        params_result(Architecture.from_hf_config(case.config), spec)


def _case(case_id: str) -> Case:
    return next(c for c in CASES if c.id == case_id)


# --- DoRA: equal where PEFT accepts it; a one-line refusal (exit 2) where PEFT raises ---------------------------
DORA_OK = (
    ("llama-kv1-headdim12-biases-tied", "all-linear"),
    ("gpt2-n_inner-aliases", "all-linear"),
    ("falcon-new-arch-kv2", "all-linear"),
    ("qwen2_moe-mlp-only-1-step2", "all-linear"),     # no MoE rewrite for qwen2_moe: only nn.Linear targeted
    ("mixtral-3experts-kv1-tied", "attention"),
    ("deepseek_v2-q_lora-k0", "attention"),
)
DORA_REFUSED = (
    ("mixtral-3experts-kv1-tied", "all-linear"),
    ("mixtral-3experts-kv1-tied", "mlp"),
    ("deepseek_v2-q_lora-k0", "all-linear"),
    ("deepseek_v2-null-q_lora-k2-biases-tied", "mlp"),
)


@pytest.mark.parametrize(("case_id", "targets"), DORA_OK, ids=[f"{c}-{t}" for c, t in DORA_OK])
def test_cli_dora_equals_peft(tmp_path, case_id, targets):
    case = _case(case_id)
    out = calc_json(_write(tmp_path, case), targets, "--dora")
    assert_equals_peft(case.config, out, dora=True)


@pytest.mark.parametrize(("case_id", "targets"), DORA_REFUSED, ids=[f"{c}-{t}" for c, t in DORA_REFUSED])
def test_cli_dora_refused_like_peft(tmp_path, case_id, targets):
    case = _case(case_id)
    proc = run_calc(_write(tmp_path, case), "--targets", targets, "--rank", str(RANK), "--json", "--dora")
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "DoRA" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    # the same request without --dora gives the target_modules PEFT is handed; PEFT must refuse it with DoRA
    target_modules = calc_json(_write(tmp_path, case), targets)["target_modules"]
    with pytest.raises(ValueError):
        peft_counts(build_meta(case.config), r=RANK, lora_alpha=ALPHA, target_modules=target_modules, use_dora=True)


# --- modules_to_save lm_head: tied and untied output layers ---------------------------------------------------
SAVE = (
    ("llama-kv1-headdim12-biases-tied", "qv"),            # tied
    ("llama-mha-mlp-bias-only", "all-linear"),            # untied
    ("gpt2-n_inner-aliases", "all-linear"),               # tied, Conv1D
    ("mixtral-3experts-kv1-tied", "all-linear"),          # tied, MoE parameter targets
    ("deepseek_v2-num_experts-alias-kv2", "all-linear"),  # untied, MoE
    ("falcon-bias-sequential-mha-untied", "mlp"),         # untied, falcon
)


@pytest.mark.parametrize(("case_id", "targets"), SAVE, ids=[f"{c}-{t}" for c, t in SAVE])
def test_cli_modules_to_save_lm_head_equals_peft(tmp_path, case_id, targets):
    case = _case(case_id)
    out = calc_json(_write(tmp_path, case), targets, "--modules-to-save", "lm_head")
    assert [m["name"] for m in out["modules_to_save"]] == ["lm_head"]
    assert_equals_peft(case.config, out, modules_to_save=["lm_head"])
