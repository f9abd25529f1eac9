"""Figures for the training-memory, adapter-file and validation pages (``macros/memory_pages.py``).

The macros format what these functions return and do no arithmetic of their own. Each function is a thin, pure
layer over the tested modules:

* :mod:`calc.memory` - :func:`~calc.memory.estimate_memory` (the modelled ``max_memory_allocated`` peak);
* :mod:`calc.pages.common` - the handbook's default training conditions and the full/LoRA/QLoRA comparison;
* :mod:`calc.gpus` - usable memory per GPU and :func:`~calc.gpus.fit`;
* :mod:`calc.adapters` - exact ``adapter_model.safetensors`` sizes and merged-model sizes;
* :mod:`calc.validation` - published and measured peaks against the estimate.

Units: sizes are bytes, with ``*_gib``/``*_mib``/``*_kib`` views (2^30/2^20/2^10 bytes); shares and errors are
percentages (0-100); per-token figures are bytes per token. GPU capacities keep the vendor's "GB" wording only in
``marketed`` labels. Sources: the project's research notes ``memory-model.md`` §3-§6.

Only :func:`measurement_files` reads files (the measurement YAMLs that ``published_measurements.yaml`` lists);
everything else is computed from calc's data already loaded by the modules above.
"""

from __future__ import annotations

import functools
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence


from calc.adapters import adapter_file_bytes, merged_model_bytes
from calc.errors import CalcError
from calc.lora import ALL_LINEAR, count_lora
from calc.pages.common import (EXAMPLE_PRESET, EXAMPLE_RANK, OPTIMIZER_LABELS, arch_of, compare_methods, gib, kib, lora_spec, method_setup, mib, name_of, percent)

from calc.pages.common import fit_gpus
from calc.pages.quant import METHOD_LABELS
from calc.pages.site import merge_sizes, weight_storage

# =====================================================================================================
# Training-memory page
# =====================================================================================================
@dataclass(frozen=True)
class PrecisionRow:
    """A model's weights stored in one precision (:func:`calc.quant.model_weight_bytes`)."""

    precision: str
    label: str
    total_gib: float
    bits_per_param: float      # all weights' bits over all parameters (16-bit leftovers included)
    percent_of_bf16: float


PRECISION_LABELS = {
    ("fp32", True): "fp32", ("bf16", True): "bf16 / fp16", ("int8", True): "int8 (LLM.int8, bitsandbytes)",
    ("nf4", False): "NF4, no double quantization", ("nf4", True): "NF4 + double quantization",
    ("fp4", True): "FP4 + double quantization",
}


def precision_rows(preset_id: str = EXAMPLE_PRESET) -> tuple[PrecisionRow, ...]:
    """The model's weights in each precision; quantized formats keep embeddings, lm_head and norms in bf16."""
    from calc.quant import model_weight_bytes

    arch = arch_of(preset_id)
    bf16 = model_weight_bytes(arch, "bf16").total_bytes
    out = []
    for (prec, dq), label in PRECISION_LABELS.items():
        b = model_weight_bytes(arch, prec, dq).total_bytes
        out.append(PrecisionRow(prec, label, gib(b), 8 * b / arch.total_params, percent(b, bf16)))
    return tuple(out)


@dataclass(frozen=True)
class ParamBytesRow:
    """Bytes per trainable parameter of one regime, from :func:`calc.memory.estimate_memory` of a real model:
    each steady-state term (and the gradients at the optimizer step) divided by the trainable parameters."""

    regime: str
    weights: float
    gradients: float
    optimizer_states: float
    master_weights: float
    total: float


#: (label, TrainingSetup keywords) of the bytes-per-parameter table; all at the handbook's other conditions.
PARAM_BYTES_REGIMES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Full, bf16 weights, torch AdamW (pure bf16)", {"method": "full", "base_precision": "bf16"}),
    ("Full, fp32 weights + bf16 autocast, torch AdamW (classic AMP)", {"method": "full", "base_precision": "fp32"}),
    ("Full, bf16 weights + fp32 master copy (DeepSpeed / Megatron style)",
     {"method": "full", "base_precision": "bf16", "master_weights": True}),
    ("Full, bf16 weights, bitsandbytes AdamW 8-bit", {"method": "full", "base_precision": "bf16", "optimizer": "adamw_8bit"}),
    ("LoRA, fp32 adapters (PEFT default), torch AdamW", {"method": "lora"}),
    ("LoRA, bf16 adapters (autocast_adapter_dtype=False), torch AdamW", {"method": "lora", "adapter_dtype": "bf16"}),
    ("LoRA, fp32 adapters, bitsandbytes AdamW 8-bit", {"method": "lora", "optimizer": "adamw_8bit"}),
)


