"""calc's parameter counts equal what transformers builds and what PEFT trains, for every preset.

Independent source: transformers 5.23.0 builds each preset's config on the meta device (no weights,
no downloads) and PEFT 0.21.2 wraps it; calc never sees either.
"""

from __future__ import annotations

import pytest

from calc.architecture import Architecture
from calc.errors import CalcError
from calc.lora import LoraSpec, count_lora, peft_target_modules
from calc.presets import all_presets
from tests.verify.hf import build_meta, numel, peft_counts

PRESETS = all_presets()
RANKS = (8, 16, 64)
TARGETS = ("qv", "attention", "mlp", "all-linear")


@pytest.mark.parametrize("preset_id", sorted(PRESETS))
def test_total_params_equal_transformers(preset_id):
    preset = PRESETS[preset_id]
    assert preset.architecture.total_params == numel(build_meta(preset.config))


def _variants():
    for r in RANKS:
        for t in TARGETS:
            yield r, t, False, ()
    yield 16, "all-linear", True, ()
    yield 16, "qv", False, ("lm_head",)


def _check(config, r, targets, dora, to_save, bias="none"):
    arch = Architecture.from_hf_config(config)
    spec = LoraSpec(r=r, lora_alpha=2 * r, target_modules=targets, use_dora=dora, modules_to_save=to_save, bias=bias)
    try:
        ours = count_lora(arch, spec)
    except CalcError as err:
        # calc refuses what PEFT refuses (DoRA on MoE parameter targets): PEFT must raise too
        with pytest.raises(ValueError):
            peft_counts(build_meta(config), r=r, lora_alpha=2 * r,
                        target_modules=_as_peft(peft_target_modules(arch, targets)),
                        use_dora=dora, modules_to_save=list(to_save) or None, bias=bias)
        return f"refused: {err}"
    trainable, all_param, per = peft_counts(
        build_meta(config), r=r, lora_alpha=2 * r, target_modules=_as_peft(ours.peft_target_modules),
        use_dora=dora, modules_to_save=list(to_save) or None, bias=bias)
    assert ours.trainable_params == trainable
    assert ours.peft_all_params == all_param
    assert {m.name: m.lora_params for m in ours.modules} == per
    return trainable


def _as_peft(targets):
    return targets if isinstance(targets, str) else list(targets)


@pytest.mark.parametrize("preset_id", sorted(PRESETS))
def test_lora_trainable_equal_peft(preset_id):
    config = PRESETS[preset_id].config
    for r, targets, dora, to_save in _variants():
        _check(config, r, targets, dora, to_save)
