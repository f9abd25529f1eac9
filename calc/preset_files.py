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
from calc.textfile import read_utf8

PRESET_DIR = Path(__file__).parent / "presets"
ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MAX_FILE_BYTES = 64 * 1024


MAX_DEPTH = 32  # nesting levels; PyYAML's composer recurses, so a deeper file would raise RecursionError


class NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors/aliases (they buy nothing in a preset and enable alias bombs),
    without duplicate keys (PyYAML keeps the last silently, so a reviewer would read the other value), and
    with nesting at most :data:`MAX_DEPTH` deep."""

    depth = 0
    mark = None  # start of the node being constructed: a constructor's ValueError is reported at its line

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise CalcError(f"line {event.start_mark.line + 1}: YAML aliases are not allowed in presets")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise CalcError(f"line {line}: nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node, deep=False):  # type: ignore[override]
        self.mark = node.start_mark
        return super().construct_object(node, deep)

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise CalcError(f"line {key_node.start_mark.line + 1}: YAML merge keys (<<) are not allowed")
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: PyYAML's own check reports it
                    continue
                if duplicate:
                    raise CalcError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
                seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: Path, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """Parse a small, alias-free, UTF-8 YAML file; :class:`CalcError` names the file on any failure."""
    text = read_utf8(path, max_bytes, f"files like it are at most {max_bytes}")
    loader = None
    try:
        loader = NoAliasLoader(text)  # the reader rejects control characters here already
        return loader.get_single_data()
    except CalcError as err:
        raise err.located(str(path)) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else (
            text.count("\n", 0, err.position) + 1 if isinstance(err, yaml.reader.ReaderError) else None)
        where = f"line {line}: " if line else ""
        reason = getattr(err, "problem", None) or str(err).splitlines()[0]  # one line (ReaderError has two)
        raise CalcError(f"{where}invalid YAML ({reason})", source=str(path)) from None
    except Exception as err:  # noqa: BLE001 - a constructor's own failure ("2001-13-45", a 5,000-digit int)
        where = f"line {loader.mark.line + 1}: " if loader is not None and loader.mark else ""
        reason = str(err).split(";")[0].splitlines()[0] if str(err) else type(err).__name__
        raise CalcError(f"{where}invalid value ({reason})", source=str(path)) from None
    finally:
        if loader is not None:
            loader.dispose()


def id_key(preset_id: str) -> str:
    """The form in which two preset ids are compared for duplicates: ``_`` and ``-`` read the same to people
    and are easy to mistype. (Upper case cannot occur: :data:`ID_PATTERN` allows lower case only, and an id
    equals its file name, so two files in one directory never share an id exactly.)"""
    return preset_id.replace("_", "-")


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
