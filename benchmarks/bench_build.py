"""Wall time of ``mkdocs build --strict`` (target: ≤ 20 s), the time spent in macros, and page weight.

1. Two ``mkdocs build --strict`` runs in a subprocess, as CI runs them (``NO_MKDOCS_2_WARNING=1``,
   ``SOURCE_DATE_EPOCH`` set), each into a fresh temp dir. The first may also write the offline Vega
   bundle (``macros.assets``). Prints each wall time and its ratio to the target, and whether the two
   outputs are byte-identical (the build is meant to be deterministic).
2. One in-process build (``mkdocs.commands.build.build``) with every registered macro and ``define_env``
   wrapped in a timer: prints the time spent in each macro (calls, total, slowest call) and the macros'
   share of the build. Macro time includes the ``calc`` work and chart rendering (vl-convert) they do.
3. The weight of every built page: HTML bytes (raw and gzip -9) and the JavaScript it loads (its
   ``<script src>`` files, plus the Vega bundle that charts.js fetches on pages with a chart).

A benchmark, not a test: it never fails by timing alone (machines differ); read the ratio. It exits
non-zero only when a build fails.

    python benchmarks/bench_build.py [--runs 2] [--no-inprocess] [--no-weights]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import hashlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

TARGET_S = 20.0
ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "mkdocs.yml"
BUILD_ENV = {"NO_MKDOCS_2_WARNING": "1", "SOURCE_DATE_EPOCH": "1767225600"}
BUNDLE = "vega-bundle.js"


def subprocess_build(dest: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, **BUILD_ENV}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(CONFIG), "-d", str(dest)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, proc


def tree_digest(site: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in site.rglob("*") if p.is_file()):
        h.update(path.relative_to(site).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


# ----------------------------------------------------------------------------------------- macro timing

class MacroTimer:
    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = defaultdict(list)

    def wrap(self, name: str, func):
        if getattr(func, "__bench_wrapped__", False) or not callable(func):
            return func

        @functools.wraps(func)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.calls[name].append(time.perf_counter() - start)

        timed.__bench_wrapped__ = True
        return timed


def inprocess_build(dest: Path) -> tuple[float, MacroTimer]:
    """A strict build in this process with every macro and define_env timed."""
    os.environ.update(BUILD_ENV)
    os.chdir(ROOT)  # pymdownx.snippets resolves docs/includes/… from the working directory
    sys.path.insert(0, str(ROOT))
    import macros  # the plugin imports the local package through sys.modules, so patching it here holds
    from mkdocs.commands import build as mkdocs_build
    from mkdocs.config import load_config
    from mkdocs_macros.plugin import MacrosPlugin

    timer = MacroTimer()
    original_define_env = macros.define_env
    original_macro = MacrosPlugin.macro

    def timed_macro(self, v, name=""):
        return original_macro(self, timer.wrap(name or getattr(v, "__name__", "?"), v), name)

    macros.define_env = timer.wrap("(define_env)", original_define_env)
    MacrosPlugin.macro = timed_macro
    logging.getLogger("mkdocs").setLevel(logging.WARNING)
    try:
        config = load_config(config_file=str(CONFIG), site_dir=str(dest), strict=True)
        start = time.perf_counter()
        config.plugins.on_startup(command="build", dirty=False)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                mkdocs_build.build(config)
        finally:
            config.plugins.on_shutdown()
        elapsed = time.perf_counter() - start
    finally:
        macros.define_env = original_define_env
        MacrosPlugin.macro = original_macro
    return elapsed, timer


# ------------------------------------------------------------------------------------------ page weight

def page_weights(site: Path) -> list[tuple[str, int, int, int, int, int]]:
    """(page, html bytes, html gzip, js bytes, js gzip, charts) for every built HTML page."""
    from bs4 import BeautifulSoup

    def gz(data: bytes) -> int:
        return len(gzip.compress(data, 9, mtime=0))

    cache: dict[Path, tuple[int, int]] = {}

    def weigh(path: Path) -> tuple[int, int]:
        if path not in cache:
            data = path.read_bytes()
            cache[path] = (len(data), gz(data))
        return cache[path]

    rows = []
    for page in sorted(site.rglob("*.html")):
        html = page.read_bytes()
        soup = BeautifulSoup(html, "html.parser")
        scripts: set[Path] = set()
        for tag in soup.find_all("script", src=True):
            parts = urlsplit(tag["src"])
            if parts.netloc:
                continue
            target = (site / parts.path.lstrip("/")) if parts.path.startswith("/") else (page.parent / parts.path)
            if target.resolve().is_file():
                scripts.add(target.resolve())
        charts = len(soup.select("figure.lh-chart"))
        bundle = site / "assets" / "javascripts" / BUNDLE
        if charts and bundle.is_file():
            scripts.add(bundle.resolve())  # fetched by charts.js, not named in the HTML
        js = [weigh(p) for p in scripts]
        rows.append((page.relative_to(site).as_posix(), len(html), gz(html),
                     sum(r for r, _ in js), sum(g for _, g in js), charts))
    return rows


def kib(n: int) -> str:
    return f"{n / 1024:,.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="subprocess builds (default 2)")
    parser.add_argument("--no-inprocess", action="store_true", help="skip the timed in-process build")
    parser.add_argument("--no-weights", action="store_true", help="skip the page-weight table")
    args = parser.parse_args()

    bundle_before = (ROOT / "docs" / "assets" / "javascripts" / BUNDLE).is_file()
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        sites, times = [], []
        for run in range(1, args.runs + 1):
            dest = Path(tmp) / f"site{run}"
            elapsed, proc = subprocess_build(dest)
            if proc.returncode != 0:
                print(f"build {run}: FAILED (rc={proc.returncode}) after {elapsed:.2f} s\n{proc.stdout}\n{proc.stderr}")
                return 1
            note = " (wrote the Vega bundle)" if run == 1 and not bundle_before else ""
            print(f"mkdocs build --strict, run {run}: {elapsed:6.2f} s; target ≤ {TARGET_S:.0f} s; "
                  f"{elapsed / TARGET_S:.2f}x the target{note}")
            sites.append(dest)
            times.append(elapsed)
        if len(sites) > 1:
            digests = {tree_digest(s) for s in sites}
            print(f"outputs byte-identical across runs: {'yes' if len(digests) == 1 else 'NO'}")

        if not args.no_inprocess:
            elapsed, timer = inprocess_build(Path(tmp) / "inprocess")
            total_macro = sum(sum(v) for k, v in timer.calls.items())
            print(f"\nin-process build: {elapsed:.2f} s, of which {total_macro:.2f} s "
                  f"({100 * total_macro / elapsed if elapsed else 0:.0f}%) in define_env and macros")
            print(f"  {'macro':<34} {'calls':>5} {'total s':>8} {'max s':>7}")
            for name, calls in sorted(timer.calls.items(), key=lambda kv: -sum(kv[1])):
                print(f"  {name:<34} {len(calls):>5} {sum(calls):>8.3f} {max(calls):>7.3f}")
            if not timer.calls:
                print("  (no macro was called)")

        if not args.no_weights and sites:
            rows = page_weights(sites[-1])
            print(f"\npage weight (KiB; JS = the page's scripts, plus the {BUNDLE} that charts.js loads on chart pages)")
            print(f"  {'page':<30} {'charts':>6} {'HTML':>8} {'HTML gz':>8} {'JS':>8} {'JS gz':>8} {'total gz':>9}")
            for page, html, html_gz, js, js_gz, charts in rows:
                print(f"  {page:<30} {charts:>6} {kib(html):>8} {kib(html_gz):>8} {kib(js):>8} {kib(js_gz):>8} "
                      f"{kib(html_gz + js_gz):>9}")
            heaviest = max(rows, key=lambda r: r[1])
            print(f"  heaviest HTML: {heaviest[0]} ({kib(heaviest[1])} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