def param_bytes_rows(preset_id: str = EXAMPLE_PRESET, r: int = EXAMPLE_RANK) -> tuple[ParamBytesRow, ...]:
    """Bytes per trainable parameter for each of :data:`PARAM_BYTES_REGIMES` on ``preset_id``.

    Full fine-tuning divides by all parameters; LoRA by the adapter's (the frozen base is a separate term).
    Small tensors and per-tensor extras make the quotients differ from the round figures in the third decimal
    at most (bitsandbytes keeps fp32 state for tensors under 4,096 elements).
    """
    from calc.memory import estimate_memory

    arch = arch_of(preset_id)
    spec = lora_spec(r)
    out = []
    for label, kw in PARAM_BYTES_REGIMES:
        kw = dict(kw)
        method = kw.pop("method")
        setup = method_setup(method, spec, **kw)
        est = estimate_memory(arch, setup)
        step = next(p for p in est.phases if p.name == "optimizer_step")
        if method == "full":
            n, w = arch.total_params, step.get("weights")
        else:
            n, w = count_lora(arch, spec).trainable_params, step.get("adapter_weights")
        g, s, mw = step.get("gradients"), step.get("optimizer_states"), step.get("master_weights")
        out.append(ParamBytesRow(label, w / n, g / n, s / n, mw / n, (w + g + s + mw) / n))
    return tuple(out)


@dataclass(frozen=True)
class ActivationRow:
    """What autograd keeps for one method, with and without gradient checkpointing (Llama-like layer)."""

    method: str
    label: str
    per_token_layer: float         # bytes per token per layer, full saved set (no checkpointing)
    checkpoint_per_token_layer: float   # bytes per token per layer kept with checkpointing (the layer input)
    total_gib_off: float           # all saved activations at the handbook's tokens, checkpointing off
    total_gib_on: float            # the same with checkpointing on
    tokens: int


def activation_rows(preset_id: str = EXAMPLE_PRESET, r: int = EXAMPLE_RANK) -> tuple[ActivationRow, ...]:
    """:func:`calc.memory.activation_breakdown` for full, LoRA and QLoRA at the handbook's conditions."""
    from calc.memory import activation_breakdown

    arch = arch_of(preset_id)
    out = []
    for method in ("full", "lora", "qlora"):
        off_setup = method_setup(method, lora_spec(r), gradient_checkpointing=False)
        on_setup = method_setup(method, lora_spec(r), gradient_checkpointing=True)
        off, on = activation_breakdown(arch, off_setup), activation_breakdown(arch, on_setup)
        T = on_setup.tokens
        out.append(ActivationRow(method, METHOD_LABELS[method], off.per_token_layer, on.per_layer / T,
                                 gib(off.total), gib(on.total), T))
    return tuple(out)


@dataclass(frozen=True)
class LossTerms:
    """Logits and loss per token (transformers ``ForCausalLMLoss``, logits dropped before backward).

    ``saved``: fp32 log-softmax output ``4V`` + int64 labels ``8``; ``backward``: the fp32 gradient buffers
    ``8V`` alive at the start of backward; ``total_gib`` at ``tokens`` tokens (memory-model §3.4).
    """

    vocab_size: int
    saved_per_token: int
    backward_per_token: int
    total_per_token: int
    tokens: int
    total_gib: float


