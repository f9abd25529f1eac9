"""Figures for the QLoRA and NF4 pages (``macros/quant_pages.py``).

The macros format what these functions return and do no arithmetic of their own: every unit conversion, ratio,
share and per-token division happens here. Each function is a thin, pure layer over the tested modules:

* :mod:`calc.quant` - the NF4/FP4/int4 code books, bitsandbytes-exact blockwise quantization, storage bytes;
* :mod:`calc.memory` - :func:`~calc.memory.estimate_memory` (the modelled ``max_memory_allocated`` peak);
* :mod:`calc.pages.common` - the handbook's default training conditions and the full/LoRA/QLoRA comparison.

Units: sizes are bytes, with ``*_gib``/``*_mib``/``*_kib`` views (2^30/2^20/2^10 bytes); bits per parameter are
bits; shares and errors are percentages (0-100).

Sources, beyond the modules named above: QLoRA (Dettmers et al. 2023, arXiv 2305.14314) §3 for NF4, double
quantization (``8/64 + 32/(64·256) = 0.127`` bits per parameter) and paged optimizers; bitsandbytes 0.50.2
``bitsandbytes/optim/optimizer.py`` (``get_state_buffer``: paged state for tensors of at least 1e5 elements);
the project's research notes ``memory-model.md`` §2-§5.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np

from calc.architecture import Architecture
from calc.errors import CalcError
from calc.pages.common import (EXAMPLE_PRESET, EXAMPLE_RANK, OPTIMIZER_LABELS, arch_of, compare_methods, gib, lora_spec, method_setup, mib, name_of, percent)
from calc.pages.site import weight_storage


# =====================================================================================================
# NF4 page
# =====================================================================================================
@dataclass(frozen=True)
class Nf4Level:
    """One NF4 level as ``bitsandbytes.functional.create_normal_map`` builds it.

    ``code`` is the stored 4-bit code (the index into the table), ``bits`` its binary form. ``probability``
    is the point of ``linspace(offset, 0.5, …)`` fed to the normal quantile function Φ⁻¹ (``None`` for the
    zero level), ``quantile`` the signed Φ⁻¹ value before normalisation (in standard deviations), and
    ``value`` the level after division by the largest quantile: :func:`calc.quant.nf4_code` ``[code]``.
    """

    code: int
    bits: str
    side: str                  # "negative", "zero" or "positive"
    probability: float | None
    quantile: float
    value: float


@functools.lru_cache(maxsize=None)
def nf4_levels() -> tuple[Nf4Level, ...]:
    """The 16 NF4 levels with the probabilities and quantiles they come from (ascending = code order).

    bitsandbytes 0.50.2 ``create_normal_map(offset=0.9677083, use_extra_value=True)``: 8 positive levels
    ``Φ⁻¹(linspace(offset, 0.5, 9)[:-1])``, 7 negative ones ``−Φ⁻¹(linspace(offset, 0.5, 8)[:-1])`` and 0,
    sorted and divided by the maximum. ``linspace`` in float32 as torch computes it
    (:func:`calc.quant._linspace_f32`), Φ⁻¹ in float64; ``value`` is taken from :func:`calc.quant.nf4_code`
    (which rounds the same quantiles to float32 before normalising).
    """
    from calc.quant import NF4_OFFSET, _linspace_f32, nf4_code

    inv = NormalDist().inv_cdf
    neg = [(float(p), -inv(float(p))) for p in _linspace_f32(NF4_OFFSET, 0.5, 8)[:-1]]      # most negative first
    pos = [(float(p), inv(float(p))) for p in _linspace_f32(NF4_OFFSET, 0.5, 9)[:-1]][::-1]  # smallest first
    code = nf4_code()
    rows = []
    entries = [("negative", p, q) for p, q in neg] + [("zero", None, 0.0)] + [("positive", p, q) for p, q in pos]
    for i, (side, p, q) in enumerate(entries):
        rows.append(Nf4Level(i, format(i, "04b"), side, p, q, float(code[i])))
    return tuple(rows)


def nf4_offset() -> float:
    """``create_normal_map``'s outermost probability (:data:`calc.quant.NF4_OFFSET`)."""
    from calc.quant import NF4_OFFSET

    return NF4_OFFSET


