"""Derived numbers for the handbook's LoRA pages (lora.md, rank.md, alpha.md, target-modules.md).

Everything here is a thin, pure layer over :func:`calc.lora.count_lora` and
:func:`calc.adapters.adapter_file_bytes`: sweeps over the rank, ratios between two configurations, shares
of a total, byte-to-MiB conversions, and the sourced rank guidance in ``calc/data/rank_guidance.yaml``.
The page macros format these results and do no arithmetic of their own.

Units: parameter counts are elements; file sizes are bytes, with MiB = 2^20 bytes and GiB = 2^30 bytes;
shares are percentages (0-100); scale factors and ratios are plain numbers.

Sources: LoRA's ``ΔW = (α/r)·B·A`` and ``r·(in+out)`` (Hu et al. 2021, §4.1); rsLoRA's ``α/√r``
(Kalajdzievski 2023); DoRA's magnitude vector (Liu et al. 2024); PEFT 0.21.2 for counting, targeting and
defaults (``peft/tuners/lora/config.py`` ``LoraConfig``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from calc.adapters import adapter_file_bytes
from calc.architecture import Architecture
from calc.errors import CalcError
from calc.lora import ALL_LINEAR, LoraSpec, count_lora, scaling
from calc.preset_files import read_yaml
from calc.presets import Preset, all_presets, get_preset

MIB = 1 << 20
GIB = 1 << 30

#: The ranks the handbook sweeps (powers of two from 4 to 256, the range in common use).
RANK_GRID: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256)
#: The rank of the handbook's worked examples (with ``lora_alpha = 2r``).
EXAMPLE_RANK = 16
#: "Cargo-cult" comparison on rank.md: a large rank copied from somewhere vs a common one.
CARGO_LOW_RANK = 16
CARGO_HIGH_RANK = 256
#: Parameter range (elements, base model) of the "7-8B class" on rank.md: every dense preset inside it.
SEVEN_B_CLASS = (6_500_000_000, 9_000_000_000)
#: Fixed alpha used to show what changing r does at constant alpha (alpha.md).
FIXED_ALPHA = 16
#: The rank someone raises to while keeping PEFT's default ``lora_alpha`` (the trap on alpha.md).
PEFT_TRAP_RANK = 64
#: QLoRA's published recipe (Dettmers et al. 2023, §5 and the Guanaco scripts in artidoro/qlora): r, lora_alpha.
QLORA_RECIPE = (64, 16)
#: The rank of the DoRA example on lora.md (q_proj and v_proj).
DORA_EXAMPLE_RANK = 32
#: Target sets compared on target-modules.md, in order of size (calc's shortcuts plus PEFT's all-linear).
TARGET_SETS: tuple[str, ...] = ("qv", "attention", "mlp", ALL_LINEAR)

#: Presets the LoRA pages chart and tabulate (popular dense models across sizes; ids of calc/presets/).
SIZE_LADDER: tuple[str, ...] = ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "qwen2.5-14b", "llama-3.1-70b")
FROZEN_VS_TRAINABLE: tuple[str, ...] = ("qwen2.5-0.5b", "llama-3.2-1b", "llama-3.1-8b", "llama-3.1-70b",
                                        "llama-3.1-405b")
RANK_TABLE_PRESETS: tuple[str, ...] = (
    "smollm2-1.7b", "llama-3.2-1b", "llama-3.2-3b", "phi-3-mini-4k", "qwen2.5-7b", "llama-3.1-8b", "qwen3-8b",
    "gemma-2-9b", "mistral-nemo-12b", "qwen2.5-14b", "gemma-2-27b", "qwen2.5-32b", "llama-3.1-70b",
)
TARGET_SET_PRESETS: tuple[str, ...] = ("llama-3.2-1b", "qwen2.5-7b", "llama-3.1-8b", "phi-3-mini-4k", "gemma-2-9b",
                                       "mixtral-8x7b")
MOE_PRESETS: tuple[str, ...] = ("mixtral-8x7b", "qwen1.5-moe-a2.7b", "deepseek-v2-lite")
FUSED_PRESETS: tuple[str, ...] = ("phi-3-mini-4k", "falcon-7b", "gpt2")
MODULES_TO_SAVE_PRESETS: tuple[str, ...] = ("qwen2.5-0.5b", "llama-3.2-1b", "llama-3.2-3b", "gemma-2-2b",
                                            "llama-3.1-8b", "qwen2.5-7b")
DORA_PRESETS: tuple[str, ...] = ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "qwen2.5-7b", "llama-3.1-70b")

GUIDANCE_FILE = Path(__file__).parents[1] / "data" / "rank_guidance.yaml"


@dataclass(frozen=True)
class PeftDefaults:
    """PEFT 0.21.2 ``LoraConfig`` defaults (``peft/tuners/lora/config.py``): rank, alpha, rsLoRA, DoRA, dtype.

    ``autocast_adapter_dtype`` is ``get_peft_model``'s default (``peft/mapping_func.py``): adapters are
    created in float32 even on a bf16 model, so saved adapters are F32 (see :mod:`calc.adapters`).
    """

    r: int = 8
    lora_alpha: int = 8
    use_rslora: bool = False
    use_dora: bool = False
    saved_dtype: str = "float32"

    @property
    def scale(self) -> float:
        """``lora_alpha / r`` at the defaults."""
        return scaling(self.r, self.lora_alpha, self.use_rslora)


PEFT_DEFAULTS = PeftDefaults()


# -- unit conversions -----------------------------------------------------------------------------------
def bytes_to_mib(n: int) -> float:
    """Bytes → MiB (2^20 bytes)."""
    return n / MIB


def bytes_to_gib(n: int) -> float:
    """Bytes → GiB (2^30 bytes)."""
    return n / GIB


def percent(part: int | float, whole: int | float) -> float:
    """``100 · part / whole``; raises :class:`CalcError` for a zero whole."""
    if whole == 0:
        raise CalcError("cannot take a share of zero")
    return 100.0 * part / whole


def handbook_alpha(r: int) -> int:
    """The ``lora_alpha`` the handbook's examples pair with rank ``r``: ``2r`` (counts do not depend on it)."""
    return 2 * r


