"""The code the pages show runs, and builds what calc counted.

Each generated snippet is executed with the real libraries (peft 0.21.2, transformers 5.23,
bitsandbytes): the ``LoraConfig`` / ``BitsAndBytesConfig`` it constructs must carry the spec's fields, a
``LoraConfig`` applied to a tiny model on the meta device must train exactly calc's count, and the whole
QLoRA recipe, run on a tiny saved model loaded in 4-bit on the CPU, must print the line calc wrote into
its last comment.
"""

from __future__ import annotations

import contextlib
import io

import pytest

from calc.architecture import Architecture
from calc.lora import count_lora, peft_target_modules
from calc.pages.common import lora_spec
from calc.pages.snippets import BnbSettings, bnb_config_code, lora_config_code, qlora_recipe_code
from tests.verify.conftest import require
from tests.verify.hf import build_meta

torch = require("torch")
transformers = require("transformers")
peft = require("peft")

TINY = {
    "llama": {"model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128},
    "gpt2": {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 100, "n_positions": 32},
    "phi3": {"model_type": "phi3", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128},
    "mixtral": {"model_type": "mixtral", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100, "num_local_experts": 4},
}
SPECS = [  # (r, lora_alpha, targets, dora, rslora, modules_to_save, bias)
    (8, None, "all-linear", False, False, (), "none"),
    (16, 8.5, "qv", False, True, (), "none"),
    (4, None, "attention", True, False, (), "none"),
    (8, None, "mlp", False, False, ("lm_head",), "none"),
    (2, 3, "all-linear", False, False, (), "lora_only"),
]


def _exec(source: str) -> dict:
    namespace: dict = {}
    exec(compile(source, "<snippet>", "exec"), namespace)  # noqa: S102 - our own generated code
    return namespace


def _cases():
    for family in TINY:
        for spec in SPECS:
            if family == "mixtral" and spec[3]:
                continue  # PEFT refuses DoRA on MoE parameter targets (calc too: tests/verify/test_peft_equality)
            yield family, spec


@pytest.mark.parametrize("family, args", list(_cases()), ids=lambda v: v if isinstance(v, str) else
                         f"r{v[0]}-{v[2]}{'-dora' if v[3] else ''}{'-rslora' if v[4] else ''}"
                         f"{'-save' if v[5] else ''}-{v[6]}")
def test_lora_config_snippet_builds_the_spec_and_trains_calcs_count(family, args):
    r, alpha, targets, dora, rslora, to_save, bias = args
    arch = Architecture.from_hf_config(TINY[family])
    spec = lora_spec(r, alpha, targets, use_dora=dora, use_rslora=rslora, modules_to_save=to_save, bias=bias)
    config = _exec(lora_config_code(spec, arch))["lora_config"]

    assert isinstance(config, peft.LoraConfig)
    assert config.r == spec.r
    assert config.lora_alpha == spec.lora_alpha
    expected_targets = peft_target_modules(arch, spec.target_modules)
    if isinstance(expected_targets, str):
        assert config.target_modules == expected_targets
    else:
        assert set(config.target_modules) == set(expected_targets)
    assert config.use_dora is spec.use_dora
    assert config.use_rslora is spec.use_rslora
    assert config.bias == spec.bias
    assert config.task_type == "CAUSAL_LM"
    assert list(config.modules_to_save or []) == list(spec.modules_to_save)

    model = peft.get_peft_model(build_meta(TINY[family]), config)
    trainable, all_param = model.get_nb_trainable_parameters()
    count = count_lora(arch, spec)
    assert trainable == count.trainable_params
    assert all_param == count.peft_all_params


@pytest.mark.parametrize("settings", [
    BnbSettings(),
    BnbSettings(4, "fp4", False, "fp16"),
    BnbSettings(4, "nf4", True, "fp32"),
    BnbSettings(8),
], ids=["nf4-dq-bf16", "fp4-fp16", "nf4-dq-fp32", "int8"])
def test_bnb_config_snippet_builds_the_settings(settings):
    config = _exec(bnb_config_code(settings))["bnb_config"]
    assert isinstance(config, transformers.BitsAndBytesConfig)
    if settings.bits == 8:
        assert config.load_in_8bit and not config.load_in_4bit
        return
    assert config.load_in_4bit and not config.load_in_8bit
    assert config.bnb_4bit_quant_type == settings.quant_type
    assert config.bnb_4bit_use_double_quant is settings.double_quant
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    assert config.bnb_4bit_compute_dtype == dtypes[settings.compute_dtype]


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_qlora_recipe_runs_and_prints_calcs_line(family, tmp_path):
    require("bitsandbytes")
    transformers.logging.set_verbosity_error()
    cfg = transformers.AutoConfig.for_model(**TINY[family])
    transformers.AutoModelForCausalLM.from_config(cfg).to(torch.bfloat16).save_pretrained(tmp_path)

    arch = Architecture.from_hf_config(TINY[family])
    source = qlora_recipe_code(arch, lora_spec(8), str(tmp_path), device_map="cpu")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        namespace = _exec(source)

    printed = out.getvalue().strip().splitlines()[-1]
    assert source.rstrip().splitlines()[-1] == f"# {printed}"
    model = namespace["model"]
    assert getattr(model, "is_loaded_in_4bit", False) or any(
        type(m).__name__ == "Linear4bit" for m in model.modules())