def loss_terms(preset_id: str = EXAMPLE_PRESET, r: int = EXAMPLE_RANK) -> LossTerms:
    """The ``logits_and_loss`` component of the LoRA estimate at the handbook's conditions, per token."""
    from calc.memory import estimate_memory

    arch = arch_of(preset_id)
    setup = method_setup("lora", lora_spec(r))
    est = estimate_memory(arch, setup)
    phase = next(p for p in est.phases if p.name == "loss_backward")
    T = setup.tokens
    total = phase.get("logits_and_loss")
    saved = est.activations.loss_saved
    return LossTerms(arch.vocab_size, saved // T, (total - saved) // T, total // T, T, gib(total))


COMPONENT_LABELS = {
    "weights": "Base weights", "adapter_weights": "Adapter weights", "gradients": "Gradients",
    "optimizer_states": "Optimizer states", "master_weights": "fp32 master weights", "activations": "Activations",
    "logits_and_loss": "Logits and loss", "transients": "Transients", "cuda_context": "CUDA context (outside the allocator)",
}
PHASE_LABELS = {
    "loss_backward": "start of backward (loss)", "lm_head_backward": "output-layer backward",
    "layer_recompute": "checkpointed layer re-run", "forward_dora": "DoRA forward", "optimizer_step": "optimizer step",
}


@dataclass(frozen=True)
class ComponentPoint:
    """One component of one configuration's modelled peak, in GiB (the CUDA context as its own component)."""

    method: str
    label: str
    gradient_checkpointing: bool
    component: str
    component_label: str
    gib: float


@dataclass(frozen=True)
class Breakdown:
    """The peak phase's components of one (method, checkpointing) configuration."""

    method: str
    label: str
    gradient_checkpointing: bool
    phase: str
    components: tuple[ComponentPoint, ...]
    peak_gib: float
    required_gib: float


def breakdowns(preset_id: str = EXAMPLE_PRESET, r: int = EXAMPLE_RANK) -> tuple[Breakdown, ...]:
    """Full, LoRA and QLoRA with checkpointing on and off: the components of each modelled peak."""
    from calc.memory import COMPONENTS

    out = []
    for gc in (True, False):
        for m in compare_methods(preset_id, lora_spec(r), gradient_checkpointing=gc):
            comps = [ComponentPoint(m.method, METHOD_LABELS[m.method], gc, c, COMPONENT_LABELS[c],
                                    gib(m.estimate.component(c))) for c in COMPONENTS]
            comps.append(ComponentPoint(m.method, METHOD_LABELS[m.method], gc, "cuda_context",
                                        COMPONENT_LABELS["cuda_context"], m.context_gib))
            out.append(Breakdown(m.method, METHOD_LABELS[m.method], gc, m.estimate.phase, tuple(comps), m.peak_gib,
                                 m.required_gib))
    return tuple(out)


def breakdown(preset_id: str, method: str, gradient_checkpointing: bool = True, r: int = EXAMPLE_RANK) -> Breakdown:
    """One entry of :func:`breakdowns`."""
    for b in breakdowns(preset_id, r):
        if b.method == method and b.gradient_checkpointing == gradient_checkpointing:
            return b
    raise CalcError(f"unknown method {method!r}", field="method")


@dataclass(frozen=True)
class PhaseRow:
    """One modelled moment of the training step and its total (GiB)."""

    phase: str
    label: str
    total_gib: float
    is_peak: bool


def phase_rows(preset_id: str = EXAMPLE_PRESET, method: str = "qlora", gradient_checkpointing: bool = True,
               r: int = EXAMPLE_RANK) -> tuple[PhaseRow, ...]:
    """Every phase :func:`calc.memory.estimate_memory` models for one configuration."""
    m = compare_methods(preset_id, lora_spec(r), (method,),
                                 gradient_checkpointing=gradient_checkpointing)[0]
    return tuple(PhaseRow(p.name, PHASE_LABELS[p.name], gib(p.total), p.name == m.estimate.phase)
                 for p in m.estimate.phases)


# -- VRAM by model size ----------------------------------------------------------------------------------------------
#: The rule-of-thumb table's models, about 1B to 70B parameters.
VRAM_PRESETS = ("llama-3.2-1b", "llama-3.2-3b", "qwen2.5-7b", "llama-3.1-8b", "qwen2.5-14b", "qwen2.5-32b",
                "llama-3.1-70b")


@dataclass(frozen=True)
class VramRow:
    """Required memory (modelled peak + CUDA context, GiB) of full, LoRA and QLoRA for one model."""

    preset_id: str
    name: str
    total_params: int
    full_gib: float
    lora_gib: float
    qlora_gib: float
    full_no_gc_gib: float
    lora_no_gc_gib: float
    qlora_no_gc_gib: float


def vram_rows(presets: Sequence[str] = VRAM_PRESETS, r: int = EXAMPLE_RANK) -> tuple[VramRow, ...]:
    """:func:`calc.compare_methods` with checkpointing on and off for each preset."""
    out = []
    for pid in presets:
        on = {m.method: m.required_gib for m in compare_methods(pid, lora_spec(r))}
        off = {m.method: m.required_gib for m in compare_methods(pid, lora_spec(r),
                                                                         gradient_checkpointing=False)}
        out.append(VramRow(pid, name_of(pid), arch_of(pid).total_params, on["full"], on["lora"], on["qlora"],
                           off["full"], off["lora"], off["qlora"]))
    return tuple(out)


# -- GPU fit ----------------------------------------------------------------------------------------------------------
FIT_GPUS = ("rtx-3060", "t4", "rtx-4090", "rtx-5090", "a100-40gb", "l40s", "a100-80gb", "h200")


@dataclass(frozen=True)
class FitCell:
    """One GPU for one model: headroom (usable − required, GiB; negative = does not fit)."""

    gpu_id: str
    headroom_gib: float
    fits: bool


@dataclass(frozen=True)
class FitRow:
    preset_id: str
    name: str
    required_gib: float
    cells: tuple[FitCell, ...]


@dataclass(frozen=True)
class GpuColumn:
    """A GPU of the fit matrix: its name, the vendor's memory figure, usable memory in GiB."""

    gpu_id: str
    name: str
    marketed: str
    usable_gib: float


def fit_columns(gpus: Sequence[str] = FIT_GPUS) -> tuple[GpuColumn, ...]:
    """The GPUs of :func:`fit_matrix` (calc/data/gpus.yaml)."""
    from calc.gpus import get_gpu

    return tuple(GpuColumn(g, get_gpu(g).name, get_gpu(g).marketed, gib(get_gpu(g).usable_bytes)) for g in gpus)


def fit_matrix(presets: Sequence[str] = VRAM_PRESETS, gpus: Sequence[str] = FIT_GPUS, method: str = "qlora",
               r: int = EXAMPLE_RANK, gradient_checkpointing: bool = True) -> tuple[FitRow, ...]:
    """:func:`calc.gpus.fit` (through :func:`calc.fit_gpus`) for every preset × GPU."""
    from calc.gpus import get_gpu

    devices = [get_gpu(g) for g in gpus]
    out = []
    for pid in presets:
        mem = compare_methods(pid, lora_spec(r), (method,),
                                       gradient_checkpointing=gradient_checkpointing)[0]
        fits = fit_gpus(mem, devices)
        out.append(FitRow(pid, name_of(pid), mem.required_gib,
                          tuple(FitCell(f.gpu.id, f.headroom_gib, f.fits) for f in fits)))
    return tuple(out)


# -- multi-GPU ------------------------------------------------------------------------------------------------------
MULTI_GPU_PRESET = "llama-3.1-70b"
GPU_COUNTS = (2, 4, 8)
SHARDING_LABELS = {
    "none": "DDP (no sharding)", "zero1": "ZeRO-1 (optimizer states)", "zero2": "ZeRO-2 (+ gradients)",
    "zero3": "ZeRO-3 (+ weights)", "fsdp_full_shard": "FSDP FULL_SHARD", "fsdp_qlora": "FSDP + QLoRA (Answer.AI)",
}
SHARDING_PLANS = (("full", "zero1"), ("full", "zero2"), ("full", "zero3"), ("full", "fsdp_full_shard"),
                  ("lora", "none"), ("lora", "zero3"), ("lora", "fsdp_full_shard"), ("qlora", "none"),
                  ("qlora", "fsdp_qlora"))


@dataclass(frozen=True)
class ShardingRow:
    """Per-GPU required memory (modelled peak per GPU + one CUDA context, GiB) of one method and sharding."""

    method: str
    method_label: str
    sharding: str
    sharding_label: str
    single_gpu_gib: float      # the same method on one GPU, nothing sharded
    per_gpu_gib: tuple[float, ...]      # one per GPU count


def sharding_rows(preset_id: str = MULTI_GPU_PRESET, counts: Sequence[int] = GPU_COUNTS,
                  plans: Sequence[tuple[str, str]] = SHARDING_PLANS, r: int = EXAMPLE_RANK) -> tuple[ShardingRow, ...]:
    """:func:`calc.memory.estimate_memory` with ``num_gpus``/``sharding`` (memory-model §6) at the handbook's
    conditions; ``per_gpu_bytes`` + the CUDA context."""
    from calc.memory import estimate_memory

    arch = arch_of(preset_id)
    spec = lora_spec(r)
    out = []
    for method, sharding in plans:
        single = estimate_memory(arch, method_setup(method, spec))
        per = []
        for n in counts:
            e = estimate_memory(arch, method_setup(method, spec, num_gpus=n, sharding=sharding))
            per.append(gib(e.device_bytes + e.cuda_context_bytes))
        out.append(ShardingRow(method, METHOD_LABELS[method], sharding, SHARDING_LABELS[sharding],
                               gib(single.device_bytes + single.cuda_context_bytes), tuple(per)))
    return tuple(out)


# =====================================================================================================
# Adapter-file page
# =====================================================================================================
ADAPTER_PRESET = EXAMPLE_PRESET
ADAPTER_TARGET_SETS = ("qv", "attention", "mlp", ALL_LINEAR)
ADAPTER_RANKS = (8, 16, 32, 64, 128)
ADAPTER_DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class AdapterSizeRow:
    """``adapter_model.safetensors`` of one (targets, dtype) at each rank (bytes and MiB)."""

    target_modules: str
    dtype: str
    ranks: tuple[int, ...]
    bytes: tuple[int, ...]
    mib: tuple[float, ...]
    trainable_params: tuple[int, ...]


def adapter_size_rows(preset_id: str = ADAPTER_PRESET, target_sets: Sequence[str] = ADAPTER_TARGET_SETS,
                      dtypes: Sequence[str] = ADAPTER_DTYPES, ranks: Sequence[int] = ADAPTER_RANKS) -> tuple[AdapterSizeRow, ...]:
    """:func:`calc.adapters.adapter_file_bytes` for every (targets, dtype, rank); ``lora_alpha = 2r``."""
    arch = arch_of(preset_id)
    out = []
    for t in target_sets:
        for dt in dtypes:
            files = [adapter_file_bytes(arch, lora_spec(r, None, t), dt) for r in ranks]
            out.append(AdapterSizeRow(t, dt, tuple(ranks), tuple(f.bytes for f in files),
                                      tuple(mib(f.bytes) for f in files), tuple(f.params for f in files)))
    return tuple(out)


@dataclass(frozen=True)
class AdapterEntry:
    key: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class AdapterLayout:
    """The layout of one ``adapter_model.safetensors`` (:func:`calc.adapters.adapter_file_bytes`)."""

    preset_id: str
    r: int
    target_modules: str | tuple[str, ...]
    modules_to_save: tuple[str, ...]
    dtype: str
    base_dtype: str
    bytes: int
    header_bytes: int
    header_padding: int
    tensor_bytes: int
    tensors: int
    params: int
    first: tuple[AdapterEntry, ...]
    last: tuple[AdapterEntry, ...]
    header_start: str
    dtypes_in_order: tuple[str, ...]      # safetensors dtype codes in file order, each once

    @property
    def mib(self) -> float:
        return mib(self.bytes)

    @property
    def header_kib(self) -> float:
        return kib(self.header_bytes)

    @property
    def header_percent(self) -> float:
        return percent(self.header_bytes, self.bytes)


def adapter_layout(preset_id: str = "llama-3.2-1b", r: int = EXAMPLE_RANK, target_modules: str = ALL_LINEAR,
                   modules_to_save: Sequence[str] = (), dtype: str = "float32", base_dtype: str = "bfloat16",
                   head: int = 3, tail: int = 1, header_chars: int = 400) -> AdapterLayout:
    """What PEFT writes for a bf16 model saved with its defaults (fp32 LoRA tensors, base-dtype copies)."""
    spec = lora_spec(r, None, target_modules, modules_to_save=modules_to_save)
    f = adapter_file_bytes(arch_of(preset_id), spec, dtype, base_dtype)
    ents = [AdapterEntry(e.key, e.dtype, e.shape, e.begin, e.end) for e in f.entries]
    order = []
    for e in ents:
        if e.dtype not in order:
            order.append(e.dtype)
    return AdapterLayout(preset_id, r, spec.target_modules, tuple(modules_to_save), f.dtype, f.base_dtype, f.bytes,
                         f.header_bytes, f.header_padding, f.tensor_bytes, f.tensors, f.params, tuple(ents[:head]),
                         tuple(ents[-tail:]) if tail else (), f.header[:header_chars], tuple(order))


@dataclass(frozen=True)
class MergeRow:
    """Adapter file vs merged model (:func:`calc.adapters.merged_model_bytes`) vs the NF4 base."""

    preset_id: str
    name: str
    adapter_mib: float
    merged_fp32_gib: float
    merged_bf16_gib: float
    nf4_gib: float
    merged_per_adapter: float      # merged bf16 bytes over adapter bytes


MERGE_PRESETS = ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "qwen2.5-14b", "llama-3.1-70b")


