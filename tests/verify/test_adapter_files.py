"""calc's adapter file size equals the size of the file PEFT actually writes, byte for byte.

Independent source: transformers 5.23.0 builds small models (tiny widths, 2 layers) on CPU with real
random weights, PEFT 0.21.2 wraps them, and ``PeftModel.save_pretrained`` writes
``adapter_model.safetensors`` through safetensors 0.8.0. calc never sees the model or the file. Each case
checks three things against the file: the exact size, the exact header text (this also pins the tensor
order, the offsets and the padding), and the key set read back with ``safetensors.safe_open``.
"""

from __future__ import annotations

import json
import os
import struct
import warnings

import pytest

from calc.adapters import adapter_file_bytes
from calc.architecture import Architecture
from calc.lora import LoraSpec, peft_target_modules
from tests.verify.conftest import require

torch = require("torch")
transformers = require("transformers")
peft = require("peft")
safetensors = require("safetensors")
from safetensors import safe_open  # noqa: E402

transformers.logging.set_verbosity_error()

TINY = {
    "llama": dict(model_type="llama", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, mlp_bias=True),
    "qwen2": dict(model_type="qwen2", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2),
    "phi3": dict(model_type="phi3", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, pad_token_id=0),
    "gpt2": dict(model_type="gpt2", vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=16),
    "falcon": dict(model_type="falcon", vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                   bias=True),
    "falcon_new": dict(model_type="falcon", vocab_size=64, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=4, new_decoder_architecture=True, num_kv_heads=2),
    "gemma": dict(model_type="gemma", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=1, head_dim=8),
    "mixtral": dict(model_type="mixtral", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2),
    "deepseek_v2": dict(model_type="deepseek_v2", vocab_size=64, hidden_size=32, intermediate_size=48,
                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=8,
                        q_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8,
                        moe_intermediate_size=16, n_routed_experts=4, n_shared_experts=1, num_experts_per_tok=2,
                        first_k_dense_replace=1),
    "qwen2_moe": dict(model_type="qwen2_moe", vocab_size=64, hidden_size=32, intermediate_size=48,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, num_experts=4,
                      num_experts_per_tok=2, moe_intermediate_size=16, shared_expert_intermediate_size=24),
}

# (family, spec kwargs, how the model is built and saved)
#   fp32            : fp32 model, PEFT defaults                       -> dtype float32
#   bf16_default    : bf16 model, PEFT defaults (adapter upcast)      -> dtype float32, base_dtype bfloat16
#   bf16_no_autocast: bf16 model, autocast_adapter_dtype=False        -> dtype bfloat16
#   bf16_cast       : fp32 model, PeftModel.to(bfloat16) before save  -> dtype bfloat16
#   fp16_no_autocast: fp16 model, autocast_adapter_dtype=False        -> dtype float16
CASES = [
    ("llama", dict(r=4, target_modules="qv"), "fp32"),
    ("llama", dict(r=8, target_modules="all-linear", use_dora=True, modules_to_save=("lm_head",)), "fp32"),
    ("llama", dict(r=4, target_modules="mlp", bias="all", use_rslora=True), "fp32"),
    ("llama", dict(r=4, target_modules="qv", modules_to_save=("lm_head",), bias="all"), "bf16_default"),
    ("llama", dict(r=8, target_modules="all-linear", use_dora=True), "bf16_no_autocast"),
    ("llama", dict(r=4, target_modules="attention", modules_to_save=("lm_head", "embed_tokens")), "bf16_cast"),
    ("llama", dict(r=4, target_modules="all-linear", bias="lora_only"), "fp16_no_autocast"),
    ("qwen2", dict(r=8, target_modules="attention", bias="all"), "fp32"),
    ("qwen2", dict(r=4, target_modules="qv", bias="lora_only", use_dora=True), "bf16_default"),
    ("phi3", dict(r=8, target_modules="all-linear"), "fp32"),
    ("phi3", dict(r=4, target_modules="qv", use_dora=True, modules_to_save=("lm_head",)), "bf16_default"),
    ("gpt2", dict(r=4, target_modules="all-linear", bias="all", modules_to_save=("wte",)), "fp32"),
    ("gpt2", dict(r=8, target_modules="qv", bias="all", use_dora=True), "bf16_default"),
    ("falcon", dict(r=4, target_modules="all-linear", bias="all"), "fp32"),
    ("falcon_new", dict(r=8, target_modules="qv", bias="all"), "fp32"),
    ("gemma", dict(r=4, target_modules="qv", modules_to_save=("lm_head",)), "fp32"),
    ("gemma", dict(r=8, target_modules="all-linear", modules_to_save=("lm_head", "embed_tokens")), "bf16_default"),
    ("mixtral", dict(r=4, target_modules="all-linear"), "fp32"),
    ("mixtral", dict(r=8, target_modules="mlp", use_rslora=True), "fp32"),
    ("mixtral", dict(r=4, target_modules=("w2", "gate", "q_proj")), "bf16_no_autocast"),
    ("mixtral", dict(r=4, target_modules="qv", use_dora=True, modules_to_save=("lm_head",)), "bf16_default"),
    ("deepseek_v2", dict(r=4, target_modules="all-linear"), "fp32"),
    ("deepseek_v2", dict(r=8, target_modules="qv", bias="all", modules_to_save=("lm_head",)), "bf16_default"),
    ("qwen2_moe", dict(r=4, target_modules="all-linear", bias="all"), "fp32"),
    ("qwen2_moe", dict(r=8, target_modules="attention", use_dora=True), "bf16_cast"),
]

