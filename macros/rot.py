"""Rule-of-thumb tables: linkable anchors, stated conditions, and CSV/JSON copies beside the pages.

A page module registers a provider with :func:`rule_of_thumb`; the provider returns a :class:`RotTable`
built from ``calc`` results (raw numbers: ints, floats, strings). :func:`rot_table` renders it with a
heading carrying the permanent id (``{ #rot-… }``), the conditions, the table, and links to
``data/<id>.csv`` and ``data/<id>.json``. Those files are written by :func:`write_exports` from
``define_env``, before MkDocs collects the docs, so they ship with the site (``docs/data/`` is
git-ignored: the files are always regenerated from calc).
"""

from __future__ import annotations

import csv
import functools
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from macros.render import md_table, number, text

EXPORT_DIR = "data"


@dataclass(frozen=True)
class Column:
    """A column: header, how to show a value (``int``, ``text``, ``fixed:N``, ``pct:N``, ``code``), unit."""

    header: str
    fmt: str = "text"
    unit: str | None = None

    @property
    def title(self) -> str:
        return f"{self.header} ({self.unit})" if self.unit else self.header


@dataclass(frozen=True)
class RotTable:
    id: str
    title: str
    conditions: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[object, ...], ...]
    source: str = ""   # the calc function(s) the numbers come from, shown under the table


_REGISTRY: dict[str, Callable[[], RotTable]] = {}


def rule_of_thumb(table_id: str) -> Callable[[Callable[[], RotTable]], Callable[[], RotTable]]:
    """Register a provider under a permanent id (must start with ``rot-``)."""
    if not table_id.startswith("rot-"):
        raise ValueError(f"rule-of-thumb ids are namespaced 'rot-…', got {table_id!r}")

    def register(fn: Callable[[], RotTable]) -> Callable[[], RotTable]:
        _REGISTRY[table_id] = functools.lru_cache(maxsize=None)(fn)
        return fn

    return register


def registered() -> dict[str, Callable[[], RotTable]]:
    return dict(_REGISTRY)


def table_for(table_id: str) -> RotTable:
    if table_id not in _REGISTRY:
        raise KeyError(f"no rule-of-thumb table {table_id!r}; registered: {', '.join(sorted(_REGISTRY))}")
    table = _REGISTRY[table_id]()
    if table.id != table_id:
        raise ValueError(f"provider for {table_id!r} returned a table with id {table.id!r}")
    return table


def _cell(value: object, fmt: str) -> str:
    if value is None:
        return "—"
    if fmt == "int" or fmt.startswith(("fixed:", "pct:")):
        return number(value, fmt)
    if fmt == "code":
        return f"<code>{text(value)}</code>"
    if fmt == "raw":
        return str(value)
    return text(value)


def rot_table(table_id: str, level: int = 3) -> str:
    """Heading with the permanent anchor, conditions, the table, and its CSV/JSON links."""
    t = table_for(table_id)
    heading = "#" * level + f" {text(t.title)} {{ #{t.id} }}"
    table = md_table([c.title for c in t.columns], [[_cell(v, c.fmt) for v, c in zip(row, t.columns)]
                                                    for row in t.rows],
                     align="".join("l" if c.fmt in ("text", "code", "raw") else "r" for c in t.columns))
    links = f"Download: [CSV]({EXPORT_DIR}/{t.id}.csv) · [JSON]({EXPORT_DIR}/{t.id}.json)"
    source = f" · computed by `{t.source}`" if t.source else ""
    return f"{heading}\n\n*Conditions:* {t.conditions}\n\n{table}\n\n{links}{source}\n"


def to_csv(t: RotTable) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c.title for c in t.columns])
    writer.writerows(t.rows)
    return buf.getvalue()


def to_json(t: RotTable) -> str:
    return json.dumps({
        "id": t.id, "title": t.title, "conditions": t.conditions, "source": t.source,
        "columns": [{"name": c.header, "unit": c.unit} for c in t.columns],
        "rows": [dict(zip([c.header for c in t.columns], row)) for row in t.rows],
    }, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def write_exports(docs_dir: str | Path) -> list[Path]:
    """Write ``data/<id>.csv`` and ``.json`` for every registered table; unchanged files are not touched."""
    out_dir = Path(docs_dir) / EXPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for table_id in sorted(_REGISTRY):
        t = table_for(table_id)
        for suffix, content in (("csv", to_csv(t)), ("json", to_json(t))):
            path = out_dir / f"{table_id}.{suffix}"
            if not path.is_file() or path.read_text(encoding="utf-8") != content:
                path.write_text(content, encoding="utf-8")
            written.append(path)
    return written


MACROS = ("rot_table",)


def _columns(*specs: Sequence[str]) -> tuple[Column, ...]:
    """Shorthand: ``_columns(("Rank",), ("Trainable", "int"), ("Adapter", "fixed:1", "MiB"))``."""
    return tuple(Column(*s) for s in specs)
