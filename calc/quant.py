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
from typing import TYPE_CHECKING, Sequence

import numpy as np

from calc.errors import CalcError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from calc.architecture import Architecture

PRECISIONS = ("fp32", "bf16", "fp16", "int8", "nf4", "fp4")
"""Storage precisions :func:`tensor_storage_bytes` and :func:`model_weight_bytes` understand."""
QUANTIZED = frozenset({"int8", "nf4", "fp4"})
FOUR_BIT = frozenset({"nf4", "fp4"})
UNQUANTIZED_DTYPES = ("bf16", "fp16", "fp32")
"""Dtypes the layers transformers leaves unquantized may be loaded in (``from_pretrained(dtype=...)``)."""
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}
BLOCKSIZES_4BIT = (32, 64, 128, 256, 512, 1024, 2048, 4096)
"""Blocksizes ``bitsandbytes.functional.quantize_4bit`` accepts (it raises ``invalid blocksize`` otherwise)."""
NF4_OFFSET = 0.9677083
"""``create_normal_map``'s default: the outermost probability, ``Φ⁻¹(0.9677083) ≈ 1.848``."""
DQ_BLOCKSIZE = 256
"""Second-level (double quantization) blocksize: QLoRA §3, and ``quantize_4bit``'s
``quantize_blockwise(_absmax - offset, blocksize=256)``."""
DQ_CODE_ENTRIES = 256
"""The second level's code (``create_dynamic_map()``, 256 fp32 values) is copied into every
``QuantState`` (``quantize_blockwise``: ``code.to(A.device, copy=True)``)."""
CODE_ENTRIES_4BIT = 16
"""``quantize_4bit`` stores a fresh 16-entry fp32 ``get_4bit_type(...)`` tensor in every ``QuantState``."""
CUDA_ALLOCATION_GRANULARITY = 512
"""torch's CUDA caching allocator rounds every block up to 512 bytes (``kMinBlockSize`` in
``c10/cuda/CUDACachingAllocator.cpp``)."""
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


def _check_blocksize(blocksize: int, allowed: Sequence[int] | None = BLOCKSIZES_4BIT) -> int:
    if isinstance(blocksize, bool) or not isinstance(blocksize, (int, np.integer)) or blocksize <= 0:
        raise CalcError(f"must be a positive integer, got {blocksize!r}", field="blocksize")
    if allowed is not None and blocksize not in allowed:
        raise CalcError(f"must be one of {', '.join(map(str, allowed))} (bitsandbytes' valid sizes), "
                        f"got {blocksize}", field="blocksize")
    return int(blocksize)


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
    with np.errstate(divide="ignore"):
        inv = (np.float32(1.0) / absmax).astype(np.float32)
    inv[absmax == 0] = 0
    v = np.clip((rows * inv[:, None]).astype(np.float32), -1.0, 1.0)
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


# -- storage -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TensorAlloc:
    """One tensor a stored weight consists of: its bitsandbytes attribute, dtype and element count."""

    name: str
    dtype: str
    numel: int

    @property
    def nbytes(self) -> int:
        return self.numel * {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1, "uint8": 1}[self.dtype]


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise CalcError(f"must be a positive integer, got {value!r}", field=name)
    return int(value)


def _check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise CalcError(f"must be one of {', '.join(PRECISIONS)}, got {precision!r}", field="precision")
    return precision


