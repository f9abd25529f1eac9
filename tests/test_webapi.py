"""calc/webapi.py, the calculator page's glue: it only collects calc's results and maps errors to fields.

Every number :func:`calc.pages.calculator.compute` returns is compared with calc's own functions called directly; form
values (strings as typed) are parsed the way the page sends them; each kind of bad input lands on the form
field the page shows it next to, and no result is returned while any error exists.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict

import pytest

from calc.pages import calculator as webapi
from calc.adapters import adapter_file_bytes
from calc.architecture import Architecture
from calc.errors import CalcError
from calc.families import FAMILIES, family_keys
from calc.gpus import all_gpus, fit_all
from calc.lora import LoraSpec, count_lora
from calc.memory import (ADAPTER_DTYPES, COMPONENTS, DENSE_PRECISIONS, METHODS, OPTIMIZERS, QUANT_TYPES, SHARDING,
                         TrainingSetup, estimate_memory)
from calc.presets import all_presets

GPUS = [asdict(g) for g in all_gpus().values()]
DEFAULTS = webapi.catalogue()["defaults"]


def state(preset: str = "llama-3.2-1b", config: dict | None = None, **fields) -> dict:
    cfg = webapi.canonical_config(all_presets()[preset].config)
    cfg.update(config or {})
    return dict(DEFAULTS, config=cfg, **fields)


def calc_direct(config: dict, spec: LoraSpec | None, setup: TrainingSetup, adapter_dtype: str = "fp32") -> dict:
    arch = Architecture.from_hf_config(config)
    est = estimate_memory(arch, setup)
    fits = fit_all(all_gpus(), est.device_bytes, est.cuda_context_bytes)
    out = {"total": arch.total_params, "memory": est, "fits": fits}
    if spec is not None:
        out["count"] = count_lora(arch, spec)
        out["file"] = adapter_file_bytes(arch, spec, adapter_dtype)
    return out


@pytest.mark.parametrize("preset_id", sorted(all_presets()))
def test_every_preset_with_the_defaults_gives_calcs_numbers(preset_id):
    out = webapi.compute(state(preset_id), GPUS)
    assert out["errors"] == {} and out["result"] is not None
    r = out["result"]
    spec = LoraSpec(r=DEFAULTS["r"], lora_alpha=DEFAULTS["lora_alpha"])
    want = calc_direct(all_presets()[preset_id].config, spec, TrainingSetup(lora=spec))
    c, f, est = want["count"], want["file"], want["memory"]
    assert (r["total_params"], r["trainable_params"], r["all_params"]) == (want["total"], c.trainable_params,
                                                                         c.peft_all_params)
    assert r["trainable_percent"] == c.trainable_percent and r["scaling"] == spec.scaling
    assert (r["adapter_bytes"], r["adapter_tensors"], r["adapter_dtype"]) == (f.bytes, f.tensors, f.dtype)
    m = r["memory"]
    assert m["components"] == [list(x) for x in est.components] and m["peak_bytes"] == est.total_bytes
    assert m["phase"] == est.phase and m["cuda_context_bytes"] == est.cuda_context_bytes
    assert [(g["id"], g["required_bytes"], g["headroom_bytes"], g["fits"]) for g in r["gpus"]] == \
        [(x.gpu, x.required_bytes, x.headroom_bytes, x.fits) for x in want["fits"]]
    assert out["model"]["target_names"] == sorted(Architecture.from_hf_config(all_presets()[preset_id].config)
                                                  .target_names)


@pytest.mark.parametrize("fields, setup_kwargs", [
    (dict(method="full", optimizer="adamw_8bit", micro_batch="2", seq_len="1024"),
     dict(method="full", optimizer="adamw_8bit", micro_batch=2, seq_len=1024)),
    (dict(method="qlora", base_precision="fp4", gradient_checkpointing=True, num_gpus="2", sharding="fsdp_qlora"),
     dict(method="qlora", base_precision="fp4", gradient_checkpointing=True, num_gpus=2, sharding="fsdp_qlora")),
    (dict(num_gpus="4", sharding="zero3", adapter_dtype="bf16", r="32", lora_alpha="16", targets="attention",
          use_rslora=True),
     dict(num_gpus=4, sharding="zero3", adapter_dtype="bf16")),
    (dict(targets="custom", target_modules=["q_proj", "down_proj"], use_dora="true", r=" 8 ", lora_alpha="12.5"),
     dict()),
])
def test_form_values_as_typed_reach_calc(fields, setup_kwargs):
    st = state("qwen2.5-0.5b", **fields)
    out = webapi.compute(st, GPUS)
    assert out["errors"] == {}, out["errors"]
    r = out["result"]
    method = setup_kwargs.get("method", "lora")
    spec = None
    if method != "full":
        targets = tuple(st["target_modules"]) if st["targets"] == "custom" else st["targets"]
        spec = LoraSpec(r=int(str(st["r"]).strip()), lora_alpha=float(st["lora_alpha"]), target_modules=targets,
                        use_dora=st["use_dora"] in (True, "true"), use_rslora=st["use_rslora"] is True)
    setup = TrainingSetup(lora=spec, **setup_kwargs)
    want = calc_direct(all_presets()["qwen2.5-0.5b"].config, spec, setup, setup.adapter_dtype)
    assert r["memory"]["components"] == [list(x) for x in (want["memory"].per_gpu_components
                                                            or want["memory"].components)]
    assert r["memory"]["total_bytes"] == want["memory"].total_bytes
    if spec is None:
        assert r["trainable_params"] == want["total"] and r["adapter_bytes"] is None and r["scaling"] is None
    else:
        assert r["trainable_params"] == want["count"].trainable_params and r["adapter_bytes"] == want["file"].bytes


def test_edited_dimensions_and_typed_strings_are_calcs_config():
    edits = {"hidden_size": "1024", "intermediate_size": "4096", "num_hidden_layers": " 8", "num_attention_heads": "16",
             "num_key_value_heads": "4", "head_dim": "64", "tie_word_embeddings": "false"}
    out = webapi.compute(state("llama-3.2-1b", edits), GPUS)
    config = dict(all_presets()["llama-3.2-1b"].config, hidden_size=1024, intermediate_size=4096,
                  num_hidden_layers=8, num_attention_heads=16, num_key_value_heads=4, head_dim=64,
                  tie_word_embeddings=False)
    assert out["result"]["total_params"] == Architecture.from_hf_config(config).total_params
    assert out["model"]["resolved"]["hidden_size"] == 1024


def test_an_empty_optional_dimension_takes_calcs_default():
    out = webapi.compute(state("llama-3.2-1b", {"head_dim": ""}), GPUS)
    assert out["errors"] == {} and out["model"]["resolved"]["head_dim"] == 2048 // 32


def test_a_null_in_a_config_keeps_its_meaning():
    """DeepSeek-V2-Lite's ``q_lora_rank: null`` means no query compression; it must not become the default."""
    cfg = all_presets()["deepseek-v2-lite"].config
    assert cfg["q_lora_rank"] is None
    out = webapi.compute(state("deepseek-v2-lite", r=8, lora_alpha=16), GPUS)
    spec = LoraSpec(r=8, lora_alpha=16)
    assert out["result"]["trainable_params"] == count_lora(Architecture.from_hf_config(cfg), spec).trainable_params