ROUTES = {
    # route -> (model dtype, autocast_adapter_dtype, cast the PeftModel to before saving, calc dtype, base dtype)
    "fp32": (torch.float32, True, None, "float32", None),
    "bf16_default": (torch.bfloat16, True, None, "float32", "bfloat16"),
    "bf16_no_autocast": (torch.bfloat16, False, None, "bfloat16", None),
    "bf16_cast": (torch.float32, True, torch.bfloat16, "bfloat16", None),
    "fp16_no_autocast": (torch.float16, False, None, "float16", None),
}


def _build(config, dtype):
    cfg = transformers.AutoConfig.for_model(**dict(config))
    if getattr(cfg, "pad_token_id", None) is not None and cfg.pad_token_id >= cfg.vocab_size:
        cfg.pad_token_id = None
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    return model.to(dtype)


def _save(tmp_path, config, spec: LoraSpec, route: str):
    model_dtype, autocast, cast, _, _ = ROUTES[route]
    arch = Architecture.from_hf_config(config)
    targets = peft_target_modules(arch, spec.target_modules)
    lora = peft.LoraConfig(r=spec.r, lora_alpha=spec.lora_alpha, use_dora=spec.use_dora,
                           use_rslora=spec.use_rslora, bias=spec.bias,
                           target_modules=targets if isinstance(targets, str) else list(targets),
                           modules_to_save=list(spec.modules_to_save) or None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = peft.get_peft_model(_build(config, model_dtype), lora, autocast_adapter_dtype=autocast)
        if cast is not None:
            pm = pm.to(cast)
        pm.save_pretrained(str(tmp_path))
    return tmp_path / "adapter_model.safetensors"


def _read_header(path) -> str:
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        return fh.read(n).decode("utf-8")


@pytest.mark.parametrize("family,kwargs,route", CASES,
                         ids=[f"{f}-{i}-{r}" for i, (f, _, r) in enumerate(CASES)])
def test_adapter_file_size_equals_peft(tmp_path, family, kwargs, route):
    config = TINY[family]
    spec = LoraSpec(lora_alpha=2 * kwargs["r"], **kwargs)
    _, _, _, dtype, base_dtype = ROUTES[route]
    ours = adapter_file_bytes(Architecture.from_hf_config(config), spec, dtype, base_dtype)

    path = _save(tmp_path, config, spec, route)
    assert os.path.getsize(path) == ours.bytes
    assert _read_header(path) == ours.header            # order, offsets, padding, metadata: byte for byte
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        assert f.metadata() == {"format": "pt"}
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in keys}
        dtypes = {k: f.get_slice(k).get_dtype() for k in keys}
    assert keys == set(ours.keys)
    assert shapes == {e.key: e.shape for e in ours.entries}
    assert dtypes == {e.key: e.dtype for e in ours.entries}


def test_header_is_compact_json_with_sorted_offsets(tmp_path):
    """The properties calc relies on, read off a real mixed-dtype file: F32 before BF16, names sorted within."""
    config = TINY["gpt2"]
    spec = LoraSpec(r=4, lora_alpha=8, target_modules="qv", bias="all", modules_to_save=("wte",))
    header = _read_header(_save(tmp_path, config, spec, "bf16_default"))
    assert len(header) % 8 == 0 and not header.rstrip(" ").endswith(" ")
    parsed = json.loads(header)
    assert list(parsed)[0] == "__metadata__"
    tensors = [(k, v) for k, v in parsed.items() if k != "__metadata__"]
    ranks = {"F32": 0, "BF16": 1}
    assert [k for k, _ in tensors] == sorted((k for k, _ in tensors), key=lambda k: (ranks[parsed[k]["dtype"]], k))
    offset = 0
    for _, info in tensors:
        assert info["data_offsets"][0] == offset
        offset = info["data_offsets"][1]


def test_hand_derived_file_size(tmp_path):
    """The 344-byte file that tests/test_adapters.py writes out by hand is the file PEFT writes."""
    config = dict(model_type="llama", vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=1)
    path = _save(tmp_path, config, LoraSpec(r=1, lora_alpha=1, target_modules=("q_proj",)), "fp32")
    assert os.path.getsize(path) == 344
