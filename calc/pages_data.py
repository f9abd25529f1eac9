"""Derived numbers for the handbook's QLoRA, NF4, training-memory, adapter-file and validation pages.

The macros of ``macros/quant_pages.py`` and ``macros/memory_pages.py`` format what these functions return
and do no arithmetic of their own: every unit conversion, ratio, share and per-token division happens here.
Each function is a thin, pure layer over the tested modules that do the real work:

* :mod:`calc.quant` - the NF4/FP4/int4 code books, bitsandbytes-exact blockwise quantization, storage bytes;
* :mod:`calc.memory` - :func:`~calc.memory.estimate_memory` (the modelled ``max_memory_allocated`` peak);
* :mod:`calc.headline` - the handbook's default training conditions and the full/LoRA/QLoRA comparison;
* :mod:`calc.gpus` - usable memory per GPU and :func:`~calc.gpus.fit`;
* :mod:`calc.adapters` - exact ``adapter_model.safetensors`` sizes and merged-model sizes;
* :mod:`calc.validation` - published and measured peaks against the estimate.

Units: sizes are bytes, with ``*_gib`` views in GiB (2^30 bytes), ``*_mib`` in MiB (2^20 bytes) and ``*_kib``
in KiB (2^10 bytes); bits per parameter are bits; shares and errors are percentages (0-100); per-token
figures are bytes per token. GPU capacities keep the vendor's "GB" wording only in ``marketed`` labels.

Sources, beyond the modules named above: QLoRA (Dettmers et al. 2023, arXiv 2305.14314) §3 for NF4, double
quantization (``8/64 + 32/(64·256) = 0.127`` bits per parameter) and paged optimizers; bitsandbytes 0.50.2
``bitsandbytes/optim/optimizer.py`` (``get_state_buffer``: paged state for tensors of at least 1e5 elements);
the project's research notes ``memory-model.md`` §2-§6.

Only :func:`measurement_files` reads files (the measurement YAMLs that ``published_measurements.yaml`` lists);
everything else is computed from calc's data already loaded by the modules above.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any, Sequence

import numpy as np

from calc import headline
from calc.adapters import adapter_file_bytes, merged_model_bytes
from calc.architecture import Architecture
from calc.errors import CalcError
from calc.lora import ALL_LINEAR, count_lora
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


def _arch(preset_id: str) -> Architecture:
    return get_preset(preset_id).architecture


def _name(preset_id: str) -> str:
    return get_preset(preset_id).name


#: The handbook's example model and LoRA rank on these pages (``lora_alpha = 2r``, all linear layers).
EXAMPLE_PRESET = "llama-3.1-8b"
EXAMPLE_RANK = 16


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

    arch = _arch(preset_id)
    bf16 = model_weight_bytes(arch, "bf16")
    nf4 = model_weight_bytes(arch, "nf4", True)
    kept = []
    for m in nf4.modules:
        if not m.quantized and m.params and _KIND_LABELS[m.kind] not in kept:
            kept.append(_KIND_LABELS[m.kind])
    return QloraStorageRow(preset_id, _name(preset_id), arch.total_params, nf4.quantized_params,
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

    wb = model_weight_bytes(_arch(preset_id), precision, double_quant)
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
    """NF4 weights with and without double quantization (:func:`calc.headline.weight_storage`)."""
    ws = headline.weight_storage(preset_id)
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
    mods = [m for m in _arch(preset_id).modules if m.kind in ("linear", "conv1d")]
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

    arch = _arch(preset_id)
    spec = headline.lora_spec(r)
    est = {}
    for flag in (False, True):
        setup = headline.method_setup("qlora", spec, prepare_kbit=flag)
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
OPTIMIZER_LABELS = {
    "adamw": "torch AdamW (foreach)",
    "adamw_fused": "torch AdamW (fused)",
    "adamw_8bit": "bitsandbytes AdamW 8-bit",
    "paged_adamw_8bit": "bitsandbytes paged AdamW 8-bit",
    "paged_adamw_32bit": "bitsandbytes paged AdamW 32-bit",
    "sgd": "torch SGD with momentum",
}


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

    arch = _arch(preset_id)
    out = []
    for opt in optimizers:
        setup = headline.method_setup(method, headline.lora_spec(r), optimizer=opt)
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
    """:func:`calc.headline.compare_methods` for each preset (full, LoRA, QLoRA)."""
    out = []
    for pid in presets:
        for m in headline.compare_methods(pid, headline.lora_spec(r), gradient_checkpointing=gradient_checkpointing):
            out.append(MethodPoint(pid, _name(pid), m.method, METHOD_LABELS[m.method], m.weights_gib, m.peak_gib,
                                   m.context_gib, m.required_gib, m.estimate.phase))
    return tuple(out)


def conditions_text(r: int = EXAMPLE_RANK, gradient_checkpointing: bool = True) -> str:
    """The handbook's memory conditions in words, read back from the setups :func:`calc.headline.method_setup` builds."""
    q = headline.method_setup("qlora", headline.lora_spec(r), gradient_checkpointing=gradient_checkpointing)
    full = headline.method_setup("full", gradient_checkpointing=gradient_checkpointing)
    opt = OPTIMIZER_LABELS[q.optimizer]
    return (f"micro-batch {q.micro_batch} × sequence {q.seq_len:,} tokens, gradient checkpointing "
            f"{'on' if q.gradient_checkpointing else 'off'}, {opt}, {q.attn_implementation.upper()} attention, "
            f"{q.mixed_precision.removeprefix('amp_')} autocast, loss as HF Trainer computes it (logits not kept); "
            f"full fine-tuning: every weight trainable in {full.base_precision} with {full.base_precision} AdamW states "
            f"and no fp32 master copy; LoRA: frozen {headline.method_setup('lora').base_precision} base; QLoRA: "
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

    arch = _arch(preset_id)
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

    arch = _arch(preset_id)
    spec = headline.lora_spec(r)
    out = []
    for label, kw in PARAM_BYTES_REGIMES:
        kw = dict(kw)
        method = kw.pop("method")
        setup = headline.method_setup(method, spec, **kw)
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

    arch = _arch(preset_id)
    out = []
    for method in ("full", "lora", "qlora"):
        off_setup = headline.method_setup(method, headline.lora_spec(r), gradient_checkpointing=False)
        on_setup = headline.method_setup(method, headline.lora_spec(r), gradient_checkpointing=True)
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

    arch = _arch(preset_id)
    setup = headline.method_setup("lora", headline.lora_spec(r))
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
        for m in headline.compare_methods(preset_id, headline.lora_spec(r), gradient_checkpointing=gc):
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
    m = headline.compare_methods(preset_id, headline.lora_spec(r), (method,),
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
    """:func:`calc.headline.compare_methods` with checkpointing on and off for each preset."""
    out = []
    for pid in presets:
        on = {m.method: m.required_gib for m in headline.compare_methods(pid, headline.lora_spec(r))}
        off = {m.method: m.required_gib for m in headline.compare_methods(pid, headline.lora_spec(r),
                                                                         gradient_checkpointing=False)}
        out.append(VramRow(pid, _name(pid), _arch(pid).total_params, on["full"], on["lora"], on["qlora"],
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
    """:func:`calc.gpus.fit` (through :func:`calc.headline.fit_gpus`) for every preset × GPU."""
    from calc.gpus import get_gpu

    devices = [get_gpu(g) for g in gpus]
    out = []
    for pid in presets:
        mem = headline.compare_methods(pid, headline.lora_spec(r), (method,),
                                       gradient_checkpointing=gradient_checkpointing)[0]
        fits = headline.fit_gpus(mem, devices)
        out.append(FitRow(pid, _name(pid), mem.required_gib,
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

    arch = _arch(preset_id)
    spec = headline.lora_spec(r)
    out = []
    for method, sharding in plans:
        single = estimate_memory(arch, headline.method_setup(method, spec))
        per = []
        for n in counts:
            e = estimate_memory(arch, headline.method_setup(method, spec, num_gpus=n, sharding=sharding))
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
    arch = _arch(preset_id)
    out = []
    for t in target_sets:
        for dt in dtypes:
            files = [adapter_file_bytes(arch, headline.lora_spec(r, None, t), dt) for r in ranks]
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
    spec = headline.lora_spec(r, None, target_modules, modules_to_save=modules_to_save)
    f = adapter_file_bytes(_arch(preset_id), spec, dtype, base_dtype)
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
        ms = headline.merge_sizes(pid, headline.lora_spec(r))
        ws = headline.weight_storage(pid)
        out.append(MergeRow(pid, _name(pid), ms.adapter_mib, ms.merged_fp32_gib, ms.merged_gib, ws.nf4_gib, ms.ratio))
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
    arch = _arch(preset_id)
    adapter = adapter_file_bytes(arch, headline.lora_spec(r), adapter_dtype).tensor_bytes
    base = merged_model_bytes(arch, "bf16")
    out = []
    for n in counts:
        total = base + n * adapter
        out.append(ServingRow(n, gib(base), gib(n * adapter), gib(total), gib(n * base), n * base / total))
    return tuple(out)


def adapter_memory_mib(preset_id: str = EXAMPLE_PRESET, r: int = EXAMPLE_RANK, dtype: str = "float32") -> float:
    """One adapter's tensors in memory (no header), MiB."""
    return mib(adapter_file_bytes(_arch(preset_id), headline.lora_spec(r), dtype).tensor_bytes)


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
class Nf4Sides:
    """How many NF4 levels lie below zero, at zero and above it (QLoRA's asymmetric 7 + 1 + 8)."""

    negative: int
    zero: int
    positive: int


def nf4_sides() -> Nf4Sides:
    """Counts of :func:`nf4_levels` by side."""
    levels = nf4_levels()
    return Nf4Sides(*(sum(1 for v in levels if v.side == s) for s in ("negative", "zero", "positive")))


@dataclass(frozen=True)
class MethodMemoryView:
    """One method's modelled peak and required memory (GiB) under the handbook's conditions plus overrides."""

    peak_gib: float
    required_gib: float
    phase: str
    weights_gib: float


def method_memory(preset_id: str = EXAMPLE_PRESET, method: str = "qlora", r: int = EXAMPLE_RANK,
                  **conditions: Any) -> MethodMemoryView:
    """:func:`calc.headline.compare_methods` for one method, with any :class:`~calc.memory.TrainingSetup` override
    (``optimizer="adamw_fused"``, ``gradient_checkpointing=False`` …)."""
    m = headline.compare_methods(preset_id, headline.lora_spec(r), (method,), **conditions)[0]
    return MethodMemoryView(m.peak_gib, m.required_gib, m.estimate.phase, m.weights_gib)


def model_name(preset_id: str) -> str:
    """A preset's display name."""
    return _name(preset_id)


#: Margin of the estimate-vs-measured chart's log axes beyond the smallest and largest value (a factor).
EXTENT_MARGIN = 1.25


def validation_extent() -> tuple[float, float]:
    """The axis domain of the estimate-vs-measured chart, GiB: the smallest and largest of every measured and
    estimated value of :func:`validation_rows`, widened by :data:`EXTENT_MARGIN` on a log scale."""
    rows = validation_rows()
    vals = [v for r in rows for v in (r.measured_gib, r.estimate_gib)]
    return min(vals) / EXTENT_MARGIN, max(vals) * EXTENT_MARGIN
