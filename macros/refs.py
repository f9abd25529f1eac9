"""Citations: ``cite("hu2021")`` in a page links to the entry on the references page."""

from __future__ import annotations

from calc.references import load_references
from macros.render import text

MACROS = ("cite", "reference_list")


def cite(*keys: str) -> str:
    """``[Hu et al. 2021]``-style links to references.md#ref-<key>; an unknown key fails the build."""
    refs = load_references()
    parts = []
    for key in keys:
        if key not in refs:
            raise KeyError(f"unknown reference {key!r}; add it to calc/data/references.yaml")
        parts.append(f"[{text(refs[key].label)}](references.md#ref-{key})")
    return "[" + "; ".join(parts) + "]"


def reference_list() -> str:
    """The bibliography, one anchored entry per reference, sorted by key."""
    out = []
    for key, ref in sorted(load_references().items()):
        out.append(f'<p id="ref-{key}" markdown="1">**{text(ref.title)}**. {text(ref.authors)}. '
                   f'{text(ref.venue)}, {ref.year}. <{ref.url}></p>\n')
    return "\n".join(out)
