"""Quantized weight storage: the NF4/FP4/int4 code books, bitsandbytes-exact blockwise 4-bit
quantization in numpy, double quantization of the scales, and the bytes each precision allocates.

Units: sizes are **bytes**; ``numel``/``params`` are element counts; bits per parameter are bits.

Sources (read for this module; Python paths relative to site-packages, ``csrc/`` in the bitsandbytes
repository):

* QLoRA paper — Dettmers et al. 2023, arXiv 2305.14314: §3 "4-bit NormalFloat Quantization" (Eq. 4,
  the asymmetric 8 + 7 + zero construction), §3 "Double Quantization" (FP8 second-level scales,
  blocksize 256, the mean subtracted, ``8/64 + 32/(64·256) = 0.127`` bits per parameter), Appendix E
  (the NF4 values).
* bitsandbytes 0.50.2:
  ``bitsandbytes/functional.py`` — ``create_normal_map`` (NF4 construction), ``get_4bit_type`` (the
  16-entry tables actually used), ``create_dynamic_map`` (the 8-bit map of the second level),
  ``quantize_4bit`` (``compress_statistics`` = double quantization: ``offset = absmax.mean()``, then
  ``quantize_blockwise(absmax - offset, blocksize=256)``), ``quantize_blockwise`` and ``QuantState``;
  ``bitsandbytes/backends/default/ops.py`` — the ``quantize_4bit``/``dequantize_4bit`` kernels that run
  on CPU (midpoint ``bucketize``; the first element of a pair goes in the **high** nibble);
  ``csrc/cpu_ops.cpp`` (compiled into ``libbitsandbytes_cpu.so``) — ``quantize_cpu_impl``, the 8-bit
  blockwise kernel used for the second level on CPU (a 65,536-entry nearest-code lookup table);
  ``bitsandbytes/nn/modules.py`` — ``Params4bit._quantize`` and ``Int8Params._quantize``;
  ``bitsandbytes/backends/default/ops.py`` ``int8_vectorwise_quant`` (LLM.int8 row-wise absmax, SCB).
* transformers 5.23.0: ``transformers/integrations/bitsandbytes.py`` ``replace_with_bnb_linear`` and
  ``transformers/quantizers/base.py`` ``get_keys_to_not_convert`` (which modules are quantized).

No torch, no I/O: everything here is numpy and arithmetic. ``tests/verify/test_bnb.py`` checks it
against bitsandbytes itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Sequence

import numpy as np

from calc.errors import CalcError

# The numpy-free storage arithmetic lives in calc.quant_storage (the browser calculator runs it); re-exported here.
from calc.quant_storage import (  # noqa: F401 - re-exports
    PRECISIONS, QUANTIZED, FOUR_BIT, UNQUANTIZED_DTYPES, DTYPE_BYTES, BLOCKSIZES_4BIT, DQ_BLOCKSIZE,
    DQ_CODE_ENTRIES, CODE_ENTRIES_4BIT, CUDA_ALLOCATION_GRANULARITY, NN_LINEAR_SUBCLASS_FAMILIES,
    QUANTIZABLE_KINDS, ModuleBytes, TensorAlloc, WeightBytes, _check_blocksize, _check_count,
    _check_precision, allocated_bytes, bits_per_parameter, model_weight_bytes, storage_tensors,
    tensor_storage_bytes,
)

NF4_OFFSET = 0.9677083
"""``create_normal_map``'s default: the outermost probability, ``Φ⁻¹(0.9677083) ≈ 1.848``."""
_LUT_SIZE = 65536  # csrc/cpu_ops.cpp kLUTSize
_CODE_NAMES = ("nf4", "fp4", "int4")


# -- code books -------------------------------------------------------------------------------------------
def _linspace_f32(start: float, end: float, steps: int) -> np.ndarray:
    """``torch.linspace(start, end, steps)`` in float32, as torch's CPU kernel computes it.

    aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp: ``step = (end - start) / (steps - 1)`` in float32;
    element ``i`` is ``start + step*i`` below ``steps // 2`` and ``end - step*(steps - i - 1)`` from there,
    each a fused multiply-add (the AVX2/AVX512 builds contract it), i.e. one rounding of the exact value.
    The float64 expressions below are exact before that single rounding (``i < 2**8``, 24-bit step).
    """
    s, e = np.float32(start), np.float32(end)
    step = np.float64((e - s) / np.float32(steps - 1))
    half = steps // 2
    values = [float(s) + i * step if i < half else float(e) - (steps - i - 1) * step for i in range(steps)]
    return np.array(values, dtype=np.float64).astype(np.float32)


