"""Fixtures for the browser tests: the built site on 127.0.0.1 and a sealed Chromium.

* ``site_server`` serves the session's strict build (``built_site`` from tests/conftest.py) with a threading
  ``http.server`` on a free port, under ``site_url``'s base path as it would be deployed.
* ``browser`` is Debian's Chromium (``/usr/bin/chromium``; never ``playwright install``), headless.
* ``open_page`` makes a fresh context + page whose every request to a host other than 127.0.0.1/localhost
  is aborted and recorded, and which records console errors/warnings, page errors, failed requests and
  HTTP errors, so each test can assert that nothing left the machine and nothing went wrong.

Without Chromium the tests are skipped locally and fail in CI (``CI`` set), where .ci/run installs it.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from bs4 import BeautifulSoup

from tests.environment import CHROMIUM, chromium_missing, chromium_missing_message

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
ROOT = Path(__file__).resolve().parents[2]
RENDER_TIMEOUT_MS = 10_000


class _LenientLoader(yaml.SafeLoader):
    """Reads mkdocs.yml without executing its ``!!python/…`` or ``!ENV`` tags."""


_LenientLoader.add_multi_constructor("", lambda loader, suffix, node: None)


def site_url() -> str:
    """``site_url`` from mkdocs.yml ('' when unset)."""
    with (ROOT / "mkdocs.yml").open(encoding="utf-8") as fh:
        conf = yaml.load(fh, Loader=_LenientLoader) or {}
    return conf.get("site_url") or ""


def base_path() -> str:
    """``site_url``'s path ('/' when unset): the site is served under it, as deployed."""
    path = urlsplit(site_url()).path or "/"
    return path if path.endswith("/") else path + "/"


# --------------------------------------------------------------------------------------------- the site

@dataclass(frozen=True)
class BuiltPage:
    file: str                 # relative to the site root, e.g. "lora/index.html"
    url: str                  # absolute URL on the test server
    chart_ids: tuple[str, ...]  # ids of figure.lh-chart, in document order


@dataclass(frozen=True)
class Site:
    root: Path
    base_url: str             # e.g. "http://127.0.0.1:PORT/"
    pages: tuple[BuiltPage, ...]

    @property
    def chart_pages(self) -> list[BuiltPage]:
        return [p for p in self.pages if p.chart_ids]

    @property
    def plain_pages(self) -> list[BuiltPage]:
        return [p for p in self.pages if not p.chart_ids]

    def page(self, file: str) -> BuiltPage:
        return next(p for p in self.pages if p.file == file)


def page_url(base_url: str, file: str) -> str:
    """The URL a built file is served at: directory URLs for ``…/index.html``."""
    if file == "index.html":
        return base_url
    if file.endswith("/index.html"):
        return base_url + file[: -len("index.html")]
    return base_url + file


class _QuietHandler(SimpleHTTPRequestHandler):
    prefix = "/"
    deployed = ""   # site_url as written in sitemap.xml
    served = ""     # the test server's base URL

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass

    def do_GET(self):
        # Material's instant navigation only intercepts links listed in sitemap.xml, whose URLs it maps
        # onto the current protocol and host but NOT the port, so https://site/x/ never matches
        # http://127.0.0.1:PORT/x/ and every click would be a full reload. Serve the sitemap as if the
        # site were deployed here (mkdocs serve does the same by overriding site_url).
        if self.deployed and self.path.split("?")[0] == self.prefix + "sitemap.xml":
            body = Path(self.translate_path(self.path)).read_bytes()
            body = body.replace(self.deployed.rstrip("/").encode() + b"/", self.served.encode())
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def translate_path(self, path):
        # Serve the site under site_url's base path; anything outside it is a 404.
        if self.prefix != "/" and not path.startswith(self.prefix):
            return str(Path(self.directory) / "__outside_base_path__")
        return super().translate_path("/" + path[len(self.prefix):])


@pytest.fixture(scope="session")
def site_server(built_site) -> Site:
    prefix = base_path()
    handler = type("Handler", (_QuietHandler,), {"prefix": prefix})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(built_site)))
    server.daemon_threads = True
    base_url = f"http://127.0.0.1:{server.server_address[1]}{prefix}"
    handler.deployed, handler.served = site_url(), base_url
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    pages = []
    for path in sorted(built_site.rglob("*.html")):
        file = path.relative_to(built_site).as_posix()
        soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
        ids = tuple(fig.get("id", "") for fig in soup.select("figure.lh-chart"))
        pages.append(BuiltPage(file, page_url(base_url, file), ids))
    try:
        yield Site(built_site, base_url, tuple(pages))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ------------------------------------------------------------------------------------------ the browser

@pytest.fixture(scope="session")
def browser():
    if chromium_missing():
        message = chromium_missing_message()
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Recorder:
    """What one context did: every request, and everything a test should see empty."""
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)          # requests to another host (aborted)
    console_errors: list[str] = field(default_factory=list)
    chart_warnings: list[str] = field(default_factory=list)   # charts.js reports failures with console.warn
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)           # local requests that failed or got HTTP >= 400

    def problems(self) -> list[str]:
        return ([f"request left localhost: {u}" for u in self.blocked]
                + [f"console error: {m}" for m in self.console_errors]
                + [f"charts.js warning: {m}" for m in self.chart_warnings]
                + [f"page error: {m}" for m in self.page_errors]
                + [f"failed request: {m}" for m in self.failed])

    def requested(self, suffix: str) -> list[str]:
        return [u for u in self.requests if urlsplit(u).path.endswith(suffix)]


def _attach(page, rec: Recorder) -> None:
    def on_console(msg):
        where = msg.location or {}
        text = f"{msg.text} ({where.get('url', '?')}:{where.get('lineNumber', '?')})"
        if msg.type == "error":
            rec.console_errors.append(text)
        elif msg.type == "warning" and "LoRA Handbook charts" in msg.text:
            rec.chart_warnings.append(text)

    def on_response(response):
        if response.status >= 400:
            rec.failed.append(f"HTTP {response.status} {response.url}")

    def on_failed(request):
        # net::ERR_ABORTED is the browser cancelling a request because the test navigated on.
        if urlsplit(request.url).hostname in LOCAL_HOSTS and "ERR_ABORTED" not in (request.failure or ""):
            rec.failed.append(f"{request.failure} {request.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda err: rec.page_errors.append(f"{err.name}: {err.message}"))
    page.on("response", on_response)
    page.on("requestfailed", on_failed)


def new_page(browser, contexts: list, **options):
    """A fresh context + page, sealed to localhost and recorded; the context is appended to ``contexts``."""
    options = {"viewport": {"width": 1280, "height": 900}, "color_scheme": "light",
               "service_workers": "block", **options}
    context = browser.new_context(**options)
    contexts.append(context)
    rec = Recorder()

    def route(route, request):
        rec.requests.append(request.url)
        if urlsplit(request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            rec.blocked.append(request.url)
            route.abort("blockedbyclient")

    context.route("**/*", route)
    context.set_default_timeout(RENDER_TIMEOUT_MS)
    page = context.new_page()
    _attach(page, rec)
    return page, rec


@pytest.fixture
def open_page(browser):
    """``open_page(**context_options) -> (page, recorder)``; contexts are closed after the test."""
    contexts: list = []
    yield functools.partial(new_page, browser, contexts)
    for context in contexts:
        context.close()
