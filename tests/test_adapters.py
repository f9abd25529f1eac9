"""calc.adapters: adapter file layout and merged sizes, checked against hand-derived numbers (no torch).

The byte-exact comparison with files PEFT really writes is in tests/verify/test_adapter_files.py.
"""

from __future__ import annotations

import json
import math

import pytest

from calc.adapters import (AdapterFile, adapter_file_bytes, adapter_tensors, file_order, merged_model_bytes,
                           normalize_dtype, safetensors_layout)
from calc.architecture import Architecture
from calc.cli import main
from calc.errors import CalcError
from calc.lora import LoraSpec, count_lora

# meta-llama/Llama-3.2-1B config.json (the fields calc reads)
LLAMA_32_1B = dict(model_type="llama", vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                   num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, head_dim=64,
                   tie_word_embeddings=True)
TINY_LLAMA = dict(model_type="llama", vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=1)
GPT2 = dict(model_type="gpt2", vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=16)
MIXTRAL = dict(model_type="mixtral", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2)
GEMMA = dict(model_type="gemma", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=1, head_dim=8)


def arch(config):
    return Architecture.from_hf_config(config)


def parse(f: AdapterFile) -> dict:
    return json.loads(f.header)


# -- a file small enough to write out by hand -------------------------------------------------------------
def test_one_module_file_written_out_by_hand():
    # one layer, q_proj (8 -> 8), r=1: A [1,8] and B [8,1], 8 floats each = 32 bytes each
    f = adapter_file_bytes(arch(TINY_LLAMA), LoraSpec(r=1, lora_alpha=1, target_modules=("q_proj",)))
    json_text = ('{"__metadata__":{"format":"pt"},'
                 '"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight":'
                 '{"dtype":"F32","shape":[1,8],"data_offsets":[0,32]},'
                 '"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight":'
                 '{"dtype":"F32","shape":[8,1],"data_offsets":[32,64]}}')
    # {"__metadata__":{"format":"pt"}, = 32; each key is 62 chars + 2 quotes + colon = 65; the values are
    # 51 and 52 chars ([0,32] vs [32,64]); one comma between the tensors and the closing brace:
    # 32 + (65 + 51) + 1 + (65 + 52) + 1 = 267 = 33·8 + 3, so 5 spaces of padding -> 272
    assert len(json_text) == 267
    assert f.header == json_text + "     "
    assert (f.header_bytes, f.tensor_bytes, f.tensors, f.params) == (272, 64, 2, 16)
    assert f.bytes == 8 + 272 + 64 == 344
    assert f.header_padding == 5


# -- Llama-3.2-1B, q and v, r=8 --------------------------------------------------------------------------
def test_llama_32_1b_qv_r8_fp32():
    a = arch(LLAMA_32_1B)
    spec = LoraSpec(r=8, lora_alpha=16, target_modules="qv")
    f = adapter_file_bytes(a, spec)
    # per layer: q 8·(2048+2048) + v 8·(2048+512) = 32,768 + 20,480 = 53,248; 16 layers
    trainable = 16 * 53_248
    assert trainable == 851_968 == count_lora(a, spec).trainable_params == f.params
    assert f.tensor_bytes == 4 * trainable == 3_407_872
    assert f.tensors == 16 * 2 * 2
    assert f.header_bytes % 8 == 0 and 0 <= f.header_padding < 8
    assert f.bytes == 8 + f.header_bytes + f.tensor_bytes

    h = parse(f)
    assert list(h)[0] == "__metadata__" and h["__metadata__"] == {"format": "pt"}
    names = [k for k in h if k != "__metadata__"]
    assert names == sorted(names)                   # one dtype: plain name order, so "layers.10" < "layers.2"
    assert names.index("base_model.model.model.layers.10.self_attn.q_proj.lora_A.weight") < \
        names.index("base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight")
    offset = 0
    for k in names:
        info = h[k]
        n = math.prod(info["shape"]) * 4
        assert info["dtype"] == "F32" and info["data_offsets"] == [offset, offset + n]
        offset += n
    assert offset == f.tensor_bytes
    assert h["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"]["shape"] == [512, 8]
    assert h["base_model.model.model.layers.15.self_attn.q_proj.lora_A.weight"]["shape"] == [8, 2048]

    # the header as an independent serializer writes it: compact JSON, then spaces up to a multiple of 8
    text = json.dumps(h, separators=(",", ":"))
    assert f.header == text + " " * (-len(text) % 8)


