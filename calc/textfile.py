"""Reading the small text files calc accepts (presets, config.json), with errors that name the file.

Kept apart from :mod:`calc.preset_files` so reading a config.json does not import a YAML parser
(``python -m calc`` start-up time, benchmarks/bench_cli.py).
"""

from __future__ import annotations

from pathlib import Path

from calc.errors import CalcError


def read_utf8(path: Path, max_bytes: int, too_big: str) -> str:
    """A small UTF-8 text file's content; :class:`CalcError` names the file when it cannot be read, is over
    ``max_bytes`` (``too_big`` says why that is wrong) or is not UTF-8."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CalcError(f"cannot read ({err.strerror})", source=str(path)) from None
    if len(raw) > max_bytes:
        raise CalcError(f"is {len(raw)} bytes; {too_big}", source=str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CalcError(f"is not UTF-8 (byte {err.start})", source=str(path)) from None
