"""Plain-text formatting for the CLI (no arithmetic beyond unit scaling for display)."""

from __future__ import annotations

from typing import Sequence


def human_count(n: int) -> str:
    """``8030261248`` → ``8.03B`` (decimal prefixes: parameter counts are quoted that way)."""
    for factor, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if abs(n) >= factor * 0.9995:  # 999,885,952 reads "1B", not "1000M"
            value = n / factor
            return f"{value:.3g}{suffix}" if abs(value) < 99.95 else f"{value:.0f}{suffix}"
    return str(n)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
