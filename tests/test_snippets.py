"""Generated code snippets (calc.pages.snippets, macros.snippets): valid Python whose fields are the spec's.

Fast checks without the ML libraries: every snippet parses, and the keyword arguments read back from the
syntax tree equal the spec. ``tests/verify/test_snippets_construct.py`` executes them with peft and
transformers.
"""

from __future__ import annotations

import ast

import pytest

from calc.errors import CalcError
from calc.pages.common import lora_spec
from calc.lora import ALL_LINEAR, count_lora, peft_target_modules
from calc.presets import all_presets, get_preset
from calc.pages.snippets import (BnbSettings, bnb_config_code, hf_repo_id, lora_config_code, py_literal,
                           qlora_recipe_code, trainable_parameters_line, uses_parameter_targets)
from macros import snippets as snippet_macros

# one preset per model_type
FAMILY_PRESETS = sorted({p.config["model_type"]: p.id for p in all_presets().values()}.values())
TARGETS = ("qv", "attention", "mlp", ALL_LINEAR)


def _call_kwargs(source: str, func: str) -> dict:
    """Keyword arguments of the (single) call to ``func`` in ``source``, as Python values (dtype
    attributes such as ``torch.bfloat16`` come back as their dotted name)."""
    calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)
             and (getattr(n.func, "id", None) == func or getattr(n.func, "attr", None) == func)]
    assert len(calls) == 1, f"{func} called {len(calls)} times"
    out = {}
    for kw in calls[0].keywords:
        out[kw.arg] = ast.unparse(kw.value) if isinstance(kw.value, ast.Attribute) else ast.literal_eval(kw.value)
    return out


@pytest.mark.parametrize("preset_id", FAMILY_PRESETS)
@pytest.mark.parametrize("targets", TARGETS)
def test_lora_config_snippet_parses_and_carries_the_spec(preset_id, targets):
    arch = get_preset(preset_id).architecture
    spec = lora_spec(16, None, targets)
    source = lora_config_code(spec, arch)
    kwargs = _call_kwargs(source, "LoraConfig")
    assert source.startswith("from peft import LoraConfig\n")
    assert kwargs["r"] == 16 and kwargs["lora_alpha"] == 32
    expected = peft_target_modules(arch, targets)
    assert kwargs["target_modules"] == (expected if isinstance(expected, str) else list(expected))
    assert kwargs["use_dora"] is False and kwargs["use_rslora"] is False
    assert kwargs["bias"] == "none" and kwargs["task_type"] == "CAUSAL_LM"
    assert "modules_to_save" not in kwargs
    # PEFT's ParamWrapper (MoE experts and routers) raises for any dropout but 0
    assert kwargs["lora_dropout"] == (0.0 if uses_parameter_targets(arch, spec) else 0.05)


def test_lora_config_snippet_writes_every_field_it_is_given():
    arch = get_preset("llama-3.1-8b").architecture
    spec = lora_spec(8, 12.5, ("q_proj", "o_proj"), use_dora=True, use_rslora=True,
                     modules_to_save=("lm_head",), bias="lora_only")
    kwargs = _call_kwargs(lora_config_code(spec, arch, lora_dropout=0.1), "LoraConfig")
    assert kwargs == {"r": 8, "lora_alpha": 12.5, "target_modules": ["q_proj", "o_proj"], "use_dora": True,
                      "use_rslora": True, "lora_dropout": 0.1, "bias": "lora_only", "task_type": "CAUSAL_LM",
                      "modules_to_save": ["lm_head"]}


def test_moe_snippets_turn_dropout_off_and_say_why():
    source = lora_config_code(lora_spec(16), get_preset("mixtral-8x7b").architecture)
    assert "lora_dropout=0.0,  # PEFT refuses dropout on MoE expert weights" in source


def test_lora_config_snippet_refuses_what_calc_refuses():
    with pytest.raises(CalcError, match="no module"):
        lora_config_code(lora_spec(16, None, ("nope_proj",)), get_preset("llama-3.1-8b").architecture)


@pytest.mark.parametrize("settings, expected", [
    (BnbSettings(), {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
                     "bnb_4bit_compute_dtype": "torch.bfloat16"}),
    (BnbSettings(4, "fp4", False, "fp16"), {"load_in_4bit": True, "bnb_4bit_quant_type": "fp4",
                                            "bnb_4bit_use_double_quant": False,
                                            "bnb_4bit_compute_dtype": "torch.float16"}),
    (BnbSettings(8), {"load_in_8bit": True}),
])
def test_bnb_config_snippet(settings, expected):
    source = bnb_config_code(settings)
    assert _call_kwargs(source, "BitsAndBytesConfig") == expected
    assert ("import torch" in source) == (settings.bits == 4)


