"""The calculator page: what it downloads and how soon it shows results (targets: ≤ 1.5 MB, ≤ 1.5 s).

1. Builds the site (``mkdocs build --strict``, as CI does) into a temp dir, or uses ``--site DIR``.
2. Serves it on 127.0.0.1 with a threading ``http.server`` (no compression, like the browser tests), under
   site_url's base path.
3. For each viewport (desktop 1280×900 and a 390×844 phone) opens the calculator in a fresh Chromium context
   (empty cache) ``--runs`` times and records:
   * every response the page and its worker received, uncompressed bytes (the body as served), itemised,
     with the total and its ratio to the 1.5 MB target (1 MB = 10^6 bytes);
   * time to interactive: from the start of navigation to the first results on screen (``data-state=ok``),
     taken from the page's own clock (``performance.now()`` when calculator.js rendered them) and, as a
     cross-check, the wall time around ``page.goto`` + the wait; its ratio to the 1.5 s target;
   * the calculator's start-up steps (``#lh-calc[data-timings]``: worker created and running, MicroPython
     loaded, assets downloaded, calc imported, first result, the first computation's own time);
   * then one warm visit (same context, HTTP cache filled).

A benchmark, not a test: it never fails by timing alone (machines differ); read the ratios. Debian's
Chromium (``/usr/bin/chromium``), headless; every request outside 127.0.0.1 is aborted and reported.

    python benchmarks/bench_calculator.py [--runs 3] [--site DIR]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
TARGET_BYTES = 1_500_000
TARGET_S = 1.5
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
VIEWPORTS = {"desktop 1280x900": {"viewport": {"width": 1280, "height": 900}},
             "phone 390x844": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}}
READY = "() => { const r = document.getElementById('lh-calc-results'); return r && r.dataset.state === 'ok'; }"


def build(dest: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "SOURCE_DATE_EPOCH": "1767225600"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(dest)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"mkdocs build failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


def serve(site: Path) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def visit(context, url: str) -> dict:
    page = context.new_page()
    responses: list[tuple[str, int, str]] = []
    errors: list[str] = []

    def on_response(response):
        try:
            size = len(response.body())
        except Exception:  # noqa: BLE001 - a redirect or an aborted request has no body
            size = 0
        responses.append((response.url, size, "cache" if response.from_service_worker else str(response.status)))

    page.on("response", on_response)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_function(READY, timeout=60_000, polling=10)
    wall = time.perf_counter() - start
    timings = json.loads(page.get_attribute("#lh-calc", "data-timings") or "{}")
    timings["script_loaded"] = page.evaluate("""() => {
      const e = performance.getEntriesByType('resource').find(r => r.name.includes('/calculator.js'));
      return e ? Math.round(e.responseEnd) : null; }""")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(200)
    page.close()
    blocked = list(getattr(context, "lh_blocked", []))
    return {"wall_s": wall, "tti_s": timings.get("first_result", wall * 1000) / 1000, "timings": timings,
            "responses": responses, "blocked": blocked, "errors": errors}


def sealed(browser, **options):
    """A fresh context whose requests to any host but 127.0.0.1 are aborted (and listed)."""
    context = browser.new_context(service_workers="block", **options)
    context.lh_blocked = []

    def route(route, request):
        if urlsplit(request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            context.lh_blocked.append(request.url)
            route.abort()

    context.route("**/*", route)
    return context


def itemise(responses: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    out: dict[str, tuple[int, str]] = {}
    for url, size, status in responses:
        path = urlsplit(url).path
        size0, _ = out.get(path, (0, status))
        out[path] = (size0 + size, status)
    return sorted(((p, s, st) for p, (s, st) in out.items()), key=lambda x: -x[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--site", type=Path, help="an already built site (default: build one)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        site = args.site
        if site is None:
            site = Path(tmp) / "site"
            t = time.perf_counter()
            build(site)
            print(f"built the site in {time.perf_counter() - t:.1f} s")
        server, base = serve(site)
        url = base + "calculator/"
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                warm_up = sealed(browser)
                visit(warm_up, url)           # the server's and the browser's first start, not measured
                warm_up.close()
                for name, options in VIEWPORTS.items():
                    cold, warm = [], []
                    for _ in range(args.runs):
                        context = sealed(browser, **options)
                        cold.append(visit(context, url))
                        warm.append(visit(context, url))
                        context.close()
                    report(name, cold, warm)
                browser.close()
        finally:
            server.shutdown()


def report(name: str, cold: list[dict], warm: list[dict]) -> None:
    print(f"\n== {name}: {len(cold)} cold visits (empty cache), each followed by a warm one")
    first = cold[0]
    items = itemise(first["responses"])
    total = sum(s for _, s, _ in items)
    print(f"transfer of one cold visit (uncompressed bytes of every response, page and worker):")
    for path, size, status in items:
        print(f"  {size:>10,}  {path}" + ("" if status == "200" else f"  [{status}]"))
    calc = sum(s for p, s, _ in items if "/assets/calculator/" in p)
    print(f"  {total:>10,}  total = {total / 1e6:.3f} MB, {total / TARGET_BYTES:.2f} of the {TARGET_BYTES / 1e6:.1f} MB "
          f"target ({calc:,} bytes of it are the calculator's own files)")
    tti = [v["tti_s"] for v in cold]
    wall = [v["wall_s"] for v in cold]
    print(f"time to interactive, cold: median {statistics.median(tti):.3f} s (runs: "
          f"{', '.join(f'{x:.3f}' for x in tti)}) = {statistics.median(tti) / TARGET_S:.2f} of the {TARGET_S} s "
          f"target; wall clock around goto+wait: median {statistics.median(wall):.3f} s")
    steps = [v["timings"] for v in cold if v["timings"]]
    if steps:
        keys = ["script_loaded", "worker_created", "worker_running", "micropython_loaded", "downloaded", "calc_imported", "ready",
                "first_result", "compute_ms"]
        print("  start-up steps (ms since navigation, median): " + ", ".join(
            f"{k} {statistics.median([s[k] for s in steps if k in s]):.0f}" for k in keys if any(k in s for s in steps)))
    wtti = [v["tti_s"] for v in warm]
    print(f"time to interactive, warm (HTTP cache): median {statistics.median(wtti):.3f} s "
          f"= {statistics.median(wtti) / TARGET_S:.2f} of the target")
    problems = [f"blocked {u}" for v in cold + warm for u in v["blocked"]] + \
               [f"error {e}" for v in cold + warm for e in v["errors"]]
    if problems:
        print("PROBLEMS:\n  " + "\n  ".join(problems[:20]))


if __name__ == "__main__":
    main()
