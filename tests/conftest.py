"""Shared fixtures: the built site (one strict build per test session)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from tests.environment import BROWSER_TESTS, browser_tests_not_run, chromium_missing, chromium_missing_message

# Property tests draw fresh random examples on every local run (that is how a subnormal absmax was found),
# but CI replays one fixed sequence, so a merge is never refused by a draw no one has seen locally. A
# failure anywhere prints the @reproduce_failure blob to pin it as an @example.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent
BUILD_ENV = {"NO_MKDOCS_2_WARNING": "1", "SOURCE_DATE_EPOCH": "1767225600"}


def build_site(dest: Path, config: Path = ROOT / "mkdocs.yml") -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` into ``dest``; returns the finished process (never raises)."""
    env = {**os.environ, **BUILD_ENV}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(dest)],
                          cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("site")
    proc = build_site(dest)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return dest


# -- what the run cannot do here, said first and last -------------------------------------------------------------
def pytest_report_header(config) -> list[str]:
    return [f"NOTE: browser tests will not run: {chromium_missing_message()}"] if chromium_missing() else []


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not chromium_missing():
        return
    skipped = {r.nodeid for r in terminalreporter.stats.get("skipped", [])
               if getattr(r, "nodeid", "").startswith(BROWSER_TESTS)}
    if skipped:
        config.stash[_NOT_RUN] = browser_tests_not_run(len(skipped))


def pytest_unconfigure(config) -> None:
    # after pytest's own closing line, so that it is the last thing a reader sees
    line = config.stash.get(_NOT_RUN, None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if line and reporter is not None:
        reporter.write_line(line, yellow=True, bold=True)


_NOT_RUN = pytest.StashKey[str]()