def _spec(r: int, target_modules: str | tuple[str, ...] = ALL_LINEAR, **extra) -> LoraSpec:
    """A :class:`LoraSpec` with the handbook's convention ``lora_alpha = 2r``."""
    return LoraSpec(r=r, lora_alpha=handbook_alpha(r), target_modules=target_modules, **extra)


# -- one projection ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProjectionLora:
    """LoRA on one kind of projection (``self_attn.q_proj``) at rank ``r``.

    ``a_shape`` is ``(r, in)``, ``b_shape`` ``(out, r)``; ``weight_params`` = ``in·out`` per instance,
    ``lora_per_instance`` = ``r·(in+out)``; ``lora_total`` sums the ``count`` layers; ``percent_of_weight``
    is ``100 · r·(in+out) / (in·out)``.
    """

    name: str
    target: str
    in_features: int
    out_features: int
    count: int
    r: int
    a_shape: tuple[int, int]
    b_shape: tuple[int, int]
    weight_params: int
    lora_per_instance: int
    lora_total: int
    percent_of_weight: float


def projection_lora(arch: Architecture, module_name: str, r: int = EXAMPLE_RANK) -> ProjectionLora:
    """LoRA on the module kind ``module_name`` (its path inside a layer) alone, counted by :func:`count_lora`."""
    try:
        m = arch.module(module_name)
    except KeyError:
        raise CalcError(f"{arch.model_type} has no module {module_name!r}", field="module") from None
    count = count_lora(arch, _spec(r, (module_name,)))
    (lora,) = [x for x in count.modules if x.name == module_name]
    per = lora.lora_params // lora.count
    weight = m.in_features * m.out_features
    return ProjectionLora(m.name, m.target, m.in_features, m.out_features, m.count, r, (r, m.in_features),
                          (m.out_features, r), weight, per, lora.lora_params, percent(per, weight))