def nf4_outer_quantile() -> float:
    """Φ⁻¹ of the outermost probability: the quantile NF4's ±1 stand for, in standard deviations."""
    return nf4_levels()[-1].quantile


@dataclass(frozen=True)
class CodeBook:
    """A 4-bit code book: the 16 levels in code order and what they cover in ``[-1, 1]``.

    ``distinct`` are the different values, ascending (FP4 and int4 spend two codes on zero);
    ``max_gap``/``min_gap`` the largest/smallest distance between neighbouring distinct levels;
    ``inner_levels`` how many distinct levels lie in ``[-0.5, 0.5]``.
    """

    name: str
    label: str
    levels: tuple[float, ...]
    distinct: tuple[float, ...]
    zero_codes: int
    max_gap: float
    min_gap: float
    inner_levels: int

    @property
    def distinct_count(self) -> int:
        return len(self.distinct)


CODE_LABELS = {"nf4": "NF4", "fp4": "FP4", "int4": "int4 (absmax, symmetric)"}


@functools.lru_cache(maxsize=None)
def code_books() -> tuple[CodeBook, ...]:
    """NF4, FP4 and int4 (:func:`calc.quant.code_by_name`) side by side."""
    from calc.quant import code_by_name

    out = []
    for name in ("nf4", "fp4", "int4"):
        levels = tuple(float(v) for v in code_by_name(name))
        distinct = tuple(sorted(set(levels)))
        gaps = np.diff(np.array(distinct, dtype=np.float64))
        out.append(CodeBook(name, CODE_LABELS[name], levels, distinct, sum(1 for v in levels if v == 0.0),
                            float(gaps.max()), float(gaps.min()), sum(1 for v in distinct if -0.5 <= v <= 0.5)))
    return tuple(out)


# -- blockwise absmax: a worked example ----------------------------------------------------------------------------
#: The worked example: one block of bitsandbytes' default size, seeded N(0, 1) values.
EXAMPLE_SEED = 7
EXAMPLE_BLOCKSIZE = 64
#: How many leading values of the block the page shows (plus the one that sets the absmax).
EXAMPLE_SHOWN = 8


@dataclass(frozen=True)
class BlockValue:
    """One value of the example block through quantize → dequantize (units: the weights' own)."""

    index: int
    x: float                   # the input (float32)
    scaled: float              # x / absmax, in [-1, 1]
    code: int                  # stored 4-bit code
    bits: str
    level: float               # NF4 level of that code
    dequantized: float         # level · absmax, what bitsandbytes' dequantize_4bit returns
    error: float               # dequantized - x


@dataclass(frozen=True)
class BlockExample:
    """:func:`calc.quant.quantize_4bit` (NF4, no double quantization) on one seeded block."""

    seed: int
    blocksize: int
    absmax: float
    absmax_index: int
    values: tuple[BlockValue, ...]
    packed_hex: tuple[str, ...]       # the first packed bytes, two codes each (first code in the high nibble)
    mse: float
    max_abs_error: float
    shown: tuple[BlockValue, ...]     # the first EXAMPLE_SHOWN values, plus the absmax one if it is later

    @property
    def packed_bytes(self) -> int:
        """Bytes of packed codes for the block (two 4-bit codes per byte)."""
        return (self.blocksize + 1) // 2


