"""Verify tests compare calc with the real libraries (torch CPU, transformers, peft, bitsandbytes).

They need the ``verify`` extra (which pins ``torch==2.13.0``). In CI (``CI`` set) a missing library is a failure,
not a skip: a verify suite that silently skips has verified nothing.
"""

from __future__ import annotations

import importlib
import os

import pytest


def require(module: str):
    """Import ``module``; skip the calling test module locally if it is missing, fail in CI.

    Called at module level (``torch = require("torch")``), so the skip is a module-level skip: the file is
    collected as skipped, never as a collection error (``tests/test_collection_guard.py`` holds that).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:  # pragma: no cover - depends on the environment
        if os.environ.get("CI"):
            pytest.fail(f"verify dependency {module!r} is missing in CI: {err}", pytrace=False)
        pytest.skip(f"{module} not installed (pip install -e '.[dev,verify]')", allow_module_level=True)
