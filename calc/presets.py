"""Model presets: one YAML file per model in ``calc/presets/``, validated with pydantic.

A preset is a subset of the model's Hugging Face ``config.json`` (same keys, same values) under
``config:``, plus display metadata and where the numbers come from. Contributors copy values from the
model's config.json; the loader rejects unknown keys, wrong types and impossible shapes with one line
naming the file and the field.

This module reads files; the arithmetic lives in :mod:`calc.architecture` and :mod:`calc.lora`.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from calc.architecture import Architecture
from calc.errors import CalcError
from calc.families import FAMILIES, family_keys
from calc.preset_files import ID_PATTERN, PRESET_DIR, id_key, preset_path, read_yaml

_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


class Preset(BaseModel):
    """One model: display metadata, provenance, and the config.json subset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN, description="Equals the file name without .yaml")
    name: str = Field(min_length=1, max_length=80, description="Display name")
    family: str = Field(min_length=1, max_length=40, description="Display family, e.g. 'Llama 3.1'")
    source_url: str = Field(description="The config.json these values were copied from (http or https)")
    stated_params: float = Field(gt=0, lt=1e14, description="Parameter count the publisher states")
    stated_params_source: str = Field(description="Where the publisher states it (http or https)")
    stated_params_note: Optional[str] = Field(default=None, max_length=300)
    config: dict[str, Any] = Field(description="Subset of the Hugging Face config.json, same key names")

    @field_validator("source_url", "stated_params_source")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not _URL.match(value):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("name", "family")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n\t") or value != value.strip():
            raise ValueError("must be one line without surrounding spaces")
        return value

    @model_validator(mode="after")
    def _config_is_a_model(self) -> "Preset":
        model_type = self.config.get("model_type")
        if not isinstance(model_type, str) or model_type not in FAMILIES:  # a list/dict is unhashable
            raise ValueError(f"config.model_type: unsupported {model_type!r} (supported: {', '.join(sorted(FAMILIES))})")
        unknown = sorted(set(self.config) - family_keys(FAMILIES[model_type]))
        if unknown:
            raise ValueError(f"config.{unknown[0]}: not a key calc reads for {model_type}")
        try:
            Architecture.from_hf_config(self.config)
        except CalcError as err:
            raise ValueError(f"config.{err.field}: {err.message}") from None
        return self

    @property
    def architecture(self) -> Architecture:
        return _architecture(self.id, tuple(sorted((k, _freeze(v)) for k, v in self.config.items())))


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@functools.lru_cache(maxsize=None)
def _architecture(preset_id: str, items: tuple) -> Architecture:
    return Architecture.from_hf_config({k: list(v) if isinstance(v, tuple) else v for k, v in items})


def load_preset(path: Path | str) -> Preset:
    """Load and validate one preset file."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise CalcError("must be a YAML mapping", source=str(path))
    try:
        preset = Preset.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or None
        msg = first["msg"].removeprefix("Value error, ")
        if loc is None and ": " in msg and msg.split(": ", 1)[0].startswith("config."):
            loc, msg = msg.split(": ", 1)
        raise CalcError(msg, source=str(path), field=loc) from None
    if preset.id != path.stem:
        raise CalcError(f"id {preset.id!r} must equal the file name {path.stem!r}", source=str(path), field="id")
    return preset


def load_presets(directory: Path | str = PRESET_DIR) -> dict[str, Preset]:
    """All presets in ``directory`` by id, sorted by id. Raises on the first bad file."""
    directory = Path(directory)
    out: dict[str, Preset] = {}
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        preset = load_preset(path)
        other = seen.setdefault(id_key(preset.id), preset.id)
        if other != preset.id:
            raise CalcError(f"duplicate id {preset.id!r}: {other}.yaml has the same id ('_' and '-' read alike)",
                            source=str(path), field="id")
        out[preset.id] = preset
    return out


@functools.lru_cache(maxsize=None)
def _cached_presets(directory: str) -> dict[str, Preset]:
    return load_presets(directory)


def all_presets(directory: Path | str = PRESET_DIR) -> dict[str, Preset]:
    """:func:`load_presets`, cached per directory (the site build asks many times)."""
    return dict(_cached_presets(str(directory)))


def get_preset(preset_id: str, directory: Path | str = PRESET_DIR) -> Preset:
    """The validated preset with this id; an unknown id raises :class:`CalcError` suggesting the closest ids."""
    return load_preset(preset_path(preset_id, directory))