@functools.lru_cache(maxsize=None)
def blockwise_example(seed: int = EXAMPLE_SEED, blocksize: int = EXAMPLE_BLOCKSIZE,
                      shown: int = EXAMPLE_SHOWN) -> BlockExample:
    """Quantize ``blocksize`` values of N(0, 1) (:func:`calc.quant.gaussian_weights` with ``seed``) with NF4."""
    from calc.quant import dequantize_4bit, gaussian_weights, nf4_code, quantize_4bit, unpack_4bit

    x = gaussian_weights(blocksize, seed)
    q = quantize_4bit(x, "nf4", blocksize, double_quant=False)
    absmax = float(q.absmax[0])
    codes = unpack_4bit(q.packed, x.size)
    deq = dequantize_4bit(q)
    levels = nf4_code()
    values = tuple(
        BlockValue(i, float(x[i]), float(np.float32(x[i]) * (np.float32(1.0) / np.float32(absmax))), int(codes[i]),
                   format(int(codes[i]), "04b"), float(levels[codes[i]]), float(deq[i]),
                   float(np.float64(deq[i]) - np.float64(x[i])))
        for i in range(x.size))
    imax = int(np.argmax(np.abs(x)))
    picked = list(values[:shown]) + ([values[imax]] if imax >= shown else [])
    err = deq.astype(np.float64) - x.astype(np.float64)
    return BlockExample(seed, blocksize, absmax, imax, values,
                        tuple(f"0x{int(b):02X}" for b in q.packed[: shown // 2]),
                        float(np.mean(err * err)), float(np.max(np.abs(err))), tuple(picked))


# -- bits per parameter -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BitsRow:
    """Storage bits per weight element for one storage format (asymptotic: per-tensor tables left out)."""

    storage: str
    blocksize: int | None
    double_quant: bool | None
    bits: float
    scale_bits: float          # bits spent on scales (0 for 16/32-bit; LLM.int8's row scale)
    bytes_per_param: float
    percent_of_bf16: float


#: int8 (LLM.int8) row scales are per output row: the bits depend on in_features; this is Llama's 4096.
INT8_EXAMPLE_IN_FEATURES = 4096
BITS_BLOCKSIZES = (32, 64, 128, 256)


@functools.lru_cache(maxsize=None)
def bits_rows(blocksizes: tuple[int, ...] = BITS_BLOCKSIZES) -> tuple[BitsRow, ...]:
    """:func:`calc.quant.bits_per_parameter` for fp32, bf16, int8 and 4-bit at each blocksize, with and without
    double quantization (QLoRA §3: 4.5 bits without, 4.127 with, at blocksize 64)."""
    from calc.quant import bits_per_parameter

    bf16 = bits_per_parameter("bf16")

    def row(storage, bs, dq, bits, base):
        return BitsRow(storage, bs, dq, bits, bits - base, bits / 8, percent(bits, bf16))

    rows = [row("fp32", None, None, bits_per_parameter("fp32"), bits_per_parameter("fp32")),
            row("bf16 / fp16", None, None, bf16, bf16),
            row("int8 (LLM.int8)", None, None, bits_per_parameter("int8", in_features=INT8_EXAMPLE_IN_FEATURES), 8.0)]
    for bs in blocksizes:
        for dq in (False, True):
            rows.append(row("NF4 / FP4", bs, dq, bits_per_parameter("nf4", dq, blocksize=bs), 4.0))
    return tuple(rows)


def bits_at(blocksize: int = 64, double_quant: bool = True) -> BitsRow:
    """The 4-bit row of :func:`bits_rows` for one blocksize and double-quantization setting."""
    for r in bits_rows():
        if r.blocksize == blocksize and r.double_quant == double_quant:
            return r
    raise CalcError(f"no 4-bit row for blocksize {blocksize}", field="blocksize")


def dq_saving_bits(blocksize: int = 64) -> float:
    """Bits per parameter double quantization saves at ``blocksize`` (QLoRA §3: 0.373 at 64)."""
    return bits_at(blocksize, False).bits - bits_at(blocksize, True).bits


# -- one weight as bitsandbytes stores it ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredTensor:
    """One tensor of a stored weight: bitsandbytes attribute, dtype, elements, bytes."""

    name: str
    dtype: str
    numel: int
    nbytes: int


@dataclass(frozen=True)
class WeightBreakdown:
    """Every tensor one ``out × in`` weight occupies in ``precision`` (:func:`calc.quant.storage_tensors`).

    ``allocated_bytes`` rounds each tensor up to the CUDA caching allocator's 512 B blocks
    (:func:`calc.quant.allocated_bytes`); ``bits_per_weight`` is ``8 · total_bytes / (out·in)``.
    """

    out_features: int
    in_features: int
    precision: str
    double_quant: bool
    tensors: tuple[StoredTensor, ...]
    total_bytes: int
    allocated_bytes: int
    bits_per_weight: float

    @property
    def numel(self) -> int:
        return self.out_features * self.in_features

    @property
    def total_mib(self) -> float:
        return mib(self.total_bytes)

    @property
    def allocated_mib(self) -> float:
        return mib(self.allocated_bytes)

    @property
    def percent_of_bf16(self) -> float:
        """Total bytes as a share of the same weight in bf16 (2 bytes per element)."""
        return percent(self.total_bytes, 2 * self.numel)


@functools.lru_cache(maxsize=None)
def weight_breakdown(out_features: int = 4096, in_features: int = 4096, precision: str = "nf4",
                     double_quant: bool = True, blocksize: int = 64) -> WeightBreakdown:
    """One weight's tensors and bytes as bitsandbytes allocates them (a 4096×4096 projection by default)."""
    from calc.quant import allocated_bytes, storage_tensors

    n = out_features * in_features
    ts = storage_tensors(n, precision, rows=out_features, blocksize=blocksize, double_quant=double_quant)
    total = sum(t.nbytes for t in ts)
    return WeightBreakdown(out_features, in_features, precision, bool(double_quant) and precision in ("nf4", "fp4"),
                           tuple(StoredTensor(t.name, t.dtype, t.numel, t.nbytes) for t in ts), total,
                           allocated_bytes(ts), 8 * total / n)


# -- quantization error ---------------------------------------------------------------------------------------------
#: The error measurement: seeded N(0, 1) weights, 2^20 of them, bitsandbytes' default blocksize.
ERROR_SEED = 0
ERROR_SAMPLES = 1 << 20
ERROR_BLOCKSIZE = 64


@dataclass(frozen=True)
class ErrorRow:
    """Round-trip error of one 4-bit format on the same samples (units of the samples' standard deviation)."""

    code: str
    label: str
    double_quant: bool
    mse: float
    mae: float
    rmse: float
    max_abs: float
    mse_vs_nf4: float          # this format's MSE over NF4's (single-level scales)
    numel: int


@functools.lru_cache(maxsize=None)
def quantization_errors(seed: int = ERROR_SEED, n: int = ERROR_SAMPLES,
                        blocksize: int = ERROR_BLOCKSIZE) -> tuple[ErrorRow, ...]:
    """NF4, NF4 with double quantization, FP4 and int4 on ``n`` samples of N(0, 1) from ``seed``.

    Single-level rows are :func:`calc.quant.quantization_error`; the double-quantized row runs
    :func:`calc.quant.quantize_4bit` (``double_quant=True``) and :func:`calc.quant.dequantize_4bit` and takes the
    same statistics in float64.
    """
    from calc.quant import dequantize_4bit, gaussian_weights, quantization_error, quantize_4bit

    x = gaussian_weights(n, seed)
    single = {c: quantization_error(c, x, blocksize) for c in ("nf4", "fp4", "int4")}
    err = dequantize_4bit(quantize_4bit(x, "nf4", blocksize, double_quant=True)).astype(np.float64) \
        - x.astype(np.float64)
    dq_mse = float(np.mean(err * err))
    base = single["nf4"].mse
    rows = [ErrorRow("nf4", "NF4", False, base, single["nf4"].mae, single["nf4"].rmse, single["nf4"].max_abs, 1.0, n),
            ErrorRow("nf4", "NF4 + double quantization", True, dq_mse, float(np.mean(np.abs(err))), math.sqrt(dq_mse),
                     float(np.max(np.abs(err))), dq_mse / base, n)]
    for c in ("fp4", "int4"):
        e = single[c]
        rows.append(ErrorRow(c, CODE_LABELS[c], False, e.mse, e.mae, e.rmse, e.max_abs, e.mse / base, n))
    return tuple(rows)


# =====================================================================================================
# QLoRA page
# =====================================================================================================
_KIND_LABELS = {"linear": "linear layers", "conv1d": "Conv1D layers", "experts": "MoE expert stacks",
                "router": "MoE routers", "norm": "norms", "embedding": "embeddings", "lm_head": "lm_head"}


@dataclass(frozen=True)
class QloraStorageRow:
    """A model's weights in bf16 and in NF4 (double quantization, the rest in bf16) - what stays 16-bit."""

    preset_id: str
    name: str
    total_params: int
    quantized_params: int
    quantized_percent: float
    bf16_gib: float
    nf4_gib: float
    ratio: float               # bf16 bytes over NF4 bytes
    kept_16bit: str            # the module kinds left in 16-bit (biases are always kept)


#: Presets the QLoRA storage table lists: dense models of several sizes, a 256k-vocabulary model, MoE, Falcon.
QLORA_STORAGE_PRESETS = ("llama-3.2-1b", "qwen2.5-7b", "llama-3.1-8b", "gemma-2-9b", "llama-3.1-70b",
                         "mixtral-8x7b", "qwen1.5-moe-a2.7b", "falcon-7b")


def qlora_storage_row(preset_id: str) -> QloraStorageRow:
    """:func:`calc.quant.model_weight_bytes` in bf16 and NF4 (double quantization, blocksize 64)."""
    from calc.quant import model_weight_bytes

    arch = arch_of(preset_id)
    bf16 = model_weight_bytes(arch, "bf16")
    nf4 = model_weight_bytes(arch, "nf4", True)
    kept = []
    for m in nf4.modules:
        if not m.quantized and m.params and _KIND_LABELS[m.kind] not in kept:
            kept.append(_KIND_LABELS[m.kind])
    return QloraStorageRow(preset_id, name_of(preset_id), arch.total_params, nf4.quantized_params,
                           percent(nf4.quantized_params, arch.total_params), gib(bf16.total_bytes), gib(nf4.total_bytes),
                           bf16.total_bytes / nf4.total_bytes, ", ".join(kept))


@dataclass(frozen=True)
class ModuleStorageRow:
    """One weight kind of a model loaded in 4-bit: how it is stored and its bytes (all layers, biases included)."""

    name: str
    kind: str
    count: int
    params: int
    storage: str
    gib: float
    mib: float


def module_storage_rows(preset_id: str, precision: str = "nf4", double_quant: bool = True) -> tuple[ModuleStorageRow, ...]:
    """:func:`calc.quant.model_weight_bytes` itemised by weight kind."""
    from calc.quant import model_weight_bytes

    wb = model_weight_bytes(arch_of(preset_id), precision, double_quant)
    return tuple(ModuleStorageRow(m.name, m.kind, m.count, m.params, m.storage, gib(m.total_bytes), mib(m.total_bytes))
                 for m in wb.modules)


@dataclass(frozen=True)
class DoubleQuantSaving:
    """What double quantization saves on one model's weights (NF4, blocksize 64)."""

    nf4_single_gib: float
    nf4_double_gib: float
    saving_gib: float
    saving_mib: float


def double_quant_saving(preset_id: str) -> DoubleQuantSaving:
    """NF4 weights with and without double quantization (:func:`calc.weight_storage`)."""
    ws = weight_storage(preset_id)
    return DoubleQuantSaving(ws.nf4_single_gib, ws.nf4_gib, gib(ws.nf4_single_bytes - ws.nf4_bytes),
                             mib(ws.nf4_single_bytes - ws.nf4_bytes))


@dataclass(frozen=True)
class DequantTransient:
    """The dense weight ``MatMul4Bit`` materialises for the largest quantized linear layer (compute dtype)."""

    module: str
    out_features: int
    in_features: int
    nbytes: int

    @property
    def mib(self) -> float:
        return mib(self.nbytes)


def dequant_transient(preset_id: str, compute_bytes: int = 2) -> DequantTransient:
    """``out·in·compute_bytes`` for the widest quantized linear (bitsandbytes 0.50 dequantizes each weight in the
    backward of ``MatMul4Bit``; memory-model §2.3). bf16 compute: 2 bytes."""
    mods = [m for m in arch_of(preset_id).modules if m.kind in ("linear", "conv1d")]
    m = max(mods, key=lambda m: m.in_features * m.out_features)
    return DequantTransient(m.name, m.out_features, m.in_features, m.in_features * m.out_features * compute_bytes)


@dataclass(frozen=True)
class KbitPrepare:
    """QLoRA with and without ``prepare_model_for_kbit_training``'s fp32 upcast, at the handbook's conditions.

    ``unquantized_params``: the parameters it casts (everything bitsandbytes left in 16-bit).
    ``checkpoint_bytes_per_token_layer``: what gradient checkpointing keeps per token and layer (the residual
    stream: 2h in bf16, 4h in fp32). Peaks are one device's modelled ``max_memory_allocated``.
    """

    unquantized_params: int
    weights_bf16_gib: float
    weights_fp32_gib: float
    weights_extra_gib: float
    checkpoint_bf16: int
    checkpoint_fp32: int
    peak_bf16_gib: float
    peak_fp32_gib: float
    peak_extra_gib: float
    phase_bf16: str
    phase_fp32: str


def kbit_prepare(preset_id: str = EXAMPLE_PRESET, r: int = EXAMPLE_RANK) -> KbitPrepare:
    """:func:`calc.memory.estimate_memory` for QLoRA with ``prepare_kbit`` off and on."""
    from calc.memory import estimate_memory
    from calc.quant import model_weight_bytes

    arch = arch_of(preset_id)
    spec = lora_spec(r)
    est = {}
    for flag in (False, True):
        setup = method_setup("qlora", spec, prepare_kbit=flag)
        est[flag] = (setup, estimate_memory(arch, setup))
    wb = model_weight_bytes(arch, "nf4", True)
    off, on = est[False][1], est[True][1]
    tokens = est[True][0].tokens

    def ckpt(e) -> int:
        return e.activations.per_layer // tokens

    return KbitPrepare(
        unquantized_params=arch.total_params - wb.quantized_params,
        weights_bf16_gib=gib(off.component("weights")), weights_fp32_gib=gib(on.component("weights")),
        weights_extra_gib=gib(on.component("weights") - off.component("weights")),
        checkpoint_bf16=ckpt(off), checkpoint_fp32=ckpt(on),
        peak_bf16_gib=gib(off.device_bytes), peak_fp32_gib=gib(on.device_bytes),
        peak_extra_gib=gib(on.device_bytes - off.device_bytes), phase_bf16=off.phase, phase_fp32=on.phase)


# -- optimizers ----------------------------------------------------------------------------------------------------
QLORA_OPTIMIZERS = ("adamw", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit")


def paged_state_bytes(arch: Architecture, setup) -> int:
    """Optimizer state a bitsandbytes *paged* optimizer puts in CUDA unified memory (bytes), which
    :func:`calc.memory.estimate_memory` reports as 0 because ``max_memory_allocated`` does not see it.

    bitsandbytes 0.50.2 ``optim/optimizer.py`` ``get_state_buffer``: ``state1``/``state2`` of tensors with at
    least :data:`calc.memory.BNB_PAGED_MIN_NUMEL` elements come from ``cudaMallocManaged``: uint8 (1 byte per
    element each) for the 8-bit optimizer, fp32 (4 bytes each) for the 32-bit one. The 8-bit absmax
    (fp32 per 256 elements) stays an ordinary allocation. 0 for any other optimizer.
    """
    from calc.memory import BNB_PAGED_MIN_NUMEL, trainable_tensors

    per_element = {"paged_adamw_8bit": 2, "paged_adamw_32bit": 8}.get(setup.optimizer, 0)
    return sum(per_element * t.numel * t.count for t in trainable_tensors(arch, setup) if t.numel >= BNB_PAGED_MIN_NUMEL)


@dataclass(frozen=True)
class OptimizerRow:
    """One optimizer for the same QLoRA run: state the allocator sees, state paged outside it, the peak."""

    optimizer: str
    label: str
    states_mib: float          # in max_memory_allocated
    paged_mib: float           # in CUDA unified memory, outside max_memory_allocated
    peak_gib: float            # modelled max_memory_allocated
    required_gib: float        # peak + CUDA context


def optimizer_rows(preset_id: str = EXAMPLE_PRESET, method: str = "qlora", r: int = EXAMPLE_RANK,
                   optimizers: Sequence[str] = QLORA_OPTIMIZERS) -> tuple[OptimizerRow, ...]:
    """:func:`calc.memory.estimate_memory` with each optimizer at the handbook's conditions."""
    from calc.memory import estimate_memory

    arch = arch_of(preset_id)
    out = []
    for opt in optimizers:
        setup = method_setup(method, lora_spec(r), optimizer=opt)
        est = estimate_memory(arch, setup)
        out.append(OptimizerRow(opt, OPTIMIZER_LABELS[opt], mib(est.component("optimizer_states")),
                                mib(paged_state_bytes(arch, setup)), gib(est.device_bytes),
                                gib(est.device_bytes + est.cuda_context_bytes)))
    return tuple(out)


def paged_min_numel() -> int:
    """Smallest tensor (elements) whose bitsandbytes optimizer state is paged (:data:`calc.memory.BNB_PAGED_MIN_NUMEL`)."""
    from calc.memory import BNB_PAGED_MIN_NUMEL

    return BNB_PAGED_MIN_NUMEL


# -- full vs LoRA vs QLoRA across models ---------------------------------------------------------------------------
METHOD_LABELS = {"full": "Full fine-tuning", "lora": "LoRA", "qlora": "QLoRA"}
#: Presets of the QLoRA page's method-comparison chart.
COMPARISON_PRESETS = ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "qwen2.5-14b")


@dataclass(frozen=True)
class MethodPoint:
    """One (model, method) at the handbook's conditions: modelled peak, CUDA context, required (GiB)."""

    preset_id: str
    name: str
    method: str
    label: str
    weights_gib: float
    peak_gib: float
    context_gib: float
    required_gib: float
    phase: str


def method_points(presets: Sequence[str] = COMPARISON_PRESETS, r: int = EXAMPLE_RANK,
                  gradient_checkpointing: bool = True) -> tuple[MethodPoint, ...]:
    """:func:`calc.compare_methods` for each preset (full, LoRA, QLoRA)."""
    out = []
    for pid in presets:
        for m in compare_methods(pid, lora_spec(r), gradient_checkpointing=gradient_checkpointing):
            out.append(MethodPoint(pid, name_of(pid), m.method, METHOD_LABELS[m.method], m.weights_gib, m.peak_gib,
                                   m.context_gib, m.required_gib, m.estimate.phase))
    return tuple(out)


# =====================================================================================================
# Small lookups for prose
# =====================================================================================================
@dataclass(frozen=True)
class Nf4Sides:
    """How many NF4 levels lie below zero, at zero and above it (QLoRA's asymmetric 7 + 1 + 8)."""

    negative: int
    zero: int
    positive: int


def nf4_sides() -> Nf4Sides:
    """Counts of :func:`nf4_levels` by side."""
    levels = nf4_levels()
    return Nf4Sides(*(sum(1 for v in levels if v.side == s) for s in ("negative", "zero", "positive")))


