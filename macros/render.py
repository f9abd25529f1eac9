"""Markdown rendering helpers: escaping and table layout, no numbers computed here."""

from __future__ import annotations

import html
from typing import Any, Iterable, Sequence

from calc.fmt import human_count

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


def number(value: Any, spec: str | None = None, *, g_digits: int = 2) -> str:
    """Digits for a value calc computed (formatting only, no arithmetic).

    ``int`` → ``1,234``; ``bool`` → yes/no; ``None`` → ``—``; a tuple (a tensor shape) → ``a × b``; a string is
    escaped, or shown as inline code with ``spec="code"``. Floats (and ints given a spec) by ``spec``:
    ``fixed:N`` (the default, N = 2), ``int``, ``sign:N`` (``+1.50``), ``pct:N`` (``12.50 %``), ``x:N``
    (``2.50×``), ``g:N`` (shortest form; ``g`` alone uses ``g_digits``), ``sci:N`` (``8.45e-03``), ``human``
    (``8.03 B``, :func:`calc.fmt.human_count`).
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, str):
        return code(value) if spec == "code" else text(value)
    if isinstance(value, tuple):  # a tensor shape: plain digits, as PyTorch prints it
        return " × ".join(str(v) for v in value)
    if spec is None:
        if isinstance(value, int):
            return f"{value:,}"
        spec = "fixed:2"
    kind, _, digits = spec.partition(":")
    n = int(digits) if digits else 2
    formats = {
        "int": lambda: f"{int(value):,}",
        "fixed": lambda: f"{value:,.{n}f}",
        "sign": lambda: f"{value:+,.{n}f}",
        "pct": lambda: f"{value:.{n}f} %",
        "x": lambda: f"{value:,.{n}f}×",
        "g": lambda: f"{value:.{int(digits) if digits else g_digits}g}",
        "sci": lambda: f"{value:.{n}e}",
        "human": lambda: human_count(int(value)),
    }
    if kind not in formats:
        raise ValueError(f"unknown format {spec!r}")
    return formats[kind]()
