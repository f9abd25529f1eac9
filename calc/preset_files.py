"""Reading preset files without pydantic, for the CLI's start-up time.

The full schema check (:func:`calc.presets.load_preset`) runs in the tests and in every site build; the
CLI only needs a preset's name and config, and the config still goes through
:meth:`calc.architecture.Architecture.from_hf_config`'s own checks.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from calc.errors import CalcError

PRESET_DIR = Path(__file__).parent / "presets"
ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MAX_FILE_BYTES = 64 * 1024


class NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors/aliases: they buy nothing in a preset and enable alias bombs."""

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise CalcError(f"line {event.start_mark.line + 1}: YAML aliases are not allowed in presets")
        return super().compose_node(parent, index)


def read_yaml(path: Path, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """Parse a small, alias-free, UTF-8 YAML file; :class:`CalcError` names the file on any failure."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CalcError(f"cannot read ({err.strerror})", source=str(path)) from None
    if len(raw) > max_bytes:
        raise CalcError(f"is {len(raw)} bytes; files like it are at most {max_bytes}", source=str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CalcError(f"is not UTF-8 (byte {err.start})", source=str(path)) from None
    try:
        return yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except CalcError as err:
        raise err.located(str(path)) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise CalcError(f"{where}invalid YAML ({getattr(err, 'problem', None) or err})", source=str(path)) from None


def preset_path(preset_id: str, directory: Path | str = PRESET_DIR) -> Path:
    """The file of a preset id; an unknown id raises :class:`CalcError` suggesting the closest ids."""
    directory = Path(directory)
    if re.match(ID_PATTERN, preset_id) and (directory / f"{preset_id}.yaml").is_file():
        return directory / f"{preset_id}.yaml"
    ids = sorted(p.stem for p in directory.glob("*.yaml"))
    close = difflib.get_close_matches(preset_id, ids, n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else " (see: python -m calc presets)"
    raise CalcError(f"unknown preset {preset_id!r}{hint}")


def read_preset_quick(preset_id: str, directory: Path | str = PRESET_DIR) -> tuple[str, dict[str, Any], str]:
    """(display name, config mapping, file path) of a preset, without the pydantic schema check."""
    path = preset_path(preset_id, directory)
    data = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise CalcError("must be a mapping with a 'config' mapping", source=str(path), field="config")
    return str(data.get("name", preset_id)), data["config"], str(path)