@pytest.mark.parametrize("fields, config, field, text", [
    (dict(r="0"), None, "r", "positive integer"),
    (dict(r=""), None, "r", "is required"),
    (dict(r="sixteen"), None, "r", "positive integer"),
    (dict(lora_alpha="-1"), None, "lora_alpha", "positive number"),
    (dict(lora_alpha=""), None, "lora_alpha", "is required"),
    (dict(seq_len=""), None, "seq_len", "is required"),
    (dict(micro_batch="0"), None, "micro_batch", "positive integer"),
    (dict(num_gpus="1", sharding="zero3"), None, "sharding", "num_gpus >= 2"),
    (dict(method="qlora", base_precision="nf4", num_gpus="2", sharding="fsdp_full_shard"), None, "sharding",
     "fsdp_qlora"),
    (dict(method="qlora", base_precision="bf16"), None, "base_precision", "4-bit"),
    (dict(targets="custom", target_modules=[]), None, "target_modules", "at least one"),
    (dict(targets="custom", target_modules=["nope"]), None, "target_modules", "no module 'nope'"),
    (dict(), {"num_key_value_heads": "7"}, "config.num_key_value_heads", "must divide"),
    (dict(), {"hidden_size": ""}, "config.hidden_size", "is required"),
    (dict(), {"hidden_size": "1000000000"}, "config.hidden_size", "absurdly large"),
    (dict(), {"num_hidden_layers": "12.5"}, "config.num_hidden_layers", "integer"),
    (dict(), {"tie_word_embeddings": "maybe"}, "config.tie_word_embeddings", "true or false"),
])
def test_each_bad_input_lands_on_its_field_and_returns_no_result(fields, config, field, text):
    out = webapi.compute(state("llama-3.2-1b", config, **fields), GPUS)
    assert field in out["errors"], out["errors"]
    assert text in out["errors"][field]
    assert out["result"] is None


def test_several_bad_fields_are_reported_together():
    out = webapi.compute(state("llama-3.2-1b", {"hidden_size": "x", "vocab_size": "0"}, r="0", seq_len=""), GPUS)
    assert set(out["errors"]) == {"config.hidden_size", "config.vocab_size", "r", "seq_len"}
    assert out["result"] is None and out["model"] is None