def test_bf16_halves_the_data_not_the_header_shape():
    a, spec = arch(LLAMA_32_1B), LoraSpec(r=8, target_modules="qv")
    fp32, bf16, fp16 = (adapter_file_bytes(a, spec, d) for d in ("float32", "bf16", "fp16"))
    assert bf16.tensor_bytes * 2 == fp32.tensor_bytes == fp16.tensor_bytes * 2
    assert {e.dtype for e in bf16.entries} == {"BF16"} and {e.dtype for e in fp16.entries} == {"F16"}
    # same keys and shapes; "BF16" is one character longer than "F32" (64 tensors), the halved offsets never longer
    assert [e.key for e in bf16.entries] == [e.key for e in fp32.entries]
    assert bf16.header_bytes <= fp32.header_bytes + 64 + 8


def test_llama_3_8b_all_linear_r16_matches_reference_numbers():
    # reference §4.2: 448 tensors, data 41,943,040 × 4 B = 167,772,160 B
    cfg = dict(model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336,
               num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8)
    f = adapter_file_bytes(arch(cfg), LoraSpec(r=16, lora_alpha=32))
    assert f.tensors == 448
    assert f.tensor_bytes == 167_772_160 == 4 * 41_943_040


# -- DoRA, modules_to_save, biases ------------------------------------------------------------------------
def test_dora_adds_one_magnitude_vector_per_adapted_matrix():
    a = arch(LLAMA_32_1B)
    plain = adapter_file_bytes(a, LoraSpec(r=8, target_modules="qv"))
    dora = adapter_file_bytes(a, LoraSpec(r=8, target_modules="qv", use_dora=True))
    mags = [k for k in dora.keys if k.endswith("lora_magnitude_vector")]
    assert len(mags) == 32 and dora.tensors == plain.tensors + 32
    assert "base_model.model.model.layers.0.self_attn.v_proj.lora_magnitude_vector" in mags
    assert not any(k.endswith("lora_magnitude_vector.weight") for k in dora.keys)
    assert dora.tensor_bytes - plain.tensor_bytes == 4 * 16 * (2048 + 512)


def test_modules_to_save_adds_a_full_lm_head_copy_even_when_tied():
    a = arch(LLAMA_32_1B)                       # tie_word_embeddings=True
    plain = adapter_file_bytes(a, LoraSpec(r=8, target_modules="qv"))
    saved = adapter_file_bytes(a, LoraSpec(r=8, target_modules="qv", modules_to_save=("lm_head",)))
    assert saved.tensor_bytes - plain.tensor_bytes == 128256 * 2048 * 4
    entry = next(e for e in saved.entries if e.key == "base_model.model.lm_head.weight")
    assert entry.shape == (128256, 2048)
    both = adapter_file_bytes(arch(GEMMA), LoraSpec(r=4, target_modules="qv",
                                                    modules_to_save=("lm_head", "embed_tokens")))
    assert {"base_model.model.lm_head.weight", "base_model.model.model.embed_tokens.weight"} <= set(both.keys)