# -- a whole model, module by module ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ModuleRow:
    """One module kind of a model and the LoRA it gets (``targeted`` False: none, ``r``/``lora_alpha`` None).

    ``per_layer`` is the LoRA elements in one layer (for stacked experts: all ``experts`` of the stack);
    ``percent_of_lora`` is this row's share of the adapter's LoRA elements.
    """

    name: str
    target: str
    kind: str
    in_features: int
    out_features: int
    count: int
    experts: int
    weight_params: int          # base weights of all instances (biases excluded)
    targeted: bool
    r: int | None
    lora_alpha: float | None
    scale: float | None
    per_layer: int
    lora_params: int
    percent_of_lora: float


@dataclass(frozen=True)
class ModuleTable:
    """Every module kind of ``arch`` with the LoRA ``spec`` gives it, and the totals PEFT reports."""

    rows: tuple[ModuleRow, ...]
    lora_params: int
    trainable_params: int
    base_params: int
    trainable_percent: float
    peft_target_modules: str | tuple[str, ...]

    @property
    def untargeted(self) -> tuple[ModuleRow, ...]:
        return tuple(row for row in self.rows if not row.targeted)


def module_table(arch: Architecture, r: int = EXAMPLE_RANK, target_modules: str | tuple[str, ...] = ALL_LINEAR,
                 include_untargeted: bool = False) -> ModuleTable:
    """:func:`count_lora` itemised per module kind, optionally listing the module kinds left without LoRA."""
    count = count_lora(arch, _spec(r, target_modules))
    lora_by_name = {m.name: m for m in count.modules}
    total = count.lora_params
    rows = []
    for m in arch.modules:
        w = m.count * m.weight_params
        lora = lora_by_name.get(m.name)
        if lora is not None:
            rows.append(ModuleRow(m.name, m.target, m.kind, m.in_features, m.out_features, m.count, m.experts, w,
                                  True, lora.r, lora.lora_alpha, lora.scaling, lora.lora_params // lora.count,
                                  lora.lora_params, percent(lora.lora_params, total)))
        elif include_untargeted:
            rows.append(ModuleRow(m.name, m.target, m.kind, m.in_features, m.out_features, m.count, m.experts, w,
                                  False, None, None, None, 0, 0, 0.0))
    return ModuleTable(tuple(rows), total, count.trainable_params, count.total_params, count.trainable_percent,
                       count.peft_target_modules)


# -- trainable vs frozen ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamSplit:
    """Frozen base parameters vs trainable LoRA parameters for one model (``percent`` as PEFT prints it)."""

    preset_id: str
    name: str
    frozen_params: int
    trainable_params: int
    trainable_percent: float
    frozen_per_trainable: float     # how many frozen elements per trainable one


def param_split(preset: Preset, r: int = EXAMPLE_RANK, target_modules: str = ALL_LINEAR) -> ParamSplit:
    """Base model size vs LoRA size at rank ``r`` (``lora_alpha = 2r``) on ``target_modules``."""
    count = count_lora(preset.architecture, _spec(r, target_modules))
    return ParamSplit(preset.id, preset.name, count.total_params, count.trainable_params, count.trainable_percent,
                      count.total_params / count.trainable_params)


# -- rank sweeps ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankPoint:
    """Trainable parameters and ``adapter_model.safetensors`` size at one rank."""

    r: int
    trainable_params: int
    adapter_bytes: int
    adapter_mib: float