def nf4_code(offset: float = NF4_OFFSET) -> np.ndarray:
    """The 16 NF4 levels (float32, ascending, ``[-1, 1]``), index = the 4-bit code.

    QLoRA §3 (Eq. 4 and the asymmetric construction: "2^{k-1} for the negative part and 2^{k-1}+1 for
    the positive part ... remove one of the two zeros"), as bitsandbytes implements it in
    ``functional.create_normal_map(offset=0.9677083, use_extra_value=True)``::

        pos = Φ⁻¹(linspace(offset, 0.5, 9)[:-1])      # 8 positive levels
        neg = −Φ⁻¹(linspace(offset, 0.5, 8)[:-1])     # 7 negative levels
        levels = sort(pos ∪ {0} ∪ neg) / max          # normalised to [-1, 1]

    ``linspace`` is float32 (torch's default dtype), Φ⁻¹ is evaluated in float64 (here the stdlib's
    ``NormalDist().inv_cdf``, Wichura's AS241, instead of scipy's ``norm.ppf``), the result is
    rounded to float32 and divided by its maximum in float32. With the default offset this
    reproduces the table hard-coded in ``get_4bit_type("nf4")`` bit for bit.
    """
    if not isinstance(offset, (int, float)) or isinstance(offset, bool) or not 0.5 < offset < 1.0:
        raise CalcError(f"must be a probability in (0.5, 1), got {offset!r}", field="offset")
    inv_cdf = NormalDist().inv_cdf
    pos = [inv_cdf(float(p)) for p in _linspace_f32(offset, 0.5, 9)[:-1]]
    neg = [-inv_cdf(float(p)) for p in _linspace_f32(offset, 0.5, 8)[:-1]]
    values = np.sort(np.array(pos + [0.0] + neg, dtype=np.float64).astype(np.float32))
    return (values / values.max()).astype(np.float32)


def fp4_code() -> np.ndarray:
    """bitsandbytes' FP4 levels (float32), **in bit-pattern order**: index = the stored 4-bit code.

    ``functional.get_4bit_type("fp4")``: 1 sign bit, 2 exponent bits, 1 mantissa bit with exponent bias 2,
    so codes 0b000…0b111 of the magnitude are 0, 0.0625, 8, 12, 4, 6, 2, 3 (``0b001`` is the subnormal
    ``0.5·2⁻³``); bit 3 is the sign. Divided by the maximum (12) in float32. bitsandbytes writes the
    sign-bit zero as the integer ``-0``, which is +0.0 once it is a float tensor; so is index 8 here.
    """
    magnitudes = [0.0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0]
    data = np.array(magnitudes + [0.0] + [-m for m in magnitudes[1:]], dtype=np.float32)
    return (data / np.float32(np.abs(data).max())).astype(np.float32)


def int4_code() -> np.ndarray:
    """Symmetric absmax int4 for comparison: ``k/7`` for ``k = 7 … −7`` (float32, bitsandbytes' order).

    ``functional.get_4bit_type("int4")`` lists ``[7, 6, …, 0, -0, -1, …, -7]`` divided by 7: 15 distinct
    levels (two codes mean zero), which is what "round to the nearest multiple of absmax/7" stores.
    bitsandbytes' ``quantize_4bit`` itself accepts only nf4/fp4; this is the reference point the
    handbook compares them with.
    """
    data = np.array([7, 6, 5, 4, 3, 2, 1, 0, 0, -1, -2, -3, -4, -5, -6, -7], dtype=np.float32)
    return (data / np.float32(7.0)).astype(np.float32)


def code_by_name(name: str) -> np.ndarray:
    """``"nf4"``, ``"fp4"`` or ``"int4"`` → that code book (16 float32 levels)."""
    makers = {"nf4": nf4_code, "fp4": fp4_code, "int4": int4_code}
    if name not in makers:
        raise CalcError(f"unknown 4-bit code {name!r} (choose from {', '.join(_CODE_NAMES)})", field="code")
    return makers[name]()


