"""The library releases calc's numbers are checked against (the ``verify`` extra's pins, and torch's CPU wheel).

Counting, targeting and adapter files follow PEFT's release; architectures, defaults and the quantization
skip list follow transformers'; 4-bit storage and codes follow bitsandbytes'; file layout follows
safetensors'. Pages name these releases through :func:`label`; ``tests/test_versions.py`` holds this table
equal to ``pyproject.toml`` and to the torch pin of ``.ci/run``, and the verify suite to what is installed.
"""

from __future__ import annotations

#: distribution name → (display name, version)
CHECKED_AGAINST: dict[str, tuple[str, str]] = {
    "peft": ("PEFT", "0.21.2"),
    "transformers": ("transformers", "5.23.0"),
    "bitsandbytes": ("bitsandbytes", "0.50.2"),
    "safetensors": ("safetensors", "0.8.0"),
    "torch": ("torch", "2.13.0"),
}


def version(name: str) -> str:
    """The checked release of distribution ``name`` (``"peft"`` → ``"0.21.2"``)."""
    if name not in CHECKED_AGAINST:
        raise KeyError(f"{name!r}: calc is checked against {', '.join(sorted(CHECKED_AGAINST))}")
    return CHECKED_AGAINST[name][1]


def label(name: str) -> str:
    """Display name and release, as pages write it (``"peft"`` → ``"PEFT 0.21.2"``)."""
    return f"{CHECKED_AGAINST[name][0]} {version(name)}" if name in CHECKED_AGAINST else version(name)