def rank_point(arch: Architecture, r: int, target_modules: str | tuple[str, ...] = ALL_LINEAR,
               dtype: str = PEFT_DEFAULTS.saved_dtype) -> RankPoint:
    """One rank: :func:`count_lora` for the parameters, :func:`adapter_file_bytes` for the file (``dtype``)."""
    spec = _spec(r, target_modules)
    params = count_lora(arch, spec).trainable_params
    size = adapter_file_bytes(arch, spec, dtype).bytes
    return RankPoint(r, params, size, bytes_to_mib(size))


def rank_sweep(arch: Architecture, ranks: Sequence[int] = RANK_GRID,
               target_modules: str | tuple[str, ...] = ALL_LINEAR,
               dtype: str = PEFT_DEFAULTS.saved_dtype) -> tuple[RankPoint, ...]:
    """:func:`rank_point` at each of ``ranks``."""
    return tuple(rank_point(arch, r, target_modules, dtype) for r in ranks)


@dataclass(frozen=True)
class RankCost:
    """What going from rank ``low.r`` to ``high.r`` costs: ratios and differences of params and file size."""

    preset_id: str
    name: str
    base_params: int
    low: RankPoint
    high: RankPoint
    params_ratio: float
    bytes_ratio: float
    extra_params: int
    extra_mib: float


def rank_cost(preset: Preset, low: int = CARGO_LOW_RANK, high: int = CARGO_HIGH_RANK,
              target_modules: str = ALL_LINEAR, dtype: str = PEFT_DEFAULTS.saved_dtype) -> RankCost:
    """Rank ``high`` vs rank ``low`` on one preset. Parameters scale exactly with ``r`` (``r·Σ(in+out)``);
    the file scales slightly less because its JSON header does not grow with ``r``."""
    arch = preset.architecture
    a = rank_point(arch, low, target_modules, dtype)
    b = rank_point(arch, high, target_modules, dtype)
    return RankCost(preset.id, preset.name, arch.total_params, a, b, b.trainable_params / a.trainable_params,
                    b.adapter_bytes / a.adapter_bytes, b.trainable_params - a.trainable_params,
                    bytes_to_mib(b.adapter_bytes - a.adapter_bytes))


def is_dense(arch: Architecture) -> bool:
    """True when every weight is an ordinary linear/Conv1D module (no MoE experts or routers)."""
    return all(m.kind in ("linear", "conv1d") for m in arch.modules)


def presets_in_class(low: int = SEVEN_B_CLASS[0], high: int = SEVEN_B_CLASS[1], dense_only: bool = True
                     ) -> tuple[Preset, ...]:
    """Presets whose base parameter count is in ``[low, high)``, smallest first (dense ones by default)."""
    found = [p for p in all_presets().values()
             if low <= p.architecture.total_params < high and (is_dense(p.architecture) or not dense_only)]
    return tuple(sorted(found, key=lambda p: (p.architecture.total_params, p.id)))


# -- scaling ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScaleRule:
    """How ``lora_alpha`` is chosen: ``alpha_per_rank · r`` when ``alpha_per_rank`` is set, else ``fixed_alpha``;
    ``rslora`` selects ``α/√r`` over ``α/r``."""

    label: str
    alpha_per_rank: int | None = None
    fixed_alpha: int | None = None
    rslora: bool = False

    def alpha(self, r: int) -> int:
        """``lora_alpha`` at rank ``r`` under this rule."""
        if self.alpha_per_rank is not None:
            return self.alpha_per_rank * r
        if self.fixed_alpha is None:
            raise CalcError(f"rule {self.label!r} sets neither alpha_per_rank nor fixed_alpha")
        return self.fixed_alpha

    def scale(self, r: int) -> float:
        """The factor PEFT multiplies ``B·A`` by at rank ``r`` (:func:`calc.lora.scaling`)."""
        return scaling(r, self.alpha(r), self.rslora)