def dynamic_map(signed: bool = True, max_exponent_bits: int = 7, total_bits: int = 8) -> np.ndarray:
    """bitsandbytes' dynamic 8-bit map (256 float32, ascending): the second-level code of double quantization.

    ``functional.create_dynamic_map`` (Dettmers 2015, "8-Bit Approximations for Parallelism in Deep
    Learning", arXiv 1511.04561): for exponent ``i = 0 … 6`` it takes the ``2^i`` midpoints of
    ``linspace(0.1, 1, 2^i + 1)`` scaled by ``10^(i-6)``, both signs, plus 0 and 1.0. The QLoRA paper
    calls this "8-bit Floats" (§3, Double Quantization). Only the signed 8-bit map is needed here.
    """
    if not (signed and max_exponent_bits == 7 and total_bits == 8):
        raise CalcError("only the signed 8-bit map (max_exponent_bits=7) is implemented", field="total_bits")
    non_sign_bits = total_bits - 1
    data: list[np.float32] = []
    for i in range(max_exponent_bits):
        items = 2 ** (i + non_sign_bits - max_exponent_bits) + 1
        bounds = _linspace_f32(0.1, 1.0, items)
        means = ((bounds[:-1] + bounds[1:]) / np.float32(2.0)).astype(np.float32)
        scale = np.float32(10.0 ** (-(max_exponent_bits - 1) + i))
        data.extend((scale * means).astype(np.float32))
        data.extend((-scale * means).astype(np.float32))
    data.extend([np.float32(0.0), np.float32(1.0)])
    return np.sort(np.array(data, dtype=np.float32))


def max_gap(code: Sequence[float] | np.ndarray) -> float:
    """Largest distance between adjacent levels of ``code`` (any order): rounding to the nearest level
    moves a value in ``[-1, 1]`` by at most half of it (when -1 and 1 are levels)."""
    levels = np.sort(_as_code(code).astype(np.float64))
    return float(np.max(np.diff(levels)))


# -- blockwise 4-bit quantization (bitsandbytes' CPU path, bit for bit) ---------------------------------
def _as_code(code: Sequence[float] | np.ndarray | str) -> np.ndarray:
    if isinstance(code, str):
        return code_by_name(code)
    arr = np.asarray(code, dtype=np.float32).reshape(-1)
    if arr.size < 2 or not np.all(np.isfinite(arr)):
        raise CalcError("a code book needs at least two finite levels", field="code")
    return arr


def _as_samples(x: Sequence[float] | np.ndarray, name: str = "x") -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise CalcError(f"must be numbers, got dtype {arr.dtype}", field=name)
    arr = arr.astype(np.float32).reshape(-1)
    if arr.size == 0:
        raise CalcError("must not be empty", field=name)
    if not np.all(np.isfinite(arr)):
        raise CalcError("must be finite (NaN/inf cannot be block-scaled)", field=name)
    return arr


def _scale_blocks(x: np.ndarray, blocksize: int) -> tuple[np.ndarray, np.ndarray]:
    """(values scaled into [-1, 1], absmax per block) exactly as ``backends/default/ops.py`` does it.

    Full blocks: ``absmax = max|x|``; ``scaled = clamp(x * (1 / max(absmax, 1e-38)), -1, 1)`` (float32
    reciprocal, then a multiply). The trailing partial block is handled differently there, and so here:
    its absmax is clamped to ``1e-38`` *before* being stored and the values are **divided** by it.
    """
    n = x.size
    full = n - n % blocksize
    tiny = np.float32(1e-38)
    body = x[:full].reshape(-1, blocksize)
    absmax = np.abs(body).max(axis=1) if full else np.zeros(0, np.float32)
    inv = (np.float32(1.0) / np.maximum(absmax, tiny)).astype(np.float32)
    scaled = np.clip((body * inv[:, None]).astype(np.float32), -1.0, 1.0).reshape(-1)
    if full < n:
        tail = x[full:]
        tail_absmax = np.maximum(np.abs(tail).max(), tiny).astype(np.float32)
        absmax = np.concatenate([absmax, np.array([tail_absmax], np.float32)])
        scaled = np.concatenate([scaled, np.clip((tail / tail_absmax).astype(np.float32), -1.0, 1.0)])
    return scaled.astype(np.float32), absmax.astype(np.float32)


