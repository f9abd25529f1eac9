"""The calculator page's entry point: form state in, every displayed number out (or field errors).

Runs on CPython and, rewritten by ``macros/mpy_transform.py``, on MicroPython in the reader's browser: no numpy,
no pydantic, no I/O. It holds no formula. It turns the form's values (strings as typed, or JSON values from the
URL) into calc's inputs, calls calc (:meth:`~calc.architecture.Architecture.from_hf_config`,
:func:`~calc.lora.count_lora`, :func:`~calc.adapters.adapter_file_bytes`, :func:`~calc.memory.estimate_memory`,
:func:`~calc.gpus.fit_all`) and collects what they return. A :class:`~calc.errors.CalcError` becomes a message
keyed by the form field it names: ``config.<key>`` for a model dimension, the calc field name (``r``,
``micro_batch``...) otherwise.

The state (every value may be a string, as typed):

* ``config``: the model, a config.json subset in Hugging Face vocabulary (:func:`canonical_config`).
* LoRA: ``r``, ``lora_alpha``, ``targets`` (``all-linear``, ``qv``, ``attention``, ``mlp`` or ``custom``),
  ``target_modules`` (the names when ``targets`` is ``custom``), ``use_dora``, ``use_rslora``.
* training (:class:`~calc.memory.TrainingSetup`): ``method``, ``base_precision``, ``adapter_dtype``,
  ``optimizer``, ``micro_batch``, ``seq_len``, ``gradient_checkpointing``, ``num_gpus``, ``sharding``.
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any

from calc.adapters import adapter_file_bytes
from calc.architecture import Architecture
from calc.errors import CalcError
from calc.families import BOOL_KEYS, FAMILIES, INT_KEYS, LIST_KEYS, family_keys
from calc.gpus import Gpu, fit_all
from calc.lora import ALL_LINEAR, SHORTCUTS, LoraSpec, count_lora, peft_target_modules
from calc.memory import (ADAPTER_DTYPES, COMPONENTS, DENSE_PRECISIONS, METHODS, OPTIMIZERS, QUANT_TYPES, SHARDING,
                         TrainingSetup, estimate_memory)

#: The model dimensions the form edits: (id, candidate config keys; the first one the family reads is used).
DIMENSIONS = (
    ("hidden", ("hidden_size",)),
    ("intermediate", ("ffn_hidden_size", "intermediate_size")),
    ("layers", ("num_hidden_layers",)),
    ("heads", ("num_attention_heads",)),
    ("kv_heads", ("num_kv_heads", "num_key_value_heads")),
    ("head_dim", ("head_dim",)),
    ("vocab", ("vocab_size",)),
    ("tied", ("tie_word_embeddings",)),
)
TARGET_SETS = (ALL_LINEAR,) + tuple(SHORTCUTS) + ("custom",)
#: LoRA defaults of the command line (``calc.cli.options``): r = 16, lora_alpha = 2r.
DEFAULT_R = 16
DEFAULT_ALPHA = 2 * DEFAULT_R
MAX_CONFIG_CHARS = 1 << 20
_INT = re.compile(r"^[+-]?[0-9]+$")
_FLOAT = re.compile(r"^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$")

_GPUS: list = []


# -- the model ---------------------------------------------------------------------------------------------
def dimension_keys(model_type: str) -> dict[str, str | None]:
    """``{dimension id: the config key the family reads for it}`` (None: the family has no such key)."""
    keys = family_keys(FAMILIES[model_type])
    out = {}
    for dim, candidates in DIMENSIONS:
        out[dim] = None
        for key in candidates:
            if key in keys:
                out[dim] = key
                break
    return out


def canonical_config(mapping: Any) -> dict[str, Any]:
    """A config.json (or a preset's config) reduced to the keys calc reads, in canonical spelling.

    Validated first by :meth:`Architecture.from_hf_config` (raises :class:`CalcError`); aliases such as GPT-2's
    ``n_embd`` become the canonical key (``hidden_size``) so that the form edits one key per dimension.
    """
    Architecture.from_hf_config(mapping)
    family = FAMILIES[mapping["model_type"]]
    keys = family_keys(family)
    out = {"model_type": mapping["model_type"]}
    for key, value in mapping.items():
        canonical = family.aliases.get(key, key)
        if canonical in keys and canonical != "model_type":
            out[canonical] = list(value) if isinstance(value, tuple) else value
    return out


def parse_config_text(text: Any) -> dict[str, Any]:
    """Pasted config.json text → ``{"config": canonical config}`` or ``{"errors": {"config_json": message}}``.

    A multimodal config's ``text_config`` is used when the top level has no layers (as ``calc.cli`` does).
    """
    if not isinstance(text, str) or not text.strip():
        return {"errors": {"config_json": "paste the contents of a config.json"}}
    if len(text) > MAX_CONFIG_CHARS:
        return {"errors": {"config_json": f"is {len(text)} characters; a config.json is far smaller"}}
    try:
        data = json.loads(text)
    except (ValueError, RuntimeError, MemoryError):  # RecursionError (deep nesting) is a RuntimeError
        return {"errors": {"config_json": "is not valid JSON (check for a missing comma, quote or brace)"}}
    if not isinstance(data, dict):
        return {"errors": {"config_json": "must be a JSON object (the contents of a config.json)"}}
    inner = data.get("text_config")
    if isinstance(inner, dict) and "model_type" in inner and "num_hidden_layers" not in data:
        data = inner
    try:
        return {"config": canonical_config(data)}
    except CalcError as err:
        where = f"{err.field}: " if err.field else ""
        return {"errors": {"config_json": where + err.message}}


# -- parsing form values -------------------------------------------------------------------------------------
def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _as_int(value: Any) -> Any:
    """``"2048"`` → 2048; anything else unchanged (calc's checks then name the problem)."""
    if isinstance(value, str) and _INT.match(value.strip()):
        return int(value.strip())
    return value


def _as_number(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if _INT.match(text):
            return int(text)
        if _FLOAT.match(text):
            return float(text)
    return value


def _as_bool(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "on", "off"):
        return value.strip().lower() in ("true", "1", "on")
    return value


def _config_values(config: Any) -> dict[str, Any]:
    """The form's config: empty fields dropped (calc then applies its default or says it is required).

    Only an empty *string* is an empty field: a JSON ``null`` from a config.json stays, because calc gives it a
    meaning (DeepSeek-V2-Lite's ``q_lora_rank: null`` is "no query compression", not "the default").
    """
    out = {}
    for key, value in config.items():
        if key in INT_KEYS:
            if isinstance(value, str) and not value.strip():
                continue
            value = _as_int(value)
        elif key in BOOL_KEYS:
            value = _as_bool(value)
        elif key in LIST_KEYS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[key] = value
    return out


def _field_error(errors: dict[str, str], err: CalcError, prefix: str = "") -> None:
    key = prefix + (err.field or "")
    if key not in errors:
        errors[key] = err.message


def _required_int(state: dict, name: str, errors: dict[str, str]) -> Any:
    value = state.get(name)
    if _blank(value):
        errors[name] = "is required"
        return None
    return _as_int(value)


# -- the computation ---------------------------------------------------------------------------------------
def model(config: Any, errors: dict[str, str]) -> Architecture | None:
    """The architecture of the form's config, or None with messages under ``config.<key>``."""
    if not isinstance(config, dict):
        errors["config"] = "a config must be a JSON object"
        return None
    values = _config_values(config)
    model_type = values.get("model_type")
    if isinstance(model_type, str) and model_type in FAMILIES:
        # every field on its own first, so that each bad field gets its message
        from calc.architecture import _check_type

        for key, value in values.items():
            if key != "model_type":
                try:
                    _check_type(key, value)
                except CalcError as err:
                    _field_error(errors, err, "config.")
        if any(k.startswith("config.") for k in errors):
            return None
    try:
        return Architecture.from_hf_config(values)
    except CalcError as err:
        _field_error(errors, err, "config.")
        return None


def lora_spec(state: dict, errors: dict[str, str]) -> LoraSpec | None:
    r = _required_int(state, "r", errors)
    alpha = state.get("lora_alpha")
    if _blank(alpha):
        errors["lora_alpha"] = "is required"
    if "r" in errors or "lora_alpha" in errors:
        return None
    targets = state.get("targets") or ALL_LINEAR
    if targets == "custom":
        targets = tuple(state.get("target_modules") or ())
        if not targets:
            errors["target_modules"] = "choose at least one module"
            return None
    try:
        return LoraSpec(r=r, lora_alpha=_as_number(alpha), target_modules=targets,
                        use_dora=_as_bool(state.get("use_dora", False)) is True,
                        use_rslora=_as_bool(state.get("use_rslora", False)) is True)
    except CalcError as err:
        _field_error(errors, err)
        return None


def training_setup(state: dict, spec: LoraSpec | None, errors: dict[str, str]) -> TrainingSetup | None:
    method = state.get("method") or "lora"
    ints = {name: _required_int(state, name, errors) for name in ("micro_batch", "seq_len", "num_gpus")}
    if any(name in errors for name in ints):
        return None
    if method != "full" and spec is None:
        return None
    try:
        return TrainingSetup(
            method=method, lora=None if method == "full" else spec, base_precision=state.get("base_precision") or None,
            adapter_dtype=state.get("adapter_dtype") or "fp32", optimizer=state.get("optimizer") or "adamw",
            micro_batch=ints["micro_batch"], seq_len=ints["seq_len"],
            gradient_checkpointing=_as_bool(state.get("gradient_checkpointing", False)) is True,
            num_gpus=ints["num_gpus"], sharding=state.get("sharding") or "none")
    except CalcError as err:
        _field_error(errors, err)
        return None


def _model_info(arch: Architecture) -> dict[str, Any]:
    dims = dimension_keys(arch.model_type)
    resolved = arch.config.as_dict()
    return {
        "model_type": arch.model_type,
        "label": arch.family.label,
        "target_names": sorted(arch.target_names),
        "dims": dims,
        "resolved": {key: resolved.get(key) for key in dims.values() if key is not None},
        "total_params": arch.total_params,
    }


_ADAPTER_FILES: dict = {}


def _adapter_file(arch: Architecture, spec: LoraSpec, dtype: str):
    """:func:`calc.adapters.adapter_file_bytes`, remembered for the last few models and LoRA settings: it lays
    out every tensor's header entry (the slowest part of a computation in the browser), and a change of the
    training options (batch, optimizer, GPUs...) does not change the file."""
    key = (repr(sorted(arch.config.as_dict().items())), arch.model_type, spec.r, spec.lora_alpha,
           repr(spec.target_modules), spec.use_dora, spec.use_rslora, spec.bias, repr(spec.modules_to_save), dtype)
    if key not in _ADAPTER_FILES:
        if len(_ADAPTER_FILES) >= 4:
            _ADAPTER_FILES.clear()
        _ADAPTER_FILES[key] = adapter_file_bytes(arch, spec, dtype)
    return _ADAPTER_FILES[key]


def compute(state: dict, gpus: Any = None) -> dict[str, Any]:
    """Everything the calculator shows for ``state`` (see the module docstring).

    Returns ``{"errors": {field: message}, "model": {...} or None, "result": {...} or None}``; ``result`` is
    None whenever there is an error, so a page never shows a number for an input it could not check.
    ``gpus``: :class:`~calc.gpus.Gpu` objects or their field dicts (default: those given to :func:`set_gpus`).
    """
    errors: dict[str, str] = {}
    if not isinstance(state, dict):
        return {"errors": {"state": "must be an object"}, "model": None, "result": None}
    arch = model(state.get("config"), errors)
    method = state.get("method") or "lora"
    spec = lora_spec(state, errors) if method != "full" else None
    setup = training_setup(state, spec, errors)
    info = _model_info(arch) if arch is not None else None
    if arch is None or setup is None or errors:
        return {"errors": errors, "model": info, "result": None}
    result: dict[str, Any] = {"method": setup.method, "base_precision": setup.base_precision}
    try:
        if spec is not None:
            count = count_lora(arch, spec)
            info["peft_target_modules"] = ([count.peft_target_modules] if isinstance(count.peft_target_modules, str)
                                           else list(count.peft_target_modules))
            result.update(
                total_params=count.total_params, trainable_params=count.trainable_params,
                all_params=count.peft_all_params, trainable_percent=count.trainable_percent,
                lora_params=count.lora_params, scaling=spec.scaling,
                scalings=sorted(set(m.scaling for m in count.modules)),
                adapted_modules=[[m.name, m.count, m.r, m.lora_params] for m in count.modules])
            file = _adapter_file(arch, spec, setup.adapter_dtype)
            result.update(adapter_bytes=file.bytes, adapter_tensors=file.tensors, adapter_dtype=file.dtype)
        else:
            result.update(total_params=arch.total_params, trainable_params=arch.total_params,
                          all_params=arch.total_params, trainable_percent=None, lora_params=0, scaling=None,
                          scalings=[], adapted_modules=[], adapter_bytes=None, adapter_tensors=0, adapter_dtype=None)
        est = estimate_memory(arch, setup)
    except CalcError as err:
        _field_error(errors, err)
        return {"errors": errors, "model": info, "result": None}
    per_gpu = est.per_gpu_components if est.per_gpu_components is not None else est.components
    peak = est.device_bytes
    chosen = _GPUS if gpus is None else [g if isinstance(g, Gpu) else Gpu(**g) for g in gpus]
    fits = fit_all(chosen, peak, est.cuda_context_bytes)
    names = {g.id: g.name for g in chosen}
    result["memory"] = {
        "phase": est.phase,
        "components": [[name, value] for name, value in per_gpu],
        "peak_bytes": peak,
        "total_bytes": est.total_bytes,
        "cuda_context_bytes": est.cuda_context_bytes,
        "num_gpus": est.num_gpus,
        "required_bytes": fits[0].required_bytes if fits else None,
    }
    result["gpus"] = [{"id": f.gpu, "name": names[f.gpu], "usable_bytes": f.usable_bytes,
                       "required_bytes": f.required_bytes, "headroom_bytes": f.headroom_bytes, "fits": f.fits}
                      for f in fits]
    return {"errors": errors, "model": info, "result": result}


# -- the browser's side ------------------------------------------------------------------------------------
def set_gpus(gpus_json: str) -> int:
    """The GPUs :func:`compute` checks (the page's gpus.json: a list of :class:`~calc.gpus.Gpu` field dicts)."""
    _GPUS[:] = [Gpu(**g) for g in json.loads(gpus_json)]
    return len(_GPUS)


def _exact(obj: Any) -> Any:
    """JSON-safe without loss: ints as decimal strings (JavaScript numbers hold 53 bits), floats as the hex of
    their IEEE-754 bits (``"0x3fb999999999999a"``), so the page formats exactly what calc computed."""
    if obj is True or obj is False or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return str(obj)
    if isinstance(obj, float):
        return "0x" + "".join("%02x" % b for b in struct.pack(">d", obj))
    if isinstance(obj, dict):
        return {str(k): _exact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_exact(v) for v in obj]
    raise TypeError(f"cannot encode {type(obj).__name__}")


def compute_json(state_json: str) -> str:
    """:func:`compute` for the page: a JSON state in, the exact JSON result out (see :func:`_exact`)."""
    try:
        state = json.loads(state_json)
    except (ValueError, RuntimeError, MemoryError):
        return json.dumps({"errors": {"state": "is not valid JSON"}, "model": None, "result": None})
    return json.dumps(_exact(compute(state)))


def parse_config_json(text: str) -> str:
    """:func:`parse_config_text` for the page (JSON out; config values are JSON values as pasted)."""
    return json.dumps(parse_config_text(text))


# -- build time: what the form offers ----------------------------------------------------------------------
def catalogue() -> dict[str, Any]:
    """The form's vocabularies and defaults (written into the page's data at build time)."""
    setup = TrainingSetup()
    return {
        "families": {t: {"label": f.label, "dims": dimension_keys(t)} for t, f in FAMILIES.items()},
        "target_sets": list(TARGET_SETS),
        "methods": list(METHODS),
        "precisions": {"full": list(DENSE_PRECISIONS), "lora": list(DENSE_PRECISIONS), "qlora": list(QUANT_TYPES)},
        "adapter_dtypes": list(ADAPTER_DTYPES),
        "optimizers": list(OPTIMIZERS),
        "sharding": list(SHARDING),
        "components": list(COMPONENTS),
        "defaults": {
            "r": DEFAULT_R, "lora_alpha": DEFAULT_ALPHA, "targets": ALL_LINEAR, "target_modules": [],
            "use_dora": False, "use_rslora": False, "method": setup.method, "base_precision": setup.base_precision,
            "adapter_dtype": setup.adapter_dtype, "optimizer": setup.optimizer, "micro_batch": setup.micro_batch,
            "seq_len": setup.seq_len, "gradient_checkpointing": setup.gradient_checkpointing,
            "num_gpus": setup.num_gpus, "sharding": setup.sharding,
        },
    }