def storage_tensors(numel: int, precision: str, *, rows: int | None = None, blocksize: int = 64,
                    double_quant: bool = True) -> tuple[TensorAlloc, ...]:
    """Every tensor one weight of ``numel`` elements occupies in ``precision``.

    * fp32/bf16/fp16: the weight itself.
    * int8 (LLM.int8, ``Int8Params._quantize`` → ``int8_vectorwise_quant``): ``CB`` int8 ``[rows, numel/rows]``
      (it *is* ``Int8Params.data``) and ``SCB`` fp32 ``[rows]``, one absmax per output row; ``rows`` is
      ``out_features``. ``_quantize`` calls ``int8_vectorwise_quant`` with ``threshold=0``, so no outlier
      tensor is stored whatever ``llm_int8_threshold`` is (that threshold acts on activations at matmul time).
      The weight is cast to fp16 before quantizing (a transient, not counted).
    * nf4/fp4 (``Params4bit._quantize`` → ``functional.quantize_4bit``): ``data`` uint8
      ``[(numel+1)//2, 1]`` and the ``QuantState``'s tensors: ``code`` (16 fp32, a fresh
      ``get_4bit_type`` tensor per weight) and either ``absmax`` fp32 per block of ``blocksize`` or, with
      double quantization, ``absmax`` uint8 per block, ``offset`` (one fp32), ``state2.absmax`` fp32 per
      256 blocks and ``state2.code`` (256 fp32, copied per weight by ``quantize_blockwise``).

    ``bnb_4bit_quant_storage`` only reinterprets the packed bytes (e.g. as bf16 for FSDP); the count is
    the same. The code tables are counted because each quantized weight owns its own copy on the device
    (memory-model §2.3); they are 64 B (+ 1,028 B with double quantization) per weight, negligible
    against the packed data of any real layer.
    """
    n = _check_count(numel, "numel")
    _check_precision(precision)
    if precision in ("fp32", "bf16", "fp16"):
        return (TensorAlloc("weight", {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[precision], n),)
    if precision == "int8":
        if rows is None:
            raise CalcError("int8 (LLM.int8) needs rows = out_features for its per-row scales", field="rows")
        r = _check_count(rows, "rows")
        if n % r:
            raise CalcError(f"must divide numel ({n}), got {r}", field="rows")
        return (TensorAlloc("weight (CB)", "int8", n), TensorAlloc("SCB", "float32", r))
    bs = _check_blocksize(blocksize)
    blocks = -(-n // bs)
    tensors = [TensorAlloc("weight", "uint8", (n + 1) // 2),
               TensorAlloc("quant_state.code", "float32", CODE_ENTRIES_4BIT)]
    if not double_quant:
        return tuple(tensors + [TensorAlloc("quant_state.absmax", "float32", blocks)])
    return tuple(tensors + [
        TensorAlloc("quant_state.absmax", "uint8", blocks),
        TensorAlloc("quant_state.offset", "float32", 1),
        TensorAlloc("quant_state.state2.absmax", "float32", -(-blocks // DQ_BLOCKSIZE)),
        TensorAlloc("quant_state.state2.code", "float32", DQ_CODE_ENTRIES),
    ])


def tensor_storage_bytes(numel: int, precision: str, *, rows: int | None = None, blocksize: int = 64,
                         double_quant: bool = True) -> int:
    """Bytes one weight of ``numel`` elements occupies: the sum of :func:`storage_tensors`' ``nbytes``.

    4-bit: ``ceil(n/2) + 64 + 4·ceil(n/B)`` without double quantization;
    ``ceil(n/2) + 64 + ceil(n/B) + 4 + 4·ceil(ceil(n/B)/256) + 1024`` with it. int8:
    ``n + 4·rows``. 16/32-bit: ``2n``/``4n``. (``numel`` is the logical ``out·in``, not the packed
    tensor's ``numel()``.)
    """
    return sum(t.nbytes for t in storage_tensors(numel, precision, rows=rows, blocksize=blocksize,
                                                 double_quant=double_quant))


def allocated_bytes(tensors: Sequence[TensorAlloc], granularity: int = CUDA_ALLOCATION_GRANULARITY) -> int:
    """What a caching allocator that rounds every tensor up to ``granularity`` bytes reserves for them
    (torch CUDA: 512, ``kMinBlockSize``). ``granularity=1`` gives the plain sum of ``nbytes``."""
    g = _check_count(granularity, "granularity")
    return sum(-(-t.nbytes // g) * g for t in tensors)


def bits_per_parameter(precision: str, double_quant: bool = True, *, blocksize: int = 64,
                       in_features: int | None = None) -> float:
    """Storage bits per weight element, asymptotically (fixed per-tensor tables left out).

    4-bit (QLoRA §3, Double Quantization): ``4 + 32/B`` without double quantization (4.5 at B=64) and
    ``4 + 8/B + 32/(B·256)`` with it (4.127 at B=64: "8/64 + 32/(64·256) = 0.127 bits"). int8 (LLM.int8):
    ``8``, plus ``32/in_features`` for the fp32 row scale when ``in_features`` is given. 16/32-bit: 16/32.
    """
    _check_precision(precision)
    if precision in ("fp32", "bf16", "fp16"):
        return 8.0 * DTYPE_BYTES[precision]
    if precision == "int8":
        return 8.0 + (32.0 / _check_count(in_features, "in_features") if in_features is not None else 0.0)
    bs = _check_blocksize(blocksize)
    if double_quant:
        return 4.0 + 8.0 / bs + 32.0 / (bs * DQ_BLOCKSIZE)
    return 4.0 + 32.0 / bs


# -- whole models --------------------------------------------------------------------------------------------
NN_LINEAR_SUBCLASS_FAMILIES = frozenset({"falcon"})
"""Families whose decoder linears are a *subclass* of ``nn.Linear`` (Falcon's ``FalconLinear``,
``transformers/models/falcon/modeling_falcon.py``). ``replace_with_bnb_linear`` tests
``type(module) is nn.Linear`` (or ``isinstance(module, Conv1D)``), so transformers 5.23 leaves them in
the load dtype under every bitsandbytes config (checked by loading a tiny Falcon in 4- and 8-bit)."""
QUANTIZABLE_KINDS = frozenset({"linear", "conv1d"})
"""Module kinds ``replace_with_bnb_linear`` converts: ``nn.Linear`` and GPT-2's ``Conv1D``. MoE expert
stacks (``experts``: 3-D ``nn.Parameter`` inside e.g. ``MixtralExperts``) and routers (``router``: the
``weight`` of a custom ``*TopKRouter`` module) are not ``nn.Linear`` and stay in the load dtype;
transformers 5.23 patches expert modules for quantization only for Llama-4
(``quantizers/base.py`` ``MODULES_TO_PATCH_FOR_QUANTIZATION``)."""


@dataclass(frozen=True)
class ModuleBytes:
    """Storage of one weight kind of the model (all ``count`` instances), in bytes."""

    name: str
    kind: str
    count: int
    params: int
    storage: str
    weight_bytes: int
    bias_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.bias_bytes

    @property
    def quantized(self) -> bool:
        return self.storage in QUANTIZED


@dataclass(frozen=True)
class WeightBytes:
    """A model's weight storage under one precision (bytes).

    ``quantized_bytes`` counts the quantized weights with everything bitsandbytes keeps for them
    (scales, code tables); ``unquantized_bytes`` everything else (embeddings, lm_head, norms, biases,
    MoE experts and routers in the 16-bit dtype). ``modules`` lists every weight kind.
    """

    precision: str
    double_quant: bool
    blocksize: int
    dtype: str
    quantized_bytes: int
    unquantized_bytes: int
    modules: tuple[ModuleBytes, ...]

    @property
    def total_bytes(self) -> int:
        return self.quantized_bytes + self.unquantized_bytes

    @property
    def quantized_params(self) -> int:
        return sum(m.params for m in self.modules if m.quantized)


def model_weight_bytes(arch: "Architecture", precision: str, double_quant: bool = True, *, blocksize: int = 64,
                       dtype: str = "bf16") -> WeightBytes:
    """Bytes of all weights of ``arch`` loaded in ``precision``.

    fp32/bf16/fp16: every parameter in that dtype (``dtype`` is ignored). int8/nf4/fp4: what
    ``from_pretrained(quantization_config=BitsAndBytesConfig(...))`` builds in transformers 5.23 with the
    default skip list (``llm_int8_skip_modules=None``): each ``nn.Linear``/``Conv1D`` weight inside the
    decoder is quantized separately (:func:`tensor_storage_bytes` per matrix); the embeddings, ``lm_head``
    (``get_keys_to_not_convert``: the output embedding), all norms, every bias, MoE expert stacks and
    routers, and Falcon's ``FalconLinear`` layers (see :data:`NN_LINEAR_SUBCLASS_FAMILIES`) stay in
    ``dtype`` — the ``dtype=`` the model is loaded with (bf16 unless told). Tied embeddings count once.
    ``double_quant``/``blocksize`` apply to nf4/fp4 only.
    """
    _check_precision(precision)
    if dtype not in UNQUANTIZED_DTYPES:
        raise CalcError(f"must be one of {', '.join(UNQUANTIZED_DTYPES)}, got {dtype!r}", field="dtype")
    if precision in FOUR_BIT:
        _check_blocksize(blocksize)
    plain = precision if precision not in QUANTIZED else dtype
    width = DTYPE_BYTES[plain]
    quantize_linears = precision in QUANTIZED and arch.model_type not in NN_LINEAR_SUBCLASS_FAMILIES
    rows: list[ModuleBytes] = []
    for m in arch.modules:
        bias = m.out_features if m.bias else 0
        bias_bytes = m.count * bias * width
        if quantize_linears and m.kind in QUANTIZABLE_KINDS:
            one = tensor_storage_bytes(m.in_features * m.out_features, precision, rows=m.out_features,
                                       blocksize=blocksize, double_quant=double_quant)
            rows.append(ModuleBytes(m.name, m.kind, m.count, m.params, precision, m.count * m.experts * one,
                                    bias_bytes))
        else:
            rows.append(ModuleBytes(m.name, m.kind, m.count, m.params, plain,
                                    m.count * m.weight_params * width, bias_bytes))
    for n in arch.norms:
        rows.append(ModuleBytes(n.name, "norm", n.count, n.params, plain, n.count * n.size * width,
                                n.count * n.size * width if n.bias else 0))
    fn = arch.final_norm
    rows.append(ModuleBytes(fn.name, "norm", 1, fn.params, plain, fn.size * width, fn.size * width if fn.bias else 0))
    for e in arch.embeddings:
        rows.append(ModuleBytes(e.name, "embedding", 1, e.params, plain, e.params * width, 0))
    if not arch.tie_word_embeddings:
        rows.append(ModuleBytes(arch.lm_head.name, "lm_head", 1, arch.lm_head.params, plain,
                                arch.lm_head.params * width, 0))
    quantized = sum(r.weight_bytes for r in rows if r.quantized)
    total = sum(r.total_bytes for r in rows)
    return WeightBytes(precision=precision, double_quant=bool(double_quant) and precision in FOUR_BIT,
                       blocksize=blocksize, dtype=plain, quantized_bytes=quantized,
                       unquantized_bytes=total - quantized, modules=tuple(rows))
