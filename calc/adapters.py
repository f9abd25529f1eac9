"""Adapter file sizes, exact to the byte, and merged-model sizes.

:func:`adapter_file_bytes` returns what ``os.path.getsize`` reports for the ``adapter_model.safetensors`` that
``PeftModel.save_pretrained(dir)`` writes (PEFT 0.21.2, the default ``safe_serialization=True``, safetensors
0.8.0). It lists every tensor PEFT saves, with its key, shape and dtype, then lays the file out the way the
safetensors library does. Everything here is arithmetic: no I/O and no torch.

**What PEFT writes** (``peft/peft_model.py`` ``PeftModel.save_pretrained`` → ``peft/utils/save_and_load.py``
``get_peft_model_state_dict`` → ``safetensors.torch.save_file(state_dict, ".../adapter_model.safetensors",
metadata={"format": "pt"})``). Keys are the PEFT model's ``state_dict`` keys, so they start with
``base_model.model.``. The adapter name (``default``) is taken out by ``_remove_adapter_name_from_state_dict_key``
in ``peft/tuners/tuners_utils.py``.

- LoRA on a linear or Conv1D module: ``<path>.lora_A.weight`` ``[r, in]`` and ``<path>.lora_B.weight``
  ``[out, r]``, where ``<path>`` is ``base_model.model.<layer_prefix>.<i>.<module>``
  (``base_model.model.model.layers.0.self_attn.q_proj``).
- DoRA: also ``<path>.lora_magnitude_vector`` ``[out]``. There is no ``.weight`` suffix:
  ``LoraModel._get_adapter_state_dict`` in ``peft/tuners/lora/model.py`` strips it so the format stays as it was.
- MoE parameter targets (``lora.ParamWrapper``, transformers v5 stacked experts): ``<module>.lora_A.weight``
  ``[E·r, in]`` and ``<module>.lora_B.weight`` ``[out, E·r]``, where ``<module>`` is the module that *holds* the
  parameter (``mlp.experts``, or ``mlp.gate`` for a router, with E = 1). PEFT targets several parameters of one
  module by nesting wrappers. ``BaseTuner._inject_parameters`` (``peft/tuners/tuners_utils.py``) wraps them
  in the order the module registered them, so the first one ends up innermost. In a layer where both of
  Mixtral's ``gate_up_proj`` and ``down_proj`` are targeted, the keys are
  ``mlp.experts.base_layer.lora_A.weight`` (gate_up_proj, at rank 2r) and ``mlp.experts.lora_A.weight``
  (down_proj).
- ``bias="lora_only"``: ``<path>.base_layer.bias`` for each targeted module that has a bias. ``bias="all"``:
  every ``state_dict`` key that ends in ``.bias``. That is the ``.base_layer.bias`` keys above plus
  ``<path>.bias`` for the untargeted linears and for LayerNorms, the final norm included
  (``BaseTuner._get_learnable_bias_state_dict``).
- ``modules_to_save``: ``base_model.model.<full path>.weight`` (``lm_head.weight``,
  ``model.embed_tokens.weight``). This is a full copy, and it is saved even when the output layer is tied to
  the embedding (``ModulesToSaveWrapper.adapter_state_dict``, ``peft/utils/other.py``).
- Not modelled because calc cannot express it: ``lora_bias=True`` (``lora_B.bias``), LoRA on embeddings
  (``lora_embedding_A/B``, plus the whole embedding table that ``save_embedding_layers="auto"`` adds), a resized
  vocabulary (which also adds the embedding tables), and PiSSA/OLoRA conversion on save (rank 2r).

**Dtypes.** The LoRA A/B matrices and DoRA magnitudes are saved in the dtype they have in memory.
``get_peft_model(..., autocast_adapter_dtype=True)`` is the default, and it upcasts fp16/bf16 adapter weights
to float32 (``cast_adapter_dtype`` in ``peft/tuners/tuners_utils.py``). So an adapter is **F32 even on a bf16
model**, unless you do one of these:

- load the model in bf16 and pass ``autocast_adapter_dtype=False`` (the adapter is then created in bf16);
- or cast before saving (``peft_model.to(torch.bfloat16)``).

Either way gives ``dtype="bfloat16"``. Biases and ``modules_to_save`` copies are not adapter layers and are
never upcast: they keep the **base model's** dtype (``base_dtype``). A bf16 model saved with the defaults
therefore writes a mixed file: F32 LoRA tensors and BF16 ``lm_head.weight``/biases.

**safetensors layout** (``huggingface/safetensors`` ``safetensors/src/tensor.rs``: ``prepare``, ``serialize``,
``serialize_to_file``; the format is described in the repository README):

- ``u64`` little-endian ``N`` ‖ ``N`` header bytes ‖ tensor data.
- The tensors are sorted by dtype, **descending** in the ``Dtype`` enum's order (``... F16 < BF16 < ... < F32
  ...``), then by name as a byte string. Their data is written back to back in that order. ``data_offsets``
  ``[begin, end]`` count from the first byte after the header.
- The header is compact ``serde_json``: ``{"__metadata__":{"format":"pt"},"<key>":{"dtype":"F32",
  "shape":[4,32],"data_offsets":[0,512]},...}``. It lists the tensors in file order, with no spaces, and field
  order ``dtype``, ``shape``, ``data_offsets``.
- The header is right-padded with spaces (``b' '``) so that ``N`` is a multiple of 8.

The sort order and the byte-exact header were checked against files written by safetensors 0.8.0 (see
``tests/verify/test_adapter_files.py``, which compares the whole header text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from calc.architecture import Architecture
from calc.errors import CalcError
from calc.lora import LoraCount, LoraSpec, ModuleLora, count_lora

# torch dtype name -> (safetensors dtype code, bytes per element)
DTYPES: Mapping[str, tuple[str, int]] = {
    "float32": ("F32", 4),
    "bfloat16": ("BF16", 2),
    "float16": ("F16", 2),
}
DTYPE_ALIASES: Mapping[str, str] = {
    "float32": "float32", "fp32": "float32", "f32": "float32", "float": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "f16": "float16", "half": "float16",
}
# Position in safetensors' ``Dtype`` enum (it derives ``Ord``; declared BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16,
# F16, BF16, I32, U32, F32, F64, I64, U64). ``prepare`` sorts by this, descending. Only the relative order of
# the three dtypes calc emits matters here.
_ENUM_ORDER: Mapping[str, int] = {"F16": 7, "BF16": 8, "F32": 11}
ITEMSIZE: Mapping[str, int] = {code: size for code, size in DTYPES.values()}

PEFT_PREFIX = "base_model.model."
PEFT_METADATA: Mapping[str, str] = {"format": "pt"}
FILE_NAME = "adapter_model.safetensors"
LENGTH_PREFIX_BYTES = 8  # the u64 header length
MIB = 1 << 20


def normalize_dtype(name: str, field_name: str = "dtype") -> str:
    """``"bf16"``/``"bfloat16"``/``"torch.bfloat16"`` → ``"bfloat16"``. Raises :class:`CalcError` otherwise."""
    key = name.strip().lower().removeprefix("torch.") if isinstance(name, str) else None
    if key not in DTYPE_ALIASES:
        raise CalcError(f"must be one of float32, bfloat16, float16 (or fp32, bf16, fp16), got {name!r}",
                        field=field_name)
    return DTYPE_ALIASES[key]


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of the file. ``dtype`` is the safetensors code (``F32``, ``BF16``, ``F16``)."""

    key: str
    shape: tuple[int, ...]
    dtype: str
    begin: int = 0      # data_offsets, filled in by :func:`safetensors_layout`
    end: int = 0

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * ITEMSIZE[self.dtype]


