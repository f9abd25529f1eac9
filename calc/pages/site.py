"""Figures for the home page, the preset catalogue and the FAQ (``macros/site_pages.py``, ``macros/tables.py``).

Each function here combines other calc functions (counts, memory, GPU fit, file sizes) into the rows a page
shows, including the unit conversions, so that the macros only format. Units: parameter counts in
elements, sizes in bytes, with ``*_gib`` (2^30 bytes) and ``*_mib`` (2^20 bytes) views.

The handbook's defaults, used wherever a page does not say otherwise: ``lora_alpha = 2r`` (the convention
of the catalogue and the CLI), PEFT's ``target_modules="all-linear"``, and the training conditions in
:data:`calc.pages.common.DEFAULT_CONDITIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from calc.adapters import adapter_file_bytes, merged_model_bytes
from calc.architecture import Architecture
from calc.errors import CalcError
from calc.lora import ALL_LINEAR, LoraSpec, count_lora, peft_target_modules, scaling
from calc.pages.common import gib, lora_spec, mib
from calc.presets import Preset, all_presets, get_preset

# -- the preset catalogue -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PresetFacts:
    """One row of the catalogue: the resolved config values a reader compares with config.json, and sizes.

    ``num_key_value_heads`` is what the model builds (Falcon's ``multi_query`` gives one shared K/V head
    whatever the key says). ``head_dim`` is the resolved config value (for DeepSeek-V2's latent attention
    it is ``qk_rope_head_dim``, not the width of a query head). ``intermediate_size`` is the config value,
    or, where the config leaves it null or uses another key (GPT-2's ``n_inner``, Falcon's
    ``ffn_hidden_size``), the width of the dense MLP the model builds. ``experts`` is the number of routed
    experts (1 for dense models). ``stated_deviation`` is ``total / stated - 1``.
    """

    preset: Preset
    model_type: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int | None
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    experts: int
    total_params: int
    stated_params: float
    stated_deviation: float


def _mlp_width(arch: Architecture) -> int:
    """The config's ``intermediate_size``, else the input width of the MLP's down projection (the
    module of the ``mlp`` group that maps back to ``hidden_size``), else that of the experts."""
    value = arch.config.get("intermediate_size")
    if value:
        return int(value)
    for group in ("mlp", "experts"):
        for m in arch.modules:
            if m.group == group and m.out_features == arch.hidden_size:
                return m.in_features
    raise CalcError(f"{arch.model_type}: no MLP down projection found")  # pragma: no cover - every family has one


def preset_facts(preset: Preset) -> PresetFacts:
    """The catalogue row of one preset."""
    arch = preset.architecture
    c = arch.config
    total = arch.total_params
    return PresetFacts(
        preset=preset, model_type=arch.model_type, hidden_size=arch.hidden_size,
        num_hidden_layers=arch.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=arch.num_key_value_heads, head_dim=c.get("head_dim"),
        intermediate_size=_mlp_width(arch), vocab_size=arch.vocab_size,
        tie_word_embeddings=arch.tie_word_embeddings,
        experts=max((m.experts for m in arch.modules), default=1),
        total_params=total, stated_params=preset.stated_params,
        stated_deviation=total / preset.stated_params - 1,
    )


def catalogue() -> list[PresetFacts]:
    """Every bundled preset, sorted by family and then by size (the order of the home page table)."""
    rows = [preset_facts(p) for p in all_presets().values()]
    return sorted(rows, key=lambda f: (f.preset.family, f.total_params))


def largest_stated_deviation() -> PresetFacts:
    """The preset whose computed total is furthest from the publisher's stated size."""
    return max(catalogue(), key=lambda f: abs(f.stated_deviation))


# -- LoRA choices ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetChoice:
    """One ``target_modules`` choice: what PEFT receives and what it trains."""

    target_modules: str
    peft_target_modules: str | tuple[str, ...]
    trainable_params: int
    trainable_percent: float


def target_choices(preset_id: str, r: int = 16, lora_alpha: float | None = None,
                   targets: Sequence[str] = ("qv", "attention", "mlp", ALL_LINEAR)) -> list[TargetChoice]:
    """Trainable parameters of each target set at rank ``r`` on one preset."""
    arch = get_preset(preset_id).architecture
    out = []
    for t in targets:
        count = count_lora(arch, lora_spec(r, lora_alpha, t))
        out.append(TargetChoice(t, peft_target_modules(arch, t), count.trainable_params, count.trainable_percent))
    return out


@dataclass(frozen=True)
class RankChoice:
    """One rank: trainable parameters, their share, and the adapter file PEFT saves (fp32, its default)."""

    r: int
    lora_alpha: float
    trainable_params: int
    trainable_percent: float
    adapter_bytes: int

    @property
    def adapter_mib(self) -> float:
        return mib(self.adapter_bytes)


