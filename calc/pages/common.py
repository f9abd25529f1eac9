"""What the page groups share: units, preset lookups, and the handbook's default conditions.

Every page module of :mod:`calc.pages` uses these: byte → GiB/MiB/KiB conversions and percentages (so that the
macros only format), the handbook's example model and rank, the training conditions every memory figure is quoted
under (:data:`DEFAULT_CONDITIONS`), and the full / LoRA / QLoRA comparison and GPU fit built on them.

Units: sizes are bytes, with ``*_gib`` views in GiB (2^30 bytes), ``*_mib`` in MiB (2^20 bytes) and ``*_kib`` in
KiB (2^10 bytes); shares are percentages (0-100).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from calc.architecture import Architecture
from calc.errors import CalcError
from calc.lora import ALL_LINEAR, LoraCount, LoraSpec, count_lora
from calc.presets import get_preset

GIB = 1 << 30
MIB = 1 << 20
KIB = 1 << 10


def gib(nbytes: int | float) -> float:
    """Bytes → GiB (2^30 bytes)."""
    return nbytes / GIB


def mib(nbytes: int | float) -> float:
    """Bytes → MiB (2^20 bytes)."""
    return nbytes / MIB


def kib(nbytes: int | float) -> float:
    """Bytes → KiB (2^10 bytes)."""
    return nbytes / KIB


def percent(part: float, whole: float) -> float:
    """``100 · part / whole``; :class:`CalcError` for a zero whole."""
    if whole == 0:
        raise CalcError("cannot take a share of zero")
    return 100.0 * part / whole


def arch_of(preset_id: str) -> Architecture:
    return get_preset(preset_id).architecture


def name_of(preset_id: str) -> str:
    return get_preset(preset_id).name


#: The handbook's example model and LoRA rank (``lora_alpha = 2r``, all linear layers).
EXAMPLE_PRESET = "llama-3.1-8b"
EXAMPLE_RANK = 16




OPTIMIZER_LABELS = {
    "adamw": "torch AdamW (foreach)",
    "adamw_fused": "torch AdamW (fused)",
    "adamw_8bit": "bitsandbytes AdamW 8-bit",
    "paged_adamw_8bit": "bitsandbytes paged AdamW 8-bit",
    "paged_adamw_32bit": "bitsandbytes paged AdamW 32-bit",
    "sgd": "torch SGD with momentum",
}

def conditions_text(r: int = EXAMPLE_RANK, gradient_checkpointing: bool = True) -> str:
    """The handbook's memory conditions in words, read back from the setups :func:`calc.method_setup` builds."""
    q = method_setup("qlora", lora_spec(r), gradient_checkpointing=gradient_checkpointing)
    full = method_setup("full", gradient_checkpointing=gradient_checkpointing)
    opt = OPTIMIZER_LABELS[q.optimizer]
    return (f"micro-batch {q.micro_batch} × sequence {q.seq_len:,} tokens, gradient checkpointing "
            f"{'on' if q.gradient_checkpointing else 'off'}, {opt}, {q.attn_implementation.upper()} attention, "
            f"{q.mixed_precision.removeprefix('amp_')} autocast, loss as HF Trainer computes it (logits not kept); "
            f"full fine-tuning: every weight trainable in {full.base_precision} with {full.base_precision} AdamW states "
            f"and no fp32 master copy; LoRA: frozen {method_setup('lora').base_precision} base; QLoRA: "
            f"{q.base_precision.upper()} base with double quantization "
            f"{'on' if q.bnb_4bit_use_double_quant else 'off'}, {q.bnb_4bit_compute_dtype} compute, "
            f"prepare_model_for_kbit_training {'on' if q.prepare_kbit else 'off'}; LoRA and QLoRA at r={q.lora.r}, "
            f"lora_alpha={q.lora.lora_alpha:g} on all linear layers with {q.adapter_dtype} adapter weights (PEFT's "
            f"default). Peak = modelled torch.cuda.max_memory_allocated(); required = peak + the CUDA context of one "
            f"process ({gib(cuda_context_bytes()):.2f} GiB, outside the allocator). GiB = 2^30 bytes")


def cuda_context_bytes() -> int:
    """Memory outside the caching allocator per process (:data:`calc.memory.CUDA_CONTEXT_BYTES`)."""
    from calc.memory import CUDA_CONTEXT_BYTES

    return CUDA_CONTEXT_BYTES


def cuda_context_mib() -> float:
    return mib(cuda_context_bytes())


def cuda_workspace_mib() -> float:
    """cuBLAS workspaces the model counts (:data:`calc.memory.CUDA_WORKSPACE_BYTES`), MiB."""
    from calc.memory import CUDA_WORKSPACE_BYTES

    return mib(CUDA_WORKSPACE_BYTES)




#: The training conditions of every memory figure the home page and the FAQ quote (keyword arguments of
#: :class:`calc.memory.TrainingSetup`): one sequence of 2,048 tokens per step, gradient checkpointing on,
#: torch AdamW, SDPA attention, bf16 autocast; everything else at the setup's defaults.
DEFAULT_CONDITIONS: dict[str, Any] = {
    "micro_batch": 1,
    "seq_len": 2048,
    "gradient_checkpointing": True,
    "optimizer": "adamw",
    "attn_implementation": "sdpa",
    "mixed_precision": "amp_bf16",
}