def merge_rows(presets: Sequence[str] = MERGE_PRESETS, r: int = EXAMPLE_RANK) -> tuple[MergeRow, ...]:
    """For each preset: PEFT's default fp32 adapter at rank ``r`` on all linear layers, the merged model in fp32
    and bf16, and the model in NF4 (double quantization)."""
    out = []
    for pid in presets:
        ms = merge_sizes(pid, lora_spec(r))
        ws = weight_storage(pid)
        out.append(MergeRow(pid, name_of(pid), ms.adapter_mib, ms.merged_fp32_gib, ms.merged_gib, ws.nf4_gib, ms.ratio))
    return tuple(out)


SERVING_COUNTS = (1, 2, 10, 50, 100)


@dataclass(frozen=True)
class ServingRow:
    """Weights for N fine-tunes: one bf16 base + N unmerged adapters vs N merged bf16 models (GiB)."""

    n: int
    base_gib: float
    adapters_gib: float
    total_gib: float
    merged_copies_gib: float
    saving_factor: float       # merged copies over base + adapters


def serving_rows(preset_id: str = EXAMPLE_PRESET, r: int = EXAMPLE_RANK, counts: Sequence[int] = SERVING_COUNTS,
                 adapter_dtype: str = "float32") -> tuple[ServingRow, ...]:
    """Weights only (no KV cache, no activations): the adapters as PEFT holds them in memory (their tensor bytes;
    fp32 by default, ``PeftModel.from_pretrained(autocast_adapter_dtype=True)``), the base and each merged copy in
    bf16 (:func:`calc.adapters.merged_model_bytes`)."""
    arch = arch_of(preset_id)
    adapter = adapter_file_bytes(arch, lora_spec(r), adapter_dtype).tensor_bytes
    base = merged_model_bytes(arch, "bf16")
    out = []
    for n in counts:
        total = base + n * adapter
        out.append(ServingRow(n, gib(base), gib(n * adapter), gib(total), gib(n * base), n * base / total))
    return tuple(out)