@pytest.mark.parametrize("kwargs, field", [
    ({"bits": 2}, "bits"), ({"quant_type": "int4"}, "quant_type"), ({"compute_dtype": "fp8"}, "compute_dtype"),
    ({"double_quant": "yes"}, "double_quant"),
])
def test_bnb_settings_reject_bad_values(kwargs, field):
    with pytest.raises(CalcError) as err:
        BnbSettings(**kwargs)
    assert err.value.field == field


def test_bnb_settings_from_a_qlora_setup():
    from calc.memory import TrainingSetup

    setup = TrainingSetup(method="qlora", base_precision="fp4", bnb_4bit_use_double_quant=False,
                          bnb_4bit_compute_dtype="fp16")
    assert BnbSettings.from_setup(setup) == BnbSettings(4, "fp4", False, "fp16")
    with pytest.raises(CalcError):
        BnbSettings.from_setup(TrainingSetup(method="lora"))


@pytest.mark.parametrize("preset_id", FAMILY_PRESETS)
def test_qlora_recipe_parses_and_ends_with_calcs_count(preset_id):
    preset = get_preset(preset_id)
    spec = lora_spec(16)
    source = qlora_recipe_code(preset.architecture, spec, hf_repo_id(preset.source_url))
    tree = ast.parse(source)
    called = {getattr(n.func, "id", None) or getattr(n.func, "attr", None)
              for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert {"BitsAndBytesConfig", "from_pretrained", "prepare_model_for_kbit_training", "LoraConfig",
            "get_peft_model", "print_trainable_parameters"} <= called
    assert "    quantization_config=bnb_config,\n" in source
    assert f'    "{hf_repo_id(preset.source_url)}",\n' in source
    count = count_lora(preset.architecture, spec)
    assert source.rstrip().splitlines()[-1] == f"# {trainable_parameters_line(count)}"


def test_trainable_parameters_line_is_peft_format():
    count = count_lora(get_preset("llama-3.1-8b").architecture, lora_spec(16))
    # the line `python -m calc params llama-3.1-8b` and PEFT print for this configuration
    assert trainable_parameters_line(count) == (
        "trainable params: 41,943,040 || all params: 8,072,204,288 || trainable%: 0.5196")


def test_recipe_refuses_a_model_id_that_is_not_a_repo_or_a_path():
    arch = get_preset("llama-3.2-1b").architecture
    for bad in ('x"); import os; ("', "not a repo", ""):
        with pytest.raises(CalcError):
            qlora_recipe_code(arch, lora_spec(16), bad)
    with pytest.raises(CalcError):
        qlora_recipe_code(arch, lora_spec(16), "meta-llama/Llama-3.2-1B", BnbSettings(8))


def test_hf_repo_id():
    url = "https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json"
    assert hf_repo_id(url) == "meta-llama/Llama-3.1-8B"
    assert hf_repo_id("https://example.org/meta-llama/Llama-3.1-8B/blob/main/config.json") is None
    for preset in all_presets().values():
        assert hf_repo_id(preset.source_url), preset.id


@pytest.mark.parametrize("value", ['a "quoted" name', "back\\slash", "ünïcode", 3, 2.5, True, None, ["a", 1]])
def test_py_literal_round_trips(value):
    assert ast.literal_eval(py_literal(value)) == value


def test_py_literal_writes_integral_floats_as_integers():
    assert py_literal(32.0) == "32"
    with pytest.raises(CalcError):
        py_literal(float("nan"))


# -- the macros ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("render", [
    lambda: snippet_macros.lora_config_snippet("qwen2.5-7b", 8, targets="qv"),
    lambda: snippet_macros.bnb_config_snippet(),
    lambda: snippet_macros.bnb_config_snippet(8),
    lambda: snippet_macros.qlora_recipe_snippet("llama-3.2-1b", 32),
])
def test_macros_return_one_python_fence(render):
    out = render()
    assert out.startswith("```python\n") and out.endswith("\n```\n")
    body = out[len("```python\n"):-len("```\n")]
    assert "```" not in body
    ast.parse(body)