@dataclass(frozen=True)
class AdapterFile:
    """The layout of ``adapter_model.safetensors``.

    ``bytes`` = 8 (u64 header length) + ``header_bytes`` (JSON plus padding, a multiple of 8) + ``tensor_bytes``.
    ``entries`` are in file order, with their data offsets. ``header`` is the exact header text, padding
    included.
    """

    bytes: int
    header_bytes: int
    tensor_bytes: int
    tensors: int
    params: int                 # elements over all tensors (= PEFT's trainable parameters)
    dtype: str                  # torch name of the LoRA/DoRA tensors' dtype
    base_dtype: str             # torch name of the biases' and modules_to_save copies' dtype
    entries: tuple[TensorEntry, ...] = field(repr=False)
    header: str = field(repr=False)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(e.key for e in self.entries)

    @property
    def mib(self) -> float:
        return self.bytes / MIB

    @property
    def header_padding(self) -> int:
        """Spaces appended to the JSON so that the header length is a multiple of 8."""
        return len(self.header) - len(self.header.rstrip(" "))


# -- which tensors PEFT saves ----------------------------------------------------------------------------
def _layers(arch: Architecture, path: str, rules: Iterable) -> list[int]:
    c = arch.config
    for rule in rules:
        if rule.path == path and rule.present(c):
            return [i for i in range(arch.num_hidden_layers) if rule.layers(c, i)]
    raise AssertionError(f"no rule for {path}")  # pragma: no cover - calc.lora only returns modules of arch


def _owner(m: ModuleLora) -> tuple[str, str]:
    """(module that holds the parameter, parameter name) for a MoE parameter target."""
    if m.kind == "router":
        return m.name, "weight"
    owner, _, param = m.name.rpartition(".")
    return owner, param