def adapter_memory_mib(preset_id: str = EXAMPLE_PRESET, r: int = EXAMPLE_RANK, dtype: str = "float32") -> float:
    """One adapter's tensors in memory (no header), MiB."""
    return mib(adapter_file_bytes(arch_of(preset_id), lora_spec(r), dtype).tensor_bytes)


# =====================================================================================================
# Validation page
# =====================================================================================================
GROUP_LABELS = {"peft": "Hugging Face PEFT (MetaMathQA, L40S)", "fms": "IBM fms-acceleration (A100 80GB)",
                "h200": "ours, H200 grid", "h200b2": "ours, H200 second session"}
METRIC_LABELS = {"peak_allocated": "max_memory_allocated", "peak_reserved": "max_memory_reserved",
                 "peak_nvml_used": "nvidia-smi used", "component": "a component", "bound": "a bound",
                 "unspecified": "unspecified"}


def setup_text(setup) -> str:
    """A :class:`calc.memory.TrainingSetup` in words (the conditions a validation row states)."""
    parts = [f"b={setup.micro_batch}", f"s={setup.seq_len:,}",
             f"checkpointing {'on' if setup.gradient_checkpointing else 'off'}", setup.attn_implementation,
             "bf16 autocast" if setup.mixed_precision == "amp_bf16" else
             ("fp16 autocast" if setup.mixed_precision == "amp_fp16" else "no autocast"),
             OPTIMIZER_LABELS[setup.optimizer]]
    if setup.method == "full":
        parts.insert(0, f"full, {setup.base_precision} weights")
    else:
        t = setup.lora.target_modules
        targets = t if isinstance(t, str) else "+".join(t)
        base = setup.base_precision.upper() if setup.method == "qlora" else setup.base_precision
        parts.insert(0, f"{setup.method}, {base} base, r={setup.lora.r} on {targets}"
                        f"{', DoRA' if setup.lora.use_dora else ''}, {setup.adapter_dtype} adapters")
    if setup.keep_logits:
        parts.append("logits kept through backward")
    if setup.num_gpus > 1:
        parts.append(f"{setup.num_gpus} GPUs, {setup.sharding}")
    return ", ".join(parts)


