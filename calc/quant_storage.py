"""Quantized weight storage without numpy: the bytes each precision allocates for a weight and a whole model.

Split out of :mod:`calc.quant` (which re-exports every name here) so that it runs where numpy does not:
:mod:`calc.memory` imports it, and the site's calculator runs it in the browser (MicroPython; see
``macros/mpy_transform.py``). Units: sizes are **bytes**; ``numel``/``params`` are element counts; bits per
parameter are bits. Sources are listed in :mod:`calc.quant`'s docstring (bitsandbytes 0.50.2
``functional.quantize_4bit``/``QuantState``, ``nn/modules.py`` ``Params4bit``/``Int8Params``; transformers
5.23.0 ``integrations/bitsandbytes.py`` ``replace_with_bnb_linear``; QLoRA §3 for double quantization).

Pure arithmetic: no numpy, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

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


def _is_integer(value: object) -> bool:
    """An ``int`` or an integer scalar of another library (numpy's ``np.int64``: it has ``__index__``)."""
    return isinstance(value, int) or (not isinstance(value, float) and hasattr(type(value), "__index__"))


def _check_blocksize(blocksize: int, allowed: Sequence[int] | None = BLOCKSIZES_4BIT) -> int:
    if isinstance(blocksize, bool) or not _is_integer(blocksize) or blocksize <= 0:
        raise CalcError(f"must be a positive integer, got {blocksize!r}", field="blocksize")
    if allowed is not None and blocksize not in allowed:
        raise CalcError(f"must be one of {', '.join(map(str, allowed))} (bitsandbytes' valid sizes), "
                        f"got {blocksize}", field="blocksize")
    return int(blocksize)


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
    if isinstance(value, bool) or not _is_integer(value) or value <= 0:
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