def adapter_tensors(arch: Architecture, spec: LoraSpec, dtype: str = "float32", base_dtype: str | None = None,
                    count: LoraCount | None = None) -> tuple[TensorEntry, ...]:
    """Every tensor in PEFT's adapter file for ``spec`` on ``arch``: keys, shapes and dtypes, in model order.

    ``dtype`` is the dtype of the LoRA matrices and DoRA vectors as saved. ``base_dtype`` is the dtype of the
    biases and ``modules_to_save`` copies; when it is not given, it is the same as ``dtype``. See the module
    docstring for the key patterns and their PEFT sources.
    """
    lora_code = DTYPES[normalize_dtype(dtype)][0]
    base_code = DTYPES[normalize_dtype(base_dtype if base_dtype is not None else dtype, "base_dtype")][0]
    count = count if count is not None else count_lora(arch, spec)
    fam = arch.family
    layer_prefix = f"{PEFT_PREFIX}{fam.layer_prefix}."
    out: dict[str, TensorEntry] = {}

    def add(key: str, shape: tuple[int, ...], code: str) -> None:
        out[key] = TensorEntry(key, shape, code)

    # Parameter targets that share a module are nested: the parameter registered first is innermost. calc's
    # module rules list a module's parameters in the order transformers registers them (gate_up_proj, down_proj).
    param_targets = [m for m in count.modules if m.kind not in ("linear", "conv1d")]
    siblings: dict[str, list[str]] = {}
    for m in param_targets:
        siblings.setdefault(_owner(m)[0], []).append(m.name)

    targeted = set()
    for m in count.modules:
        layers = _layers(arch, m.name, fam.modules)
        if len(layers) != m.count:  # pragma: no cover - would mean calc.lora and calc.architecture disagree
            raise AssertionError(f"{m.name}: {len(layers)} layers vs count {m.count}")
        if m.kind in ("linear", "conv1d"):
            targeted.add(m.name)
            for i in layers:
                base = f"{layer_prefix}{i}.{m.name}"
                add(f"{base}.lora_A.weight", (m.r, m.in_features), lora_code)
                add(f"{base}.lora_B.weight", (m.out_features, m.r), lora_code)
                if spec.use_dora:
                    add(f"{base}.lora_magnitude_vector", (m.out_features,), lora_code)
        else:
            owner, _ = _owner(m)
            group = siblings[owner]
            depth = len(group) - 1 - group.index(m.name)   # wrappers outside this one
            rank = m.experts * m.r
            for i in layers:
                base = f"{layer_prefix}{i}.{owner}" + ".base_layer" * depth
                add(f"{base}.lora_A.weight", (rank, m.in_features), lora_code)
                add(f"{base}.lora_B.weight", (m.out_features, rank), lora_code)

    if spec.bias in ("all", "lora_only"):
        for lm in arch.modules:
            if not lm.bias or lm.kind not in ("linear", "conv1d"):
                continue
            if lm.name in targeted:
                suffix = ".base_layer.bias"
            elif spec.bias == "all":
                suffix = ".bias"
            else:
                continue
            for i in _layers(arch, lm.name, fam.modules):
                add(f"{layer_prefix}{i}.{lm.name}{suffix}", (lm.out_features,), base_code)
    if spec.bias == "all":
        c = arch.config
        for rule in fam.norms:
            if rule.bias and rule.present(c):
                for i in range(arch.num_hidden_layers):
                    if rule.layers(c, i):
                        add(f"{layer_prefix}{i}.{rule.path}.bias", (rule.size(c),), base_code)
        if arch.final_norm.bias:
            add(f"{PEFT_PREFIX}{arch.final_norm.name}.bias", (arch.final_norm.size,), base_code)

    tables = {e.name: e for e in arch.embeddings + (arch.lm_head,)}
    leaves = {e.name.rsplit(".", 1)[-1]: e for e in tables.values()}
    for name, _ in count.modules_to_save:
        table = tables.get(name) or leaves[name.rsplit(".", 1)[-1]]
        add(f"{PEFT_PREFIX}{table.name}.weight", (table.rows, table.cols), base_code)
    return tuple(out.values())


# -- the safetensors file --------------------------------------------------------------------------------
def file_order(entries: Iterable[TensorEntry]) -> list[TensorEntry]:
    """safetensors' ``prepare``: dtype descending (enum order), then name ascending (byte order)."""
    return sorted(entries, key=lambda e: (-_ENUM_ORDER[e.dtype], e.key.encode("utf-8")))


def _json_str(s: str) -> str:
    # serde_json escapes '"', '\\' and control characters and writes everything else as raw UTF-8, as
    # json.dumps(ensure_ascii=False) does.
    return json.dumps(s, ensure_ascii=False)


