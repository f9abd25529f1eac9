"""Per-preset summaries that pages and the CLI show side by side."""

from __future__ import annotations

from dataclasses import dataclass

from calc.lora import LoraSpec, count_lora
from calc.presets import Preset, all_presets


@dataclass(frozen=True)
class PresetSummary:
    """One catalogue row: the base model's size and one LoRA configuration's trainable count."""

    preset: Preset
    total_params: int
    lora_spec: LoraSpec
    trainable_params: int
    trainable_percent: float   # of PEFT's all_param (base + adapter), as print_trainable_parameters shows


def preset_summaries(r: int = 16, target_modules: str = "all-linear") -> list[PresetSummary]:
    """Every preset with LoRA at rank ``r`` (α = 2r) on ``target_modules``; see :func:`calc.lora.count_lora`."""
    spec = LoraSpec(r=r, lora_alpha=2 * r, target_modules=target_modules)
    rows = []
    for preset in all_presets().values():
        count = count_lora(preset.architecture, spec)
        rows.append(PresetSummary(preset, count.total_params, spec, count.trainable_params, count.trainable_percent))
    return sorted(rows, key=lambda s: (s.preset.family, s.total_params))