def test_mixed_dtypes_f32_first_then_bf16():
    # a bf16 model saved with PEFT's defaults: LoRA upcast to F32, lm_head copy and biases stay BF16
    f = adapter_file_bytes(arch(GPT2), LoraSpec(r=4, target_modules="qv", bias="all", modules_to_save=("wte",)),
                           dtype="float32", base_dtype="bfloat16")
    dtypes = [e.dtype for e in f.entries]
    assert dtypes == sorted(dtypes, key=lambda d: d != "F32") and {"F32", "BF16"} == set(dtypes)
    bf16 = [e.key for e in f.entries if e.dtype == "BF16"]
    assert bf16 == sorted(bf16) and bf16[-1] == "base_model.model.transformer.wte.weight"
    for e in f.entries:
        assert e.dtype == ("F32" if ".lora_" in e.key else "BF16")
    assert f.tensor_bytes == sum(e.numel * (4 if e.dtype == "F32" else 2) for e in f.entries)


def test_bias_keys():
    a = arch(GPT2)
    f = adapter_file_bytes(a, LoraSpec(r=4, target_modules="qv", bias="all"))
    keys = set(f.keys)
    p = "base_model.model.transformer."
    assert f"{p}h.0.attn.c_attn.base_layer.bias" in keys          # targeted: the bias sits on base_layer
    assert f"{p}h.0.attn.c_proj.bias" in keys                     # untargeted linear
    assert {f"{p}h.1.ln_1.bias", f"{p}h.1.ln_2.bias", f"{p}ln_f.bias"} <= keys
    only = adapter_file_bytes(a, LoraSpec(r=4, target_modules="qv", bias="lora_only"))
    assert [k for k in only.keys if k.endswith("bias")] == [f"{p}h.0.attn.c_attn.base_layer.bias",
                                                            f"{p}h.1.attn.c_attn.base_layer.bias"]
    assert f.params == count_lora(a, LoraSpec(r=4, target_modules="qv", bias="all")).trainable_params


def test_moe_parameter_targets_nest_with_base_layer():
    f = adapter_file_bytes(arch(MIXTRAL), LoraSpec(r=4, target_modules="all-linear"))
    shapes = {e.key: e.shape for e in f.entries}
    p = "base_model.model.model.layers.0.mlp."
    # gate_up_proj (registered first, innermost): E·2r = 32 rows, in = hidden 32, out = 2·48
    assert shapes[f"{p}experts.base_layer.lora_A.weight"] == (32, 32)
    assert shapes[f"{p}experts.base_layer.lora_B.weight"] == (96, 32)
    # down_proj (outer wrapper): E·r = 16, in = 48, out = 32
    assert shapes[f"{p}experts.lora_A.weight"] == (16, 48)
    assert shapes[f"{p}experts.lora_B.weight"] == (32, 16)
    # router: a plain r=4 pair on mlp.gate
    assert shapes[f"{p}gate.lora_A.weight"] == (4, 32) and shapes[f"{p}gate.lora_B.weight"] == (4, 4)
    alone = adapter_file_bytes(arch(MIXTRAL), LoraSpec(r=4, target_modules=("w2",)))
    assert set(alone.keys) == {f"base_model.model.model.layers.{i}.mlp.experts.lora_{m}.weight"
                               for i in (0, 1) for m in "AB"}


# -- invariants over many specs ---------------------------------------------------------------------------
@pytest.mark.parametrize("config", [LLAMA_32_1B, GPT2, MIXTRAL, GEMMA], ids=["llama", "gpt2", "mixtral", "gemma"])
@pytest.mark.parametrize("targets", ["qv", "attention", "mlp", "all-linear"])
@pytest.mark.parametrize("extra", [{}, {"bias": "all"}, {"modules_to_save": ("lm_head",)}, {"use_rslora": True}])
def test_elements_equal_trainable_params_and_layout_is_consistent(config, targets, extra):
    a, spec = arch(config), LoraSpec(r=8, target_modules=targets, **extra)
    f = adapter_file_bytes(a, spec)
    assert f.params == count_lora(a, spec).trainable_params
    assert f.tensor_bytes == 4 * f.params
    assert f.bytes == 8 + f.header_bytes + f.tensor_bytes and f.header_bytes % 8 == 0
    assert len(set(f.keys)) == f.tensors and all(k.startswith("base_model.model.") for k in f.keys)
    assert json.loads(f.header)["__metadata__"] == {"format": "pt"}