def rank_choices(preset_id: str, ranks: Sequence[int] = (8, 16, 32, 64),
                 target_modules: str = ALL_LINEAR) -> list[RankChoice]:
    """For each rank (``lora_alpha = 2r``): :func:`calc.lora.count_lora` and
    :func:`calc.adapters.adapter_file_bytes` with PEFT's default fp32 adapter."""
    arch = get_preset(preset_id).architecture
    out = []
    for r in ranks:
        spec = lora_spec(r, None, target_modules)
        count = count_lora(arch, spec)
        out.append(RankChoice(r, spec.lora_alpha, count.trainable_params, count.trainable_percent,
                              adapter_file_bytes(arch, spec).bytes))
    return out


@dataclass(frozen=True)
class ScalingChoice:
    """The factor on ``B·A`` for one (r, α): LoRA's ``α/r`` and rsLoRA's ``α/√r``."""

    r: int
    lora_alpha: float
    lora_scaling: float
    rslora_scaling: float


def scaling_choices(pairs: Sequence[tuple[int, float]]) -> list[ScalingChoice]:
    """:func:`calc.lora.scaling` with and without rsLoRA for each ``(r, lora_alpha)``."""
    return [ScalingChoice(r, a, scaling(r, a), scaling(r, a, use_rslora=True)) for r, a in pairs]


# -- quantized storage and merging ----------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightStorage:
    """A model's weights in bf16 and in NF4 (with and without double quantization), bytes and bits."""

    bf16_bytes: int
    nf4_bytes: int
    nf4_single_bytes: int
    nf4_bits: float            # per quantized weight element, double quantization
    nf4_single_bits: float     # without double quantization
    quantized_share: float     # fraction of the parameters bitsandbytes quantizes
    blocksize: int             # weights per absmax scale (bitsandbytes' default)
    dq_blocksize: int          # scales per second-level scale with double quantization

    @property
    def bf16_gib(self) -> float:
        return gib(self.bf16_bytes)

    @property
    def nf4_gib(self) -> float:
        return gib(self.nf4_bytes)

    @property
    def nf4_single_gib(self) -> float:
        return gib(self.nf4_single_bytes)

    @property
    def ratio(self) -> float:
        """bf16 bytes over NF4 (double-quantized) bytes."""
        return self.bf16_bytes / self.nf4_bytes


def weight_storage(preset_id: str) -> WeightStorage:
    """:func:`calc.quant.model_weight_bytes` in bf16 and NF4, and :func:`calc.quant.bits_per_parameter`."""
    from calc.quant import DQ_BLOCKSIZE, bits_per_parameter, model_weight_bytes

    arch = get_preset(preset_id).architecture
    nf4 = model_weight_bytes(arch, "nf4", True)
    return WeightStorage(
        bf16_bytes=model_weight_bytes(arch, "bf16").total_bytes, nf4_bytes=nf4.total_bytes,
        nf4_single_bytes=model_weight_bytes(arch, "nf4", False).total_bytes,
        nf4_bits=bits_per_parameter("nf4", True, blocksize=nf4.blocksize),
        nf4_single_bits=bits_per_parameter("nf4", False, blocksize=nf4.blocksize),
        quantized_share=nf4.quantized_params / arch.total_params, blocksize=nf4.blocksize, dq_blocksize=DQ_BLOCKSIZE,
    )


@dataclass(frozen=True)
class MergeSizes:
    """The adapter file PEFT saves and the merged model's weights (bytes)."""

    adapter_bytes: int         # adapter_model.safetensors, PEFT's default fp32 adapter
    merged_bytes: int          # merge_and_unload() result saved in bf16
    merged_fp32_bytes: int

    @property
    def adapter_mib(self) -> float:
        return mib(self.adapter_bytes)

    @property
    def merged_gib(self) -> float:
        return gib(self.merged_bytes)

    @property
    def merged_fp32_gib(self) -> float:
        return gib(self.merged_fp32_bytes)

    @property
    def ratio(self) -> float:
        """Merged (bf16) bytes over adapter bytes."""
        return self.merged_bytes / self.adapter_bytes


def merge_sizes(preset_id: str, spec: LoraSpec) -> MergeSizes:
    """:func:`calc.adapters.adapter_file_bytes` (fp32) and :func:`calc.adapters.merged_model_bytes`."""
    arch = get_preset(preset_id).architecture
    return MergeSizes(adapter_file_bytes(arch, spec).bytes, merged_model_bytes(arch, "bf16"),
                      merged_model_bytes(arch, "fp32"))


def nf4_level_values() -> list[float]:
    """The 16 NF4 code values (:func:`calc.quant.nf4_code`) as Python floats."""
    from calc.quant import nf4_code

    return [float(v) for v in nf4_code()]



# -- the catalogue table (every preset with one LoRA configuration) ---------------------------------------
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
