"""Markdown rendering helpers: escaping and table layout, no numbers computed here."""

from __future__ import annotations

import html
from typing import Iterable, Sequence

_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()#+!|<>~"})


def text(value: object) -> str:
    """Text from data (preset names …) made inert for a Markdown table cell: HTML-escaped, then the
    Markdown punctuation escaped so a name can neither inject markup nor break the table."""
    return html.escape(str(value), quote=True).translate(_MD_SPECIAL)


def code(value: object) -> str:
    """Inline code from data: an HTML ``<code>`` element (Markdown code spans would show backslashes)."""
    return f"<code>{html.escape(str(value), quote=True)}</code>"


def link(label: object, url: str) -> str:
    """A Markdown link to an http(s) URL from data (preset source URLs are validated http(s))."""
    if not url.startswith(("https://", "http://")):
        return text(label)
    safe = html.escape(url, quote=True).replace("(", "%28").replace(")", "%29").replace(" ", "%20")
    return f"[{text(label)}]({safe})"


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None) -> str:
    """A pipe table; ``align`` is one letter per column (l/r/c), right-aligned numbers by default."""
    heads = list(headers)
    spec = align or "l" + "r" * (len(heads) - 1)
    marks = {"l": ":--", "r": "--:", "c": ":-:"}
    out = ["| " + " | ".join(heads) + " |", "| " + " | ".join(marks[a] for a in spec) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