def lora_spec(r: int = 16, lora_alpha: float | None = None, target_modules: str | Sequence[str] = ALL_LINEAR,
              *, use_dora: bool = False, use_rslora: bool = False, modules_to_save: Sequence[str] = (),
              bias: str = "none") -> LoraSpec:
    """A :class:`~calc.lora.LoraSpec` with the handbook's default ``lora_alpha = 2r`` when none is given."""
    alpha = 2 * r if lora_alpha is None else lora_alpha
    targets = target_modules if isinstance(target_modules, str) else tuple(target_modules)
    return LoraSpec(r=r, lora_alpha=alpha, target_modules=targets, use_dora=use_dora, use_rslora=use_rslora,
                    modules_to_save=tuple(modules_to_save), bias=bias)


def lora_count(preset_id: str, spec: LoraSpec) -> LoraCount:
    """:func:`calc.lora.count_lora` for a preset id."""
    return count_lora(get_preset(preset_id).architecture, spec)


# -- memory by method ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MethodMemory:
    """The modelled peak of one method (:func:`calc.memory.estimate_memory`) plus the CUDA context.

    ``peak_bytes`` is one device's peak allocated memory; ``required_bytes`` adds the context that lives
    outside the allocator - the amount a GPU must have free (what :func:`calc.gpus.fit` compares).
    """

    method: str
    setup: Any                 # calc.memory.TrainingSetup
    estimate: Any              # calc.memory.MemoryEstimate
    peak_bytes: int
    context_bytes: int
    required_bytes: int
    weights_bytes: int

    @property
    def peak_gib(self) -> float:
        return gib(self.peak_bytes)

    @property
    def context_gib(self) -> float:
        return gib(self.context_bytes)

    @property
    def required_gib(self) -> float:
        return gib(self.required_bytes)

    @property
    def weights_gib(self) -> float:
        return gib(self.weights_bytes)


def method_setup(method: str, spec: LoraSpec | None = None, **conditions: Any):
    """A :class:`calc.memory.TrainingSetup` for ``method`` under :data:`DEFAULT_CONDITIONS` (overridable).
    ``spec`` is ignored for ``full``; lora/qlora without one get :func:`lora_spec`'s defaults."""
    from calc.memory import TrainingSetup

    kwargs = {**DEFAULT_CONDITIONS, **conditions}
    lora = None if method == "full" else (spec if spec is not None else lora_spec())
    return TrainingSetup(method=method, lora=lora, **kwargs)


def method_memory(arch: Architecture, setup) -> MethodMemory:
    """Peak, CUDA context and required memory of one setup on ``arch`` (bytes)."""
    from calc.memory import estimate_memory

    est = estimate_memory(arch, setup)
    peak = est.device_bytes
    return MethodMemory(setup.method, setup, est, peak, est.cuda_context_bytes, peak + est.cuda_context_bytes,
                        est.component("weights"))


def compare_methods(preset_id: str, spec: LoraSpec | None = None,
                    methods: Iterable[str] = ("full", "lora", "qlora"), **conditions: Any) -> list[MethodMemory]:
    """:func:`method_memory` of each method for one preset under the same conditions."""
    arch = get_preset(preset_id).architecture
    return [method_memory(arch, method_setup(m, spec, **conditions)) for m in methods]


def memory_ratio(larger: MethodMemory, smaller: MethodMemory) -> float:
    """How many times ``larger`` needs the memory of ``smaller`` (required bytes over required bytes)."""
    return larger.required_bytes / smaller.required_bytes


# -- will it fit ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GpuFit:
    """:func:`calc.gpus.fit` for one GPU, with GiB views."""

    gpu: Any                   # calc.gpus.Gpu
    usable_bytes: int
    required_bytes: int
    headroom_bytes: int
    fits: bool

    @property
    def usable_gib(self) -> float:
        return gib(self.usable_bytes)

    @property
    def required_gib(self) -> float:
        return gib(self.required_bytes)

    @property
    def headroom_gib(self) -> float:
        return gib(self.headroom_bytes)


def gpus_like(gpu_id: str) -> list[Any]:
    """Every GPU sold with the same memory as ``gpu_id`` (equal ``marketed`` figure), in file order."""
    from calc.gpus import all_gpus, get_gpu

    ref = get_gpu(gpu_id)
    return [g for g in all_gpus().values() if g.marketed == ref.marketed]


def fit_gpus(memory: MethodMemory, gpus: Sequence[Any]) -> list[GpuFit]:
    """Does ``memory`` (peak + CUDA context) fit each GPU's usable memory?"""
    from calc.gpus import fit

    out = []
    for g in gpus:
        r = fit(g, memory.peak_bytes, memory.context_bytes)
        out.append(GpuFit(g, r.usable_bytes, r.required_bytes, r.headroom_bytes, r.fits))
    return out