@dataclass(frozen=True)
class ValidationRow:
    """One modelled point: measured vs estimated (GiB) and the signed error in percent."""

    id: str
    group: str
    group_label: str
    model: str
    conditions: str
    metric: str
    metric_label: str
    published: str
    measured_gib: float
    estimate_gib: float
    error_pct: float
    own: bool


@dataclass(frozen=True)
class UnmodelledRow:
    id: str
    model: str
    metric: str
    published: str
    reason: str


@dataclass(frozen=True)
class ValidationSummary:
    """:class:`calc.validation.Summary` plus counts (errors in percent)."""

    modelled: int
    unmodelled: int
    published_points: int
    own_points: int
    median_abs_error_pct: float
    median_abs_error_pct_published: float
    max_abs_error_pct: float
    max_abs_error_pct_published: float
    by_group: tuple[tuple[str, str, int, float], ...]     # (group, label, points, median |error| %)


@functools.lru_cache(maxsize=None)
def _validation():
    from calc.validation import run_validation

    return run_validation()


def validation_rows(own: bool | None = None) -> tuple[ValidationRow, ...]:
    """Every modelled point (:func:`calc.validation.run_validation`); ``own`` selects ours or the published ones."""
    rows, points, _ = _validation()
    by_id = {p.id: p for p in points}
    out = []
    for r in rows:
        p = by_id[r.id]
        if own is not None and p.own_measurement != own:
            continue
        out.append(ValidationRow(r.id, r.group, GROUP_LABELS.get(r.group, r.group), p.model, setup_text(p.setup),
                                 r.metric, METRIC_LABELS[r.metric], p.published if not p.own_measurement else
                                 f"{r.measured_bytes:,} B", gib(r.measured_bytes), gib(r.estimate_bytes), r.error_pct,
                                 p.own_measurement))
    return tuple(out)