def safetensors_layout(entries: Iterable[TensorEntry],
                       metadata: Mapping[str, str] | None = PEFT_METADATA) -> tuple[str, tuple[TensorEntry, ...]]:
    """(padded header text, entries in file order with data offsets) for a ``safetensors`` file.

    This follows ``prepare`` in ``safetensors/src/tensor.rs``. The header has ``__metadata__`` first (when
    given), then the tensors in file order. There are no spaces in the JSON, and spaces are added at the end
    up to a multiple of 8 bytes. ``metadata`` is a string→string map. PEFT only ever writes one key, so the
    HashMap iteration order that the Rust side uses for several keys never comes up.
    """
    placed = []
    offset = 0
    parts = []
    if metadata is not None:
        meta = ",".join(f"{_json_str(k)}:{_json_str(v)}" for k, v in metadata.items())
        parts.append(f'"__metadata__":{{{meta}}}')
    for e in file_order(entries):
        end = offset + e.nbytes
        placed.append(TensorEntry(e.key, e.shape, e.dtype, offset, end))
        shape = ",".join(str(d) for d in e.shape)
        parts.append(f'{_json_str(e.key)}:{{"dtype":"{e.dtype}","shape":[{shape}],"data_offsets":[{offset},{end}]}}')
        offset = end
    text = "{" + ",".join(parts) + "}"
    pad = (8 - len(text.encode("utf-8")) % 8) % 8
    return text + " " * pad, tuple(placed)


def adapter_file_bytes(arch: Architecture, spec: LoraSpec, dtype: str = "float32",
                       base_dtype: str | None = None) -> AdapterFile:
    """The exact size of ``adapter_model.safetensors`` as written by ``PeftModel.save_pretrained``.

    ``dtype`` is the dtype of the saved LoRA tensors: ``"float32"`` is PEFT's default, even on a bf16 model.
    Use ``"bfloat16"`` for a bf16 model loaded with ``autocast_adapter_dtype=False`` or cast before saving.
    ``base_dtype`` is the model's dtype. Biases (``bias="all"/"lora_only"``) and ``modules_to_save`` copies
    are saved in it. When it is not given, it is the same as ``dtype``, which is right for an fp32 model and
    for a fully cast one. For a bf16 model saved with PEFT's defaults, pass ``dtype="float32",
    base_dtype="bfloat16"``.
    Raises :class:`CalcError` for an unknown dtype or a spec that PEFT would refuse (see :func:`count_lora`).
    """
    lora_dtype = normalize_dtype(dtype)
    model_dtype = normalize_dtype(base_dtype, "base_dtype") if base_dtype is not None else lora_dtype
    entries = adapter_tensors(arch, spec, lora_dtype, model_dtype)
    header, placed = safetensors_layout(entries)
    header_bytes = len(header.encode("utf-8"))
    tensor_bytes = placed[-1].end if placed else 0
    return AdapterFile(
        bytes=LENGTH_PREFIX_BYTES + header_bytes + tensor_bytes, header_bytes=header_bytes,
        tensor_bytes=tensor_bytes, tensors=len(placed), params=sum(e.numel for e in placed), dtype=lora_dtype,
        base_dtype=model_dtype, entries=placed, header=header,
    )


# -- merged models -----------------------------------------------------------------------------------------
def merged_model_bytes(arch: Architecture, precision: str = "bfloat16") -> int:
    """Bytes of the weights of the merged model (``merge_and_unload()``) stored at ``precision``.

    Merging folds ``(α/r)·B·A`` into each ``W``. What comes back is the base architecture with its shapes
    unchanged, so the size is ``arch.total_params × itemsize``, with tied weights counted once (transformers
    saves a tied output layer once). This counts tensor data only. Each safetensors shard also carries a
    JSON header of roughly 100 bytes per tensor (tens of KB for a whole model, under 0.01 % of a 1B model),
    and a sharded save adds ``model.safetensors.index.json``. Neither is included. ``precision`` takes
    ``fp32``/``bf16``/``fp16`` or the torch names. Raises :class:`CalcError` otherwise.
    """
    return arch.total_params * DTYPES[normalize_dtype(precision, "precision")][1]


def merged_sizes(arch: Architecture) -> dict[str, int]:
    """:func:`merged_model_bytes` for each of float32, bfloat16 and float16."""
    return {name: merged_model_bytes(arch, name) for name in DTYPES}


__all__ = [
    "AdapterFile", "DTYPES", "TensorEntry", "adapter_file_bytes", "adapter_tensors", "file_order",
    "merged_model_bytes", "merged_sizes", "normalize_dtype", "safetensors_layout",
]