def nearest_level(scaled: np.ndarray, code: Sequence[float] | np.ndarray) -> np.ndarray:
    """Index of the nearest level for each value in ``[-1, 1]``, bitsandbytes' CPU rounding rule.

    ``backends/default/ops.py`` ``_get_4bit_quantize_bounds`` + ``quantize_4bit``: sort the code
    (``argsort``; a stable order here, which is what torch returns for FP4's two zeros), take float32
    midpoints ``(c[k] + c[k+1]) / 2`` and ``bucketize`` (``right=False``): a value exactly on a
    midpoint goes to the **lower** level. The sorted position is mapped back to the code's own index.
    """
    levels = _as_code(code)
    order = np.argsort(levels, kind="stable")
    ordered = levels[order]
    bounds = ((ordered[:-1] + ordered[1:]) / np.float32(2.0)).astype(np.float32)
    return order[np.searchsorted(bounds, np.asarray(scaled, np.float32), side="left")].astype(np.uint8)


def pack_4bit(indices: np.ndarray) -> np.ndarray:
    """Two 4-bit codes per byte, the **first in the high nibble** (``(q[::2] << 4) | q[1::2]``,
    ``backends/default/ops.py``); an odd count is padded with a 0 nibble. Returns ``ceil(n/2)`` bytes."""
    q = np.asarray(indices, dtype=np.uint8).reshape(-1)
    if q.size and int(q.max()) > 15:
        raise CalcError("4-bit codes must be 0..15", field="indices")
    if q.size % 2:
        q = np.concatenate([q, np.zeros(1, np.uint8)])
    return ((q[0::2] << 4) | q[1::2]).astype(np.uint8)


def unpack_4bit(packed: np.ndarray, numel: int) -> np.ndarray:
    """Inverse of :func:`pack_4bit`: ``numel`` code indices (high nibble first)."""
    p = np.asarray(packed, dtype=np.uint8).reshape(-1)
    if isinstance(numel, bool) or not isinstance(numel, (int, np.integer)) or not 0 < numel <= 2 * p.size:
        raise CalcError(f"must be in 1..{2 * p.size} for {p.size} packed bytes, got {numel!r}", field="numel")
    out = np.empty(2 * p.size, np.uint8)
    out[0::2] = p >> 4
    out[1::2] = p & 0x0F
    return out[:numel]