def unmodelled_rows() -> tuple[UnmodelledRow, ...]:
    """Points kept in the data but not compared, with the reason stated there."""
    _, points, _ = _validation()
    return tuple(UnmodelledRow(p.id, p.model, METRIC_LABELS[p.metric], p.published, p.reason or "")
                 for p in points if not p.modelled)


def validation_summary() -> ValidationSummary:
    """Medians and maxima of |error| overall and over the published points only, and per group."""
    rows, points, s = _validation()
    own = {p.id for p in points if p.own_measurement}
    published = [abs(r.error_pct) for r in rows if r.id not in own]
    groups = []
    for g, med in s.median_abs_error_pct_by_group:
        groups.append((g, GROUP_LABELS.get(g, g), sum(1 for r in rows if r.group == g), med))
    return ValidationSummary(s.modelled, s.unmodelled, len(published), len(rows) - len(published),
                             s.median_abs_error_pct, s.median_abs_error_pct_published, s.max_abs_error_pct,
                             max(published) if published else float("nan"), tuple(groups))


@dataclass(frozen=True)
class MeasurementFile:
    """The provenance block of one of our measurement files, and allocator statistics over its points."""

    path: str
    id_prefix: str
    note: str
    gpu: str
    gpu_total_gib: float
    driver_version: str
    cuda_driver_api_version: str
    torch_cuda_runtime: str
    python: str
    libraries: tuple[tuple[str, str], ...]
    dates: tuple[str, ...]
    script: str
    notes: tuple[str, ...]
    points: int
    presets: tuple[str, ...]
    steps: tuple[int, ...]
    seeds: tuple[int, ...]
    reserved_ratio_min: float          # max_memory_reserved / max_memory_allocated over the points
    reserved_ratio_median: float
    reserved_ratio_max: float
    outside_allocator_mib: tuple[float, ...]   # distinct NVML per-process used − reserved (MiB)


