"""Contributor tools for presets: a preset from a model's ``config.json``, the JSON Schema of preset files,
and the preview rows the site will show for a preset.

Pure functions: nothing here reads or writes files (``python -m calc preset``, in
:mod:`calc.cli.preset`, does the I/O). Units: parameter counts in elements, memory in bytes with
``*_gib`` (2^30 bytes) views.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import yaml

from calc.architecture import EXPERT_COUNT_KEYS, MAX_DIM, MAX_EXPERTS, MAX_LAYERS, Architecture
from calc.errors import CalcError
from calc.families import BOOL_KEYS, FAMILIES, INT_KEYS, LIST_KEYS, NULLABLE, ZERO_OK, family_keys
from calc.preset_files import ID_PATTERN

#: First line of every preset file: editors running yaml-language-server validate the file against the
#: schema committed next to the presets (``calc/presets/schema.json``).
SCHEMA_LINE = "# yaml-language-server: $schema=schema.json"
SCHEMA_FILE = "schema.json"
#: Ranks of the preview's trainable-parameter rows (``lora_alpha = 2r``, ``target_modules="all-linear"``).
PREVIEW_RANKS = (8, 16, 64)
#: Preview memory rows: the methods the home page compares with full fine-tuning.
PREVIEW_METHODS = ("lora", "qlora")
GIB = 1 << 30

_TOP_KEYS = ("id", "name", "family", "source_url", "stated_params", "stated_params_source", "stated_params_note")
_HF = re.compile(r"^https://huggingface\.co/([^/\s]+)/([^/\s]+)(?:/|$)")
_SIZE_SUFFIX = re.compile(r"[-_ ](?:\d+x)?\d+(?:\.\d+)?[BbMmKkTt]\b.*$")
_COUNT = re.compile(r"^\s*([0-9][0-9_,]*(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)\s*([KkMmBbTt]?)\s*$")
_SCALE = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


# -- a preset from a config.json --------------------------------------------------------------------------------
def config_subset(config: Mapping[str, Any]) -> dict[str, Any]:
    """The keys calc reads for the config's ``model_type`` (:func:`calc.families.family_keys`), in the order
    ``config.json`` lists them, ``model_type`` first; values unchanged. A multimodal config's ``text_config``
    must already be unwrapped (:func:`calc.cli.read_config_json` does it)."""
    if not isinstance(config, Mapping):
        raise CalcError("a config must be a JSON object")
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        shown = repr(model_type[:40]) if isinstance(model_type, str) else f"a {type(model_type).__name__}"
        raise CalcError(f"unsupported {shown} (supported: {', '.join(sorted(FAMILIES))})",
                        field="model_type")
    keys = family_keys(FAMILIES[model_type])
    out: dict[str, Any] = {"model_type": model_type}
    for key, value in config.items():
        if key in keys and key != "model_type":
            out[key] = copy.deepcopy(value)
    return out


def parse_count(text: str | float | int) -> float:
    """A parameter count as publishers write it: ``7.61e9``, ``7.61B``, ``494M``, ``1,234,567``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = _COUNT.match(str(text))
        if not match:
            raise CalcError(f"must be a number such as 7.61e9, 7.61B or 494M, got {str(text)[:40]!r}")
        value = float(match.group(1).replace(",", "").replace("_", "")) * _SCALE[match.group(2).lower()]
    if not math.isfinite(value) or value <= 0:
        raise CalcError(f"must be a positive number, got {text!r}")
    return value


def hf_repo(url: str) -> tuple[str, str] | None:
    """``(organisation, repository)`` of a ``https://huggingface.co/ORG/REPO/...`` URL, else None."""
    match = _HF.match(url)
    if not match or match.group(1) in ("datasets", "spaces", "docs", "api"):
        return None
    return match.group(1), match.group(2)


def default_family(name: str) -> str:
    """A display family from a model name: the name without its size (``Qwen2.5-Coder-7B`` → ``Qwen2.5-Coder``)."""
    stem = _SIZE_SUFFIX.sub("", name).strip(" -_")
    return (stem or name)[:40]