SCALE_RULES: tuple[ScaleRule, ...] = (
    ScaleRule("α = r", alpha_per_rank=1),
    ScaleRule("α = 2r", alpha_per_rank=2),
    ScaleRule(f"α = {FIXED_ALPHA} (fixed)", fixed_alpha=FIXED_ALPHA),
    ScaleRule("rsLoRA, α = 2r", alpha_per_rank=2, rslora=True),
    ScaleRule(f"rsLoRA, α = {FIXED_ALPHA} (fixed)", fixed_alpha=FIXED_ALPHA, rslora=True),
)


@dataclass(frozen=True)
class ScalePoint:
    rule: str
    r: int
    lora_alpha: int
    scale: float


def scale_curves(rules: Sequence[ScaleRule] = SCALE_RULES, ranks: Sequence[int] = RANK_GRID
                 ) -> tuple[ScalePoint, ...]:
    """The scale factor at each rank under each rule (alpha.md's chart)."""
    return tuple(ScalePoint(rule.label, r, rule.alpha(r), rule.scale(r)) for rule in rules for r in ranks)


@dataclass(frozen=True)
class AlphaPair:
    """A common ``(r, lora_alpha)`` pair with both scale factors and where the pair comes from."""

    r: int
    lora_alpha: int
    scale: float            # α/r (PEFT default)
    rslora_scale: float     # α/√r (use_rslora=True)
    origin: str


#: Pairs seen in practice, with provenance (sources: PEFT LoraConfig defaults; Hu et al. 2021 §4.1 "we simply
#: set α to the first r we try"; QLoRA's Guanaco scripts, artidoro/qlora; Biderman et al. 2024's released
#: adapters, LoRA-TMLR-2024 on the Hugging Face Hub).
ALPHA_PAIRS: tuple[tuple[int, int, str], ...] = (
    (8, 8, "PEFT defaults"),
    (8, 16, "α = 2r"),
    (16, 16, "α = r (Hu et al.: α set to the first r tried)"),
    (16, 32, "α = 2r"),
    (32, 16, "fixed α, rank raised"),
    (*QLORA_RECIPE, "QLoRA / Guanaco (Dettmers et al.)"),
    (64, 128, "α = 2r (Biderman et al.)"),
    (256, 16, "fixed α, rank raised"),
    (256, 512, "α = 2r (Biderman et al.)"),
)


def alpha_pairs(pairs: Iterable[tuple[int, int, str]] = ALPHA_PAIRS) -> tuple[AlphaPair, ...]:
    """Both scale factors for each ``(r, alpha, origin)``."""
    return tuple(AlphaPair(r, a, scaling(r, a, False), scaling(r, a, True), origin) for r, a, origin in pairs)


def scale_ratio(r_from: int, r_to: int, lora_alpha: float, use_rslora: bool = False) -> float:
    """How much the scale changes when the rank goes from ``r_from`` to ``r_to`` at a fixed ``lora_alpha``:
    ``r_from/r_to`` for LoRA, ``√(r_from/r_to)`` for rsLoRA."""
    return scaling(r_to, lora_alpha, use_rslora) / scaling(r_from, lora_alpha, use_rslora)


# -- target sets ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetSetCost:
    """LoRA on one target set (``qv`` …) at rank ``r``, and its share of the all-linear count."""

    target_set: str
    peft_target_modules: str | tuple[str, ...]
    trainable_params: int
    percent_of_all_linear: float


def target_set_costs(arch: Architecture, r: int = EXAMPLE_RANK, sets: Sequence[str] = TARGET_SETS
                     ) -> tuple[TargetSetCost, ...]:
    """:func:`count_lora` for each target set, as a share of ``all-linear`` at the same rank."""
    full = count_lora(arch, _spec(r, ALL_LINEAR)).trainable_params
    out = []
    for name in sets:
        c = count_lora(arch, _spec(r, name))
        out.append(TargetSetCost(name, c.peft_target_modules, c.trainable_params, percent(c.trainable_params, full)))
    return tuple(out)