def quantize_blockwise(x: Sequence[float] | np.ndarray, code: Sequence[float] | np.ndarray | str,
                       blocksize: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Blockwise 4-bit absmax quantization → ``(packed uint8[ceil(n/2)], absmax float32[ceil(n/blocksize)])``.

    Bit-identical to ``bitsandbytes.functional.quantize_4bit(A, blocksize, compress_statistics=False,
    quant_type=...)`` on CPU (``backends/default/ops.py``) for float32/bf16/fp16 input (bf16/fp16 are
    exact in float32; bitsandbytes casts them the same way): the data is flattened, scaled per block by
    :func:`_scale_blocks`, rounded by :func:`nearest_level` and packed by :func:`pack_4bit` (padding an
    odd element count with the code of 0.0, as the kernel pads the scaled values with 0).
    ``code`` is 16 levels (``nf4_code()``, ``fp4_code()``, ``int4_code()`` or a name).
    """
    levels = _as_code(code)
    if levels.size != 16:
        raise CalcError(f"a 4-bit code has 16 levels, got {levels.size}", field="code")
    bs = _check_blocksize(blocksize)
    scaled, absmax = _scale_blocks(_as_samples(x), bs)
    if scaled.size % 2:
        scaled = np.concatenate([scaled, np.zeros(1, np.float32)])
    return pack_4bit(nearest_level(scaled, levels)), absmax


def dequantize_blockwise(packed: np.ndarray, absmax: np.ndarray, code: Sequence[float] | np.ndarray | str,
                         blocksize: int = 64, numel: int | None = None) -> np.ndarray:
    """``code[q] * absmax[block]`` in float32 (``backends/default/ops.py`` ``_dequantize_4bit_compute``).

    ``numel`` defaults to ``2·len(packed)``; pass the true element count for odd sizes.
    """
    levels = _as_code(code)
    bs = _check_blocksize(blocksize)
    p = np.asarray(packed, dtype=np.uint8).reshape(-1)
    n = 2 * p.size if numel is None else numel
    q = unpack_4bit(p, n)
    scales = np.asarray(absmax, dtype=np.float32).reshape(-1)
    if scales.size != -(-n // bs):
        raise CalcError(f"needs {-(-n // bs)} block scales for {n} values, got {scales.size}", field="absmax")
    return (levels[q] * np.repeat(scales, bs)[:n]).astype(np.float32)


# -- double quantization of the block scales ---------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class DoubleQuantized:
    """The absmax of a 4-bit tensor after double quantization (``compress_statistics=True``).

    Mirrors bitsandbytes' nested ``QuantState``: ``codes`` is ``QuantState.absmax`` (uint8, one per
    4-bit block), ``absmax2`` is ``state2.absmax`` (fp32, one per 256 codes), ``offset`` is
    ``QuantState.offset`` (fp32 scalar), ``code`` is ``state2.code`` (the 256-entry dynamic map).
    """

    codes: np.ndarray
    absmax2: np.ndarray
    offset: np.float32
    code: np.ndarray
    blocksize: int = DQ_BLOCKSIZE


def quantize_blockwise_8bit(x: Sequence[float] | np.ndarray, code: np.ndarray | None = None,
                            blocksize: int = DQ_BLOCKSIZE) -> tuple[np.ndarray, np.ndarray]:
    """8-bit blockwise quantization as bitsandbytes' CPU kernel does it → ``(uint8 codes, fp32 absmax)``.

    ``csrc/cpu_ops.cpp`` ``quantize_cpu_impl`` (what ``functional.quantize_blockwise`` calls for a
    float32 tensor on CPU): per block ``absmax = max|x|`` (an all-zero block stores code 0); values are
    scaled by ``v = x · (1/absmax)``, clamped to [-1, 1], mapped to a lookup index
    ``⌊((v + 1)·0.5)·65535 + 0.5⌋`` and the code is ``lut[index]``, where ``lut[i]`` is the number of
    code midpoints ``0.5·(c[k] + c[k+1])`` below ``-1 + 2i/65535``: the nearest level of the 65,536-point
    grid value, not always of ``v`` itself. ``code`` must be ascending (default :func:`dynamic_map`).
    """
    levels = dynamic_map() if code is None else _as_code(code)
    if levels.size != 256 or np.any(np.diff(levels) < 0):
        raise CalcError("the 8-bit code must hold 256 ascending levels", field="code")
    bs = _check_blocksize(blocksize, allowed=None)
    values = _as_samples(x)
    midpoints = (np.float32(0.5) * (levels[:-1] + levels[1:])).astype(np.float32)
    grid = np.arange(_LUT_SIZE, dtype=np.float32)
    grid = (np.float32(-1.0) + (np.float32(2.0) * grid) / np.float32(_LUT_SIZE - 1)).astype(np.float32)
    lut = np.searchsorted(midpoints, grid, side="left").astype(np.uint8)

    n = values.size
    blocks = -(-n // bs)
    padded = np.zeros(blocks * bs, np.float32)
    padded[:n] = values
    rows = padded.reshape(blocks, bs)
    absmax = np.abs(rows).max(axis=1).astype(np.float32)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        inv = (np.float32(1.0) / absmax).astype(np.float32)
        inv[absmax == 0] = 0
        scaled = (rows * inv[:, None]).astype(np.float32)
        # A block whose absmax is below ~1/FLT_MAX (a subnormal, e.g. absmax minus the double-quant
        # offset) has no finite reciprocal; bitsandbytes' kernel then feeds NaN to an int cast, which is
        # undefined. Divide instead, so such a block still maps to the nearest levels.
        huge = ~np.isfinite(inv)
        if huge.any():
            scaled[huge] = (rows[huge] / absmax[huge, None]).astype(np.float32)
    v = np.clip(scaled, -1.0, 1.0)
    t = ((v + np.float32(1.0)) * np.float32(0.5)).astype(np.float32)
    index = ((t * np.float32(_LUT_SIZE - 1)).astype(np.float32) + np.float32(0.5)).astype(np.float32)
    codes = lut[index.astype(np.int64)]
    codes[absmax == 0] = 0
    return codes.reshape(-1)[:n].astype(np.uint8), absmax


def double_quantize(absmax: Sequence[float] | np.ndarray, *, offset: float | None = None,
                    blocksize: int = DQ_BLOCKSIZE) -> DoubleQuantized:
    """QLoRA §3 double quantization of first-level scales, as ``functional.quantize_4bit`` does it.

    ``offset = mean(absmax)`` ("Since the c2 are positive, we subtract the mean"), then
    :func:`quantize_blockwise_8bit` of ``absmax - offset`` (float32) with the dynamic map and
    blocksize 256. bitsandbytes takes the mean with torch's float32 reduction, whose summation order
    depends on the CPU's vector width; here it is the exactly rounded float32 mean (``math.fsum``),
    which can differ from torch's in the last bit. Pass bitsandbytes' ``offset`` to reproduce its codes
    exactly.
    """
    scales = _as_samples(absmax, "absmax")
    if offset is None:
        off = np.float32(math.fsum(float(a) for a in scales) / scales.size)
    else:
        off = np.float32(offset)
    codes, absmax2 = quantize_blockwise_8bit((scales - off).astype(np.float32), dynamic_map(), blocksize)
    return DoubleQuantized(codes=codes, absmax2=absmax2, offset=off, code=dynamic_map(), blocksize=blocksize)


def double_dequantize(dq: DoubleQuantized) -> np.ndarray:
    """The first-level absmax back: ``code[codes] · absmax2[block] + offset`` in float32
    (``functional.dequantize_4bit``: ``dequantize_blockwise(absmax, state2) + offset``)."""
    n = dq.codes.size
    values = (dq.code[dq.codes] * np.repeat(dq.absmax2, dq.blocksize)[:n]).astype(np.float32)
    return (values + dq.offset).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Quantized4bit:
    """A 4-bit tensor as bitsandbytes holds it: ``packed`` (``Params4bit.data``) plus its ``QuantState``:
    ``absmax`` (fp32 per block) without double quantization, ``double`` with it."""

    packed: np.ndarray
    numel: int
    quant_type: str
    blocksize: int
    absmax: np.ndarray | None = None
    double: DoubleQuantized | None = None
    code: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def block_absmax(self) -> np.ndarray:
        """The fp32 scale of each block (dequantizing the scales first when double-quantized)."""
        if self.double is not None:
            return double_dequantize(self.double)
        assert self.absmax is not None
        return self.absmax


def quantize_4bit(x: Sequence[float] | np.ndarray, quant_type: str = "nf4", blocksize: int = 64,
                  double_quant: bool = False, *, offset: float | None = None) -> Quantized4bit:
    """``bitsandbytes.functional.quantize_4bit`` in numpy (``compress_statistics`` = ``double_quant``)."""
    if quant_type not in FOUR_BIT:
        raise CalcError(f"must be nf4 or fp4, got {quant_type!r}", field="quant_type")
    code = code_by_name(quant_type)
    samples = _as_samples(x)
    packed, absmax = quantize_blockwise(samples, code, blocksize)
    if double_quant:
        return Quantized4bit(packed, samples.size, quant_type, blocksize,
                             double=double_quantize(absmax, offset=offset), code=code)
    return Quantized4bit(packed, samples.size, quant_type, blocksize, absmax=absmax, code=code)


def dequantize_4bit(q: Quantized4bit) -> np.ndarray:
    """``bitsandbytes.functional.dequantize_4bit`` in numpy (float32, flat)."""
    return dequantize_blockwise(q.packed, q.block_absmax(), q.code, q.blocksize, q.numel)


# -- error measurement -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuantError:
    """Error of a quantize→dequantize round trip, in the samples' units."""

    mse: float
    mae: float
    max_abs: float
    rmse: float
    numel: int