def preset_document(config: Mapping[str, Any], *, preset_id: str, source_url: str, stated_params: float,
                    name: str | None = None, family: str | None = None, stated_params_source: str | None = None,
                    stated_params_note: str | None = None,
                    overrides: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], frozenset[str]]:
    """The preset mapping for ``config`` (already unwrapped) and the set of config keys taken from
    ``overrides`` (values the config.json leaves to transformers' defaults). Fields left out are derived from
    a Hugging Face ``source_url``: the name is the repository's, the stated size's source its model card.
    Nothing is validated here beyond what the derivation needs: :func:`calc.presets.load_preset` is the check.
    """
    if not re.match(ID_PATTERN, preset_id or ""):
        raise CalcError(f"must be lower case letters, digits, '.', '_' or '-' (at most 64), got {preset_id!r}",
                        source="--id")
    repo = hf_repo(source_url)
    if name is None:
        if repo is None:
            raise CalcError("required unless --source-url is a https://huggingface.co/ORG/REPO/... URL",
                            source="--name")
        name = repo[1]
    if stated_params_source is None:
        if repo is None:
            raise CalcError("required unless --source-url is a https://huggingface.co/ORG/REPO/... URL "
                            "(then the model card is used)", source="--stated-params-source")
        stated_params_source = f"https://huggingface.co/{repo[0]}/{repo[1]}"
    subset = config_subset(config)
    set_keys: set[str] = set()
    if overrides:
        allowed = family_keys(FAMILIES[subset["model_type"]])
        for key, value in overrides.items():
            if key not in allowed or key == "model_type":
                raise CalcError(f"{key!r} is not a key calc reads for {subset['model_type']} "
                                f"({', '.join(sorted(allowed - {'model_type'}))})", source="--set")
            subset[key] = value
            set_keys.add(key)
    doc: dict[str, Any] = {
        "id": preset_id, "name": name, "family": family if family is not None else default_family(name),
        "source_url": source_url, "stated_params": stated_params, "stated_params_source": stated_params_source,
    }
    if stated_params_note is not None:
        doc["stated_params_note"] = stated_params_note
    doc["config"] = subset
    return doc, frozenset(set_keys)


def _scalar(value: Any) -> str:
    """One YAML value on one line (flow style for lists); floats that are whole numbers as integers. A string
    PyYAML would spread over lines is written as a JSON string, which YAML reads back the same."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e18:
        value = int(value)
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1 << 16).strip()
    text = text[:-4].rstrip() if text.endswith("\n...") else text
    return json.dumps(value, ensure_ascii=False) if "\n" in text else text


def preset_yaml(doc: Mapping[str, Any], set_keys: frozenset[str] = frozenset()) -> str:
    """The file text: the schema line, the metadata, and ``config:`` with one key per line. Keys in
    ``set_keys`` carry a comment saying they are not in the config.json."""
    lines = [SCHEMA_LINE]
    for key in _TOP_KEYS:
        if key in doc:
            lines.append(f"{key}: {_scalar(doc[key])}")
    lines.append("config:")
    for key, value in doc["config"].items():
        note = "  # absent from config.json; the transformers default (set with --set)" if key in set_keys else ""
        lines.append(f"  {key}: {_scalar(value)}{note}")
    return "\n".join(lines) + "\n"


# -- the JSON Schema of preset files ----------------------------------------------------------------------------
def _key_schema(key: str) -> dict[str, Any]:
    """What :func:`calc.architecture.resolve_config` accepts for one canonical config key."""
    if key in INT_KEYS:
        limit = MAX_LAYERS if key in ("num_hidden_layers", "first_k_dense_replace") else (
            MAX_EXPERTS if key in EXPERT_COUNT_KEYS else MAX_DIM * 4 if key == "max_position_embeddings" else MAX_DIM)
        schema: dict[str, Any] = {"type": ["integer", "null"] if key in NULLABLE else "integer",
                                  "minimum": 0 if key in ZERO_OK else 1, "maximum": limit}
    elif key in BOOL_KEYS:
        schema = {"type": ["boolean", "null"] if key in NULLABLE else "boolean"}
    elif key in LIST_KEYS:
        schema = {"type": "array", "items": {"type": "integer"}}
    else:  # pragma: no cover - every key a family reads has a type (tests/test_preset_tools.py)
        raise CalcError(f"no type for config key {key!r}")
    return schema


def preset_schema() -> dict[str, Any]:
    """JSON Schema of a preset file: :meth:`calc.presets.Preset.model_json_schema` plus what its validators
    check that a schema can say: http(s) URLs, one-line names, and for ``config`` the keys calc reads for each
    ``model_type`` with their types and limits. Cross-field rules (KV heads dividing heads …) stay in calc."""
    from calc.presets import _URL, Preset

    schema = Preset.model_json_schema()
    props = schema["properties"]
    url = _URL.pattern.replace("https?", "[Hh][Tt][Tt][Pp][Ss]?")  # the validator's regex is case-insensitive
    for key in ("source_url", "stated_params_source"):
        props[key]["pattern"] = url
        props[key]["format"] = "uri"
    for key in ("name", "family"):
        props[key]["pattern"] = r"^[^\s](?:[^\r\n\t]*[^\s])?$"
    defs: dict[str, Any] = {}
    branches = []
    for model_type in sorted(FAMILIES):
        family = FAMILIES[model_type]
        properties: dict[str, Any] = {"model_type": {"const": model_type}}
        for key in sorted(family_keys(family) - {"model_type"}):
            canonical = family.aliases.get(key, key)
            ref = f"config-{canonical}"
            defs.setdefault(ref, _key_schema(canonical))
            properties[key] = {"$ref": f"#/$defs/{ref}"}
        branches.append({"if": {"properties": {"model_type": {"const": model_type}}, "required": ["model_type"]},
                         "then": {"properties": properties, "additionalProperties": False}})
    props["config"].update({
        "required": ["model_type"],
        "properties": {"model_type": {"enum": sorted(FAMILIES), "description": "Hugging Face model_type"}},
        "allOf": branches,
    })
    props["config"].pop("additionalProperties", None)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$comment": "Generated from calc.presets.Preset by `python -m calc preset schema`; do not edit by hand.",
            **schema, "$defs": dict(sorted(defs.items()))}


def schema_text() -> str:
    """:func:`preset_schema` as the committed file's text."""
    return json.dumps(preset_schema(), indent=2, ensure_ascii=False) + "\n"