def measurement_file(data: dict, path: str, id_prefix: str, note: str) -> MeasurementFile:
    """Pure part of :func:`measurement_files`: one parsed measurement YAML → :class:`MeasurementFile`."""
    prov = data.get("provenance") or {}
    pts = data.get("points") or []
    ratios = [p["max_memory_reserved_bytes"] / p["max_memory_allocated_bytes"] for p in pts
              if p.get("max_memory_reserved_bytes") and p.get("max_memory_allocated_bytes")]
    outside = sorted({p["nvml_process_used_bytes_end"] - p["memory_reserved_end_bytes"] for p in pts
                      if p.get("nvml_process_used_bytes_end") and p.get("memory_reserved_end_bytes")})
    libs = prov.get("libraries") or {}
    return MeasurementFile(
        path=path, id_prefix=id_prefix, note=note, gpu=str(prov.get("gpu", "")),
        gpu_total_gib=gib(int(prov.get("gpu_total_memory_bytes", 0))), driver_version=str(prov.get("driver_version", "")),
        cuda_driver_api_version=str(prov.get("cuda_driver_api_version", "")),
        torch_cuda_runtime=str(prov.get("torch_cuda_runtime", "")), python=str(prov.get("python", "")),
        libraries=tuple((str(k), str(v)) for k, v in libs.items()),
        dates=tuple(str(d) for d in prov.get("dates_utc") or ()), script=str(prov.get("script", "")),
        notes=tuple(str(n) for n in prov.get("notes") or ()), points=len(pts),
        presets=tuple(dict.fromkeys(str(p.get("preset")) for p in pts)),
        steps=tuple(sorted({int(p["steps"]) for p in pts if "steps" in p})),
        seeds=tuple(sorted({int(p["seed"]) for p in pts if "seed" in p})),
        reserved_ratio_min=min(ratios) if ratios else float("nan"),
        reserved_ratio_median=statistics.median(ratios) if ratios else float("nan"),
        reserved_ratio_max=max(ratios) if ratios else float("nan"),
        outside_allocator_mib=tuple(mib(b) for b in outside))


@functools.lru_cache(maxsize=None)
def _measurement_data() -> tuple[tuple[dict, dict], ...]:
    """(listing entry, parsed file) for each measurement file ``published_measurements.yaml`` lists (reads files)."""
    from calc.validation import DATA_FILE, read_data_yaml

    listing = read_data_yaml(DATA_FILE)
    return tuple((mf, read_data_yaml((Path(DATA_FILE).parent / mf["path"]).resolve()))
                 for mf in listing.get("measurement_files") or ())


def measurement_files() -> tuple[MeasurementFile, ...]:
    """Our measurement files, as ``calc/data/published_measurements.yaml`` lists them."""
    return tuple(measurement_file(data, f"calc/data/{mf['path']}", mf["id_prefix"], mf.get("note", ""))
                 for mf, data in _measurement_data())


@dataclass(frozen=True)
class ReservedRatios:
    """``max_memory_reserved / max_memory_allocated`` over every point of our measurement files."""

    points: int
    min: float
    median: float
    max: float


def reserved_ratios() -> ReservedRatios:
    """The allocator's slack on our runs: what fragmentation added to the peak, as a ratio."""
    ratios = [p["max_memory_reserved_bytes"] / p["max_memory_allocated_bytes"]
              for _, data in _measurement_data() for p in data.get("points") or ()
              if p.get("max_memory_reserved_bytes") and p.get("max_memory_allocated_bytes")]
    if not ratios:
        raise CalcError("no measured point has both reserved and allocated peaks")
    return ReservedRatios(len(ratios), min(ratios), statistics.median(ratios), max(ratios))


# =====================================================================================================
# Small lookups for prose
# =====================================================================================================
@dataclass(frozen=True)
class MethodMemoryView:
    """One method's modelled peak and required memory (GiB) under the handbook's conditions plus overrides."""

    peak_gib: float
    required_gib: float
    phase: str
    weights_gib: float


def method_memory_view(preset_id: str = EXAMPLE_PRESET, method: str = "qlora", r: int = EXAMPLE_RANK,
                  **conditions: Any) -> MethodMemoryView:
    """:func:`calc.compare_methods` for one method, with any :class:`~calc.memory.TrainingSetup` override
    (``optimizer="adamw_fused"``, ``gradient_checkpointing=False`` …)."""
    m = compare_methods(preset_id, lora_spec(r), (method,), **conditions)[0]
    return MethodMemoryView(m.peak_gib, m.required_gib, m.estimate.phase, m.weights_gib)


def model_name(preset_id: str) -> str:
    """A preset's display name."""
    return name_of(preset_id)


#: Margin of the estimate-vs-measured chart's log axes beyond the smallest and largest value (a factor).
EXTENT_MARGIN = 1.25


def validation_extent() -> tuple[float, float]:
    """The axis domain of the estimate-vs-measured chart, GiB: the smallest and largest of every measured and
    estimated value of :func:`validation_rows`, widened by :data:`EXTENT_MARGIN` on a log scale."""
    rows = validation_rows()
    vals = [v for r in rows for v in (r.measured_gib, r.estimate_gib)]
    return min(vals) / EXTENT_MARGIN, max(vals) * EXTENT_MARGIN
