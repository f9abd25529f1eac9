"""What the suite needs from outside pip, and how the suite says it is missing.

Everything the tests need from the package index is in the ``dev`` and ``verify`` extras. The one thing pip cannot
install is the browser: the browser tests drive Debian's Chromium (never ``playwright install``). Without it they
are skipped locally - and the run says so before the first test and again in the final summary - and fail in CI
(``CI`` set), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_INSTALL = "apt-get install -y chromium"
BROWSER_TESTS = "tests/browser/"


def chromium_missing() -> bool:
    return not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK))


def chromium_missing_message() -> str:
    return f"{CHROMIUM} is missing: {CHROMIUM_INSTALL} (never `playwright install`)"


def browser_tests_not_run(count: int) -> str:
    return f"{count} browser tests not run: Chromium missing — `{CHROMIUM_INSTALL}`"


def require_module(name: str, install: str) -> ModuleType:
    """Import a test dependency at module level: skip the module locally when it is missing, fail in CI."""
    import pytest

    try:
        return importlib.import_module(name)
    except ImportError as err:
        if os.environ.get("CI"):
            pytest.fail(f"{name!r} is missing in CI: {err}", pytrace=False)
        pytest.skip(f"{name} not installed ({install})", allow_module_level=True)