def gaussian_weights(n: int, seed: int = 0, std: float = 1.0) -> np.ndarray:
    """``n`` float32 samples of N(0, std²) from ``numpy.random.default_rng(seed)`` (reproducible)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise CalcError(f"must be a positive integer, got {n!r}", field="n")
    if not isinstance(std, (int, float)) or isinstance(std, bool) or not std > 0 or not math.isfinite(std):
        raise CalcError(f"must be a positive number, got {std!r}", field="std")
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(n), dtype=np.float32) * np.float32(std)).astype(np.float32)


def quantization_error(code: Sequence[float] | np.ndarray | str, samples: Sequence[float] | np.ndarray,
                       blocksize: int = 64) -> QuantError:
    """Mean squared / mean absolute / max error of blockwise absmax quantization of ``samples`` with
    ``code`` (single-level scales; fp32 absmax), computed in float64."""
    x = _as_samples(samples, "samples")
    levels = _as_code(code)
    packed, absmax = quantize_blockwise(x, levels, blocksize)
    err = dequantize_blockwise(packed, absmax, levels, blocksize, x.size).astype(np.float64) - x.astype(np.float64)
    mse = float(np.mean(err * err))
    return QuantError(mse=mse, mae=float(np.mean(np.abs(err))), max_abs=float(np.max(np.abs(err))),
                      rmse=math.sqrt(mse), numel=int(x.size))