# -- the preview ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankRow:
    """LoRA at one rank on every linear layer (``lora_alpha = 2r``): what PEFT trains."""

    r: int
    lora_alpha: float
    trainable_params: int
    trainable_percent: float   # of PEFT's all_param (base + adapter), as print_trainable_parameters shows


@dataclass(frozen=True)
class MemoryRow:
    """One method under the site's default conditions (:data:`calc.pages.common.DEFAULT_CONDITIONS`)."""

    method: str
    r: int
    lora_alpha: float
    peak_bytes: int            # modelled torch.cuda.max_memory_allocated()
    required_bytes: int        # peak + the CUDA context: what a GPU must have free

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / GIB

    @property
    def required_gib(self) -> float:
        return self.required_bytes / GIB


@dataclass(frozen=True)
class Preview:
    """The rows the site shows for one preset, for a contributor to compare with the model card."""

    model_type: str
    total_params: int
    stated_params: float | None
    ranks: tuple[RankRow, ...]
    memory: tuple[MemoryRow, ...]
    conditions: Mapping[str, Any]

    @property
    def stated_deviation(self) -> float | None:
        """``total / stated - 1`` (None without a stated size)."""
        return None if not self.stated_params else self.total_params / self.stated_params - 1


def preview(arch: Architecture, stated_params: float | None = None,
            ranks: Sequence[int] = PREVIEW_RANKS) -> Preview:
    """Total parameters, LoRA trainable parameters at each rank (all-linear, α = 2r), and LoRA/QLoRA memory at
    the site's default rank and conditions (:func:`calc.pages.common.method_setup`, :func:`calc.pages.common.method_memory`)."""
    from calc.pages import common
    from calc.lora import count_lora

    rank_rows = []
    for r in ranks:
        spec = common.lora_spec(r)
        count = count_lora(arch, spec)
        rank_rows.append(RankRow(r, spec.lora_alpha, count.trainable_params, count.trainable_percent))
    spec = common.lora_spec()
    memory = []
    for method in PREVIEW_METHODS:
        m = common.method_memory(arch, common.method_setup(method, spec))
        memory.append(MemoryRow(method, spec.r, spec.lora_alpha, m.peak_bytes, m.required_bytes))
    return Preview(arch.model_type, arch.total_params, stated_params, tuple(rank_rows), tuple(memory),
                   dict(common.DEFAULT_CONDITIONS))


def preview_dict(p: Preview) -> dict[str, Any]:
    """The preview as JSON-ready data (``preset check --json``)."""
    return {
        "model_type": p.model_type, "total_params": p.total_params, "stated_params": p.stated_params,
        "stated_deviation": p.stated_deviation,
        "lora": [{"r": row.r, "lora_alpha": row.lora_alpha, "target_modules": "all-linear",
                  "trainable_params": row.trainable_params, "trainable_percent": row.trainable_percent}
                 for row in p.ranks],
        "memory": [{"method": m.method, "r": m.r, "lora_alpha": m.lora_alpha, "peak_bytes": m.peak_bytes,
                    "required_bytes": m.required_bytes, "peak_gib": m.peak_gib, "required_gib": m.required_gib}
                   for m in p.memory],
        "conditions": dict(p.conditions),
    }