def test_rslora_does_not_change_the_file():
    a = arch(LLAMA_32_1B)
    assert adapter_file_bytes(a, LoraSpec(r=8, use_rslora=True)) == adapter_file_bytes(a, LoraSpec(r=8))


def test_layout_helpers():
    entries = adapter_tensors(arch(TINY_LLAMA), LoraSpec(r=1, target_modules=("q_proj",)), "bf16")
    assert [e.key for e in file_order(entries)] == sorted(e.key for e in entries)
    header, placed = safetensors_layout(entries, metadata=None)
    assert header.startswith('{"base_model') and len(header) % 8 == 0
    assert placed[-1].end == 32


# -- dtypes and errors ------------------------------------------------------------------------------------
def test_dtype_names():
    assert normalize_dtype("bf16") == normalize_dtype("torch.bfloat16") == "bfloat16"
    assert normalize_dtype("FP32") == "float32" and normalize_dtype("half") == "float16"
    for bad in ("int8", "float64", "", None, 4):
        with pytest.raises(CalcError):
            normalize_dtype(bad)
    with pytest.raises(CalcError) as err:
        adapter_file_bytes(arch(TINY_LLAMA), LoraSpec(r=1), dtype="nf4")
    assert err.value.field == "dtype"
    with pytest.raises(CalcError):
        adapter_file_bytes(arch(TINY_LLAMA), LoraSpec(r=1), base_dtype="int4")


def test_merged_model_bytes():
    a = arch(LLAMA_32_1B)
    assert a.total_params == 1_235_814_400              # tied: the embedding counted once
    assert merged_model_bytes(a, "bf16") == merged_model_bytes(a, "fp16") == 2 * 1_235_814_400
    assert merged_model_bytes(a, "fp32") == merged_model_bytes(a, "float32") == 4 * 1_235_814_400
    with pytest.raises(CalcError):
        merged_model_bytes(a, "int8")


# -- CLI -----------------------------------------------------------------------------------------------------
def test_cli_json(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA_32_1B))
    assert main(["adapter-size", str(path), "--rank", "8", "--targets", "qv", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    f = adapter_file_bytes(arch(LLAMA_32_1B), LoraSpec(r=8, lora_alpha=16, target_modules="qv"))
    assert out["bytes"] == f.bytes and out["tensor_bytes"] == 3_407_872 and out["dtype"] == "float32"
    assert out["merged_bytes"]["bfloat16"] == 2 * 1_235_814_400
    assert main(["adapter-size", str(path), "--targets", "qv", "--dtype", "bf16", "--dora",
                 "--modules-to-save", "lm_head", "--bias", "all", "--base-dtype", "bf16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    spec = LoraSpec(r=16, lora_alpha=32, target_modules="qv", use_dora=True, modules_to_save=("lm_head",), bias="all")
    assert out["bytes"] == adapter_file_bytes(arch(LLAMA_32_1B), spec, "bfloat16").bytes


def test_cli_text_and_errors(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(TINY_LLAMA))
    assert main(["adapter-size", str(path), "--rank", "1", "--targets", "q_proj"]) == 0
    out = capsys.readouterr().out
    assert "344 bytes" in out and "MiB" in out
    assert main(["adapter-size", str(path), "--dtype", "int8"]) == 2
    assert "--dtype" in capsys.readouterr().err
    assert main(["adapter-size", str(path), "--base-dtype", "q4"]) == 2
    assert main(["adapter-size", str(path), "--rank", "0"]) == 2
    assert main(["adapter-size", str(path), "--targets", "nope"]) == 2
    assert main(["adapter-size", str(tmp_path / "missing.json")]) == 2