# -- DoRA -----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DoraCost:
    """LoRA vs DoRA on the same targets: DoRA adds one magnitude element per output row of each adapted matrix."""

    lora_params: int
    dora_params: int            # LoRA + magnitudes
    magnitude_params: int
    overhead_percent: float     # magnitudes as a share of the LoRA count


def dora_cost(arch: Architecture, r: int = EXAMPLE_RANK, target_modules: str | tuple[str, ...] = ALL_LINEAR
              ) -> DoraCost:
    """:func:`count_lora` with and without ``use_dora``."""
    plain = count_lora(arch, _spec(r, target_modules)).trainable_params
    dora = count_lora(arch, _spec(r, target_modules, use_dora=True))
    mags = sum(m.dora_params for m in dora.modules)
    return DoraCost(plain, dora.trainable_params, mags, percent(mags, plain))


# -- modules_to_save ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModulesToSaveCost:
    """LoRA alone vs LoRA plus full trainable copies of ``names`` (PEFT ``modules_to_save``).

    File sizes are for a bf16 model saved with PEFT's defaults: F32 LoRA tensors, copies in ``base_dtype``.
    """

    preset_id: str
    name: str
    tied: bool
    lora_params: int
    copy_params: int
    trainable_params: int
    trainable_ratio: float      # trainable with the copies / LoRA alone
    bytes_without: int
    bytes_with: int
    mib_without: float
    mib_with: float


def modules_to_save_cost(preset: Preset, names: Sequence[str] = ("lm_head",), r: int = EXAMPLE_RANK,
                         target_modules: str = ALL_LINEAR, dtype: str = PEFT_DEFAULTS.saved_dtype,
                         base_dtype: str = "bfloat16") -> ModulesToSaveCost:
    """What ``modules_to_save=names`` adds to an all-linear adapter: parameters and file bytes."""
    arch = preset.architecture
    plain = _spec(r, target_modules)
    saved = _spec(r, target_modules, modules_to_save=tuple(names))
    c0, c1 = count_lora(arch, plain), count_lora(arch, saved)
    f0 = adapter_file_bytes(arch, plain, dtype, base_dtype).bytes
    f1 = adapter_file_bytes(arch, saved, dtype, base_dtype).bytes
    return ModulesToSaveCost(preset.id, preset.name, arch.tie_word_embeddings, c0.trainable_params,
                             c1.modules_to_save_params, c1.trainable_params, c1.trainable_params / c0.trainable_params,
                             f0, f1, bytes_to_mib(f0), bytes_to_mib(f1))


# -- fused projections ------------------------------------------------------------------------------------------------
#: Which per-role projections a fused module stores (transformers 5.23.0 modeling files:
#: ``modeling_phi3.Phi3Attention.qkv_proj``/``Phi3MLP.gate_up_proj``, ``modeling_falcon.FalconAttention.query_key_value``,
#: ``modeling_gpt2.GPT2Attention.c_attn``).
FUSED_MODULES: dict[tuple[str, str], str] = {
    ("phi3", "self_attn.qkv_proj"): "q, k and v",
    ("phi3", "mlp.gate_up_proj"): "gate and up",
    ("falcon", "self_attention.query_key_value"): "q, k and v",
    ("gpt2", "attn.c_attn"): "q, k and v",
}


@dataclass(frozen=True)
class FusedRow:
    preset_id: str
    name: str
    module: str
    holds: str
    in_features: int
    out_features: int
    count: int
    lora_params: int        # LoRA on this module alone, all layers, at rank r


def fused_rows(preset_ids: Sequence[str], r: int = EXAMPLE_RANK) -> tuple[FusedRow, ...]:
    """Every fused module of the given presets (see :data:`FUSED_MODULES`) with its LoRA cost at rank ``r``."""
    out = []
    for pid in preset_ids:
        preset = get_preset(pid)
        arch = preset.architecture
        for m in arch.modules:
            holds = FUSED_MODULES.get((arch.model_type, m.name))
            if holds is None:
                continue
            p = projection_lora(arch, m.name, r)
            out.append(FusedRow(pid, preset.name, m.name, holds, m.in_features, m.out_features, m.count, p.lora_total))
    return tuple(out)