def test_dora_on_moe_parameter_targets_is_calcs_error():
    out = webapi.compute(state("mixtral-8x7b", use_dora=True), GPUS)
    assert "use_dora" in out["errors"] and out["result"] is None
    assert out["model"]["model_type"] == "mixtral"      # the model itself is fine: the page keeps its modules


def test_canonical_config_uses_one_spelling_per_key_and_drops_what_calc_does_not_read():
    cfg = webapi.canonical_config({"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 100,
                                   "activation_function": "gelu_new", "n_positions": 128})
    assert cfg == {"model_type": "gpt2", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                   "vocab_size": 100, "max_position_embeddings": 128}
    with pytest.raises(CalcError):
        webapi.canonical_config({"model_type": "llama", "hidden_size": 64})
    for preset in all_presets().values():
        canonical = webapi.canonical_config(preset.config)
        assert Architecture.from_hf_config(canonical).total_params == preset.architecture.total_params
        assert set(canonical) <= family_keys(FAMILIES[canonical["model_type"]])


@pytest.mark.parametrize("text, result", [
    ("{oops", "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),          # deep nesting: RecursionError in CPython
    ('{"model_type": "llama", "hidden_size": ' + "9" * 5000 + "}", "not valid JSON"),  # > int_max_str_digits
    ("[1]", "JSON object"),
    ("", "paste"),
    ('{"model_type": "bert"}', "model_type: unsupported"),
    ('{"model_type": "llama", "hidden_size": 8}', "is required"),
])
def test_a_bad_pasted_config_is_one_message_for_the_box(text, result):
    out = webapi.parse_config_text(text)
    assert result in out["errors"]["config_json"]


def test_a_multimodal_config_uses_its_text_config():
    inner = {"model_type": "gemma3_text", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "vocab_size": 100, "rope_theta": 1e6}
    out = webapi.parse_config_text(json.dumps({"model_type": "gemma3", "text_config": inner}))
    assert out == {"config": {k: v for k, v in inner.items() if k != "rope_theta"}}


def test_the_page_gets_exact_integers_and_floats():
    out = json.loads(webapi.compute_json(json.dumps(state("llama-3.1-405b", rslora=True))))
    r = out["result"]
    assert isinstance(r["total_params"], str) and int(r["total_params"]) == \
        all_presets()["llama-3.1-405b"].architecture.total_params
    pct = struct.unpack(">d", bytes.fromhex(r["trainable_percent"][2:]))[0]
    assert pct == webapi.compute(state("llama-3.1-405b", rslora=True))["result"]["trainable_percent"]
    assert json.loads(webapi.compute_json("{not json"))["errors"] == {"state": "is not valid JSON"}


def test_set_gpus_supplies_the_default_gpu_list():
    assert webapi.set_gpus(json.dumps(GPUS)) == len(GPUS)
    assert [g["id"] for g in webapi.compute(state())["result"]["gpus"]] == [g["id"] for g in GPUS]


def test_the_catalogue_is_calcs_vocabulary():
    cat = webapi.catalogue()
    assert cat["methods"] == list(METHODS) and cat["optimizers"] == list(OPTIMIZERS)
    assert cat["sharding"] == list(SHARDING) and cat["adapter_dtypes"] == list(ADAPTER_DTYPES)
    assert cat["precisions"] == {"full": list(DENSE_PRECISIONS), "lora": list(DENSE_PRECISIONS),
                                 "qlora": list(QUANT_TYPES)}
    assert cat["components"] == list(COMPONENTS)
    assert set(cat["families"]) == set(FAMILIES)
    for model_type, fam in cat["families"].items():
        assert all(k is None or k in family_keys(FAMILIES[model_type]) for k in fam["dims"].values())
    assert cat["families"]["falcon"]["dims"]["intermediate"] == "ffn_hidden_size"
    assert cat["families"]["falcon"]["dims"]["kv_heads"] == "num_kv_heads"
    setup = TrainingSetup()
    assert (cat["defaults"]["method"], cat["defaults"]["micro_batch"], cat["defaults"]["seq_len"]) == \
        (setup.method, setup.micro_batch, setup.seq_len)


def test_webapi_holds_no_formula():
    """The glue imports calc's functions and does no arithmetic on their results (a crude but useful check)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(webapi))
    arithmetic = [n for n in ast.walk(tree) if isinstance(n, ast.BinOp) and not isinstance(n.op, (ast.Mod, ast.BitOr))
                  and not (isinstance(n.left, ast.Constant) and isinstance(n.right, ast.Constant))
                  and not isinstance(n.op, ast.Add)]
    # allowed: the CLI default alpha (2 * DEFAULT_R); ``|`` is type annotations, ``%`` and ``+`` build strings
    assert [ast.unparse(n) for n in arithmetic] == ["2 * DEFAULT_R"], [ast.unparse(n) for n in arithmetic]