# -- sourced rank guidance --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankGuidance:
    """One source's use of the rank: what for, which ranks (only those it states), what it found."""

    id: str
    use_case: str
    ranks: tuple[int, ...]
    lora_alpha: str
    target_modules: str
    finding: str
    cite: str
    where: str


_GUIDANCE_KEYS = ("id", "use_case", "ranks", "lora_alpha", "target_modules", "finding", "cite", "where")


@functools.lru_cache(maxsize=None)
def rank_guidance(path: Path = GUIDANCE_FILE) -> tuple[RankGuidance, ...]:
    """The entries of ``rank_guidance.yaml``, validated: known keys, positive integer ranks, a ``cite`` key that
    exists in ``references.yaml``, unique ids. Raises :class:`CalcError` naming the entry and field."""
    from calc.references import load_references

    refs = load_references()
    data = read_yaml(path)
    if not isinstance(data, list):
        raise CalcError("must be a list of entries", source=str(path))
    out: list[RankGuidance] = []
    for i, item in enumerate(data):
        where = f"[{i}]"
        if not isinstance(item, dict) or set(item) != set(_GUIDANCE_KEYS):
            keys = sorted(item) if isinstance(item, dict) else item
            raise CalcError(f"must have exactly the keys {', '.join(_GUIDANCE_KEYS)} (got {keys})",
                            source=str(path), field=where)
        for key in _GUIDANCE_KEYS:
            if key != "ranks" and (not isinstance(item[key], str) or not item[key].strip()):
                raise CalcError("must be a non-empty string", source=str(path), field=f"{where}.{key}")
        ranks = item["ranks"]
        if not isinstance(ranks, list) or not ranks or not all(
                isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in ranks):
            raise CalcError("must be a non-empty list of positive integers", source=str(path), field=f"{where}.ranks")
        if item["cite"] not in refs:
            raise CalcError(f"unknown reference {item['cite']!r}", source=str(path), field=f"{where}.cite")
        if any(g.id == item["id"] for g in out):
            raise CalcError(f"duplicate id {item['id']!r}", source=str(path), field=f"{where}.id")
        out.append(RankGuidance(item["id"], item["use_case"], tuple(ranks), item["lora_alpha"],
                                item["target_modules"], " ".join(item["finding"].split()), item["cite"],
                                item["where"]))
    return tuple(out)


__all__ = [
    "DORA_PRESETS", "FROZEN_VS_TRAINABLE", "FUSED_PRESETS", "MODULES_TO_SAVE_PRESETS", "MOE_PRESETS",
    "RANK_TABLE_PRESETS", "SIZE_LADDER", "TARGET_SET_PRESETS",
    "ALPHA_PAIRS", "CARGO_HIGH_RANK", "CARGO_LOW_RANK", "EXAMPLE_RANK", "FIXED_ALPHA", "FUSED_MODULES", "GIB", "MIB",
    "PEFT_DEFAULTS", "RANK_GRID", "SCALE_RULES", "SEVEN_B_CLASS", "TARGET_SETS", "AlphaPair", "DoraCost", "FusedRow",
    "ModuleRow", "ModuleTable", "ModulesToSaveCost", "ParamSplit", "PeftDefaults", "ProjectionLora", "RankCost",
    "RankGuidance", "RankPoint", "ScalePoint", "ScaleRule", "TargetSetCost", "alpha_pairs", "bytes_to_gib",
    "bytes_to_mib", "dora_cost", "fused_rows", "handbook_alpha", "is_dense", "module_table", "modules_to_save_cost",
    "param_split", "percent", "presets_in_class", "projection_lora", "rank_cost", "rank_guidance", "rank_point",
    "rank_sweep", "scale_curves", "scale_ratio", "target_set_costs",
]
