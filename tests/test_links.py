"""The built site, checked as HTML (no browser): links, anchors, local-only assets, inert content.

MkDocs validates Markdown links only; links inside raw HTML (what the macros emit) pass a strict build
unchecked (shared/reference/site-toolchain.md §6.1). These tests parse every built page instead, so they cover
macro output, theme templates and hand-written Markdown alike:

* every internal URL (relative, root-relative, or under ``site_url``) names a file in the built site, and
  every ``#fragment`` is an ``id`` on the target page;
* nothing the browser would fetch (scripts, stylesheets, icons, images, frames) comes from another host;
* the content area carries no inline event handlers, ``javascript:`` URLs or inline scripts (data must
  not inject behaviour, and Material's instant navigation re-executes inline scripts as JavaScript);
* ids are unique per page, and each chart figure is complete without JavaScript;
* the public-anchor registry ``docs/anchors.txt`` (when present) lists only anchors that exist.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parent.parent
ANCHOR_REGISTRY = ROOT / "docs" / "anchors.txt"

# Attributes whose URL the browser fetches on its own (``link`` is handled by rel below).
FETCHED = {"script": ("src",), "img": ("src", "srcset"), "iframe": ("src",), "frame": ("src",),
           "source": ("src", "srcset"), "video": ("src", "poster"), "audio": ("src",), "track": ("src",),
           "embed": ("src",), "object": ("data",), "input": ("src",), "image": ("href", "xlink:href"),
           "use": ("href", "xlink:href")}
FETCHED_LINK_RELS = {"stylesheet", "icon", "shortcut", "apple-touch-icon", "mask-icon", "preload",
                     "prefetch", "modulepreload", "manifest", "preconnect", "dns-prefetch", "prerender"}
LOCAL_HOSTS = {"", "127.0.0.1", "localhost"}
URL_ATTRS = ("href", "src", "srcset", "poster", "data", "action", "formaction", "xlink:href")


class _LenientLoader(yaml.SafeLoader):
    """Reads mkdocs.yml without executing its ``!!python/…`` or ``!ENV`` tags."""


_LenientLoader.add_multi_constructor("", lambda loader, suffix, node: None)


@functools.lru_cache(maxsize=1)
def site_url() -> tuple[str, str]:
    """(host, base path) of ``site_url`` in mkdocs.yml; root-relative links are resolved under the path."""
    with (ROOT / "mkdocs.yml").open(encoding="utf-8") as fh:
        conf = yaml.load(fh, Loader=_LenientLoader) or {}
    parts = urlsplit(conf.get("site_url") or "/")
    base = parts.path if parts.path.endswith("/") else parts.path + "/"
    return parts.netloc.lower(), base


def html_pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


@functools.lru_cache(maxsize=None)
def _soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


@functools.lru_cache(maxsize=None)
def _ids(path: Path) -> frozenset[str]:
    soup = _soup(path)
    return frozenset([t["id"] for t in soup.find_all(id=True)] + [t["name"] for t in soup.find_all("a", attrs={"name": True})])


def _rel(site: Path, page: Path) -> str:
    return page.relative_to(site).as_posix()


def _target_file(site: Path, url_path: str) -> Path | None:
    """The file a site-relative URL path (no leading slash) serves, directory URLs included."""
    path = site / unquote(url_path)
    if url_path == "" or url_path.endswith("/") or path.is_dir():
        path = path / "index.html"
    return path if path.is_file() else None


def resolve(site: Path, page: Path, url: str) -> tuple[str, str, str] | None:
    """For an internal URL on ``page``: (site-relative path, fragment, why-not-found or '').

    Returns None for URLs that leave the site (another host, mailto:, data: …).
    """
    parts = urlsplit(url)
    host, base = site_url()
    if parts.scheme and parts.scheme not in ("http", "https"):
        return None
    if parts.netloc:
        if parts.netloc.lower() != host or not parts.path.startswith(base):
            return None
        path = parts.path[len(base):]
    elif parts.path.startswith("/"):
        if not parts.path.startswith(base) and parts.path + "/" != base:
            return (parts.path, parts.fragment, f"root-relative path outside the site's base path {base!r}")
        path = parts.path[len(base):]
    elif parts.path == "":
        path = _rel(site, page)  # '#id' or '?q': this page
    else:
        segments: list[str] = []
        for segment in (posixpath.dirname(_rel(site, page)) + "/" + parts.path).split("/"):
            if segment == "..":
                if not segments:
                    return (parts.path, parts.fragment, "climbs above the site root")
                segments.pop()
            elif segment not in ("", "."):
                segments.append(segment)
        path = "/".join(segments) + ("/" if segments and parts.path.endswith(("/", "/.", "/..", ".", "..")) else "")
    target = _target_file(site, path)
    if target is None:
        return (path, parts.fragment, "no such file in the built site")
    return (_rel(site, target), parts.fragment, "")


def _urls(tag) -> list[tuple[str, str]]:
    out = []
    for attr in URL_ATTRS:
        value = tag.get(attr)
        if not value:
            continue
        if attr == "srcset":
            out += [(attr, item.strip().split()[0]) for item in value.split(",") if item.strip()]
        else:
            out.append((attr, value.strip()))
    return out


def _where(site: Path, page: Path, tag) -> str:
    text = str(tag)
    return f"{_rel(site, page)}: <{tag.name}> {text[:160]}{'…' if len(text) > 160 else ''}"


@pytest.fixture(scope="module")
def pages(built_site) -> list[Path]:
    found = html_pages(built_site)
    assert (built_site / "index.html") in found, "the built site has no index.html"
    return found


def test_every_internal_link_resolves_to_a_file_and_an_id(built_site, pages):
    problems = []
    for page in pages:
        for tag in _soup(page).find_all(True):
            for attr, url in _urls(tag):
                if url in ("#", "#!"):
                    continue
                found = resolve(built_site, page, url)
                if found is None:
                    continue
                target, fragment, missing = found
                if missing:
                    problems.append(f"{_where(built_site, page, tag)}\n    {attr}={url!r}: {missing}")
                    continue
                if fragment and target.endswith(".html") and unquote(fragment) not in _ids(built_site / target):
                    problems.append(f"{_where(built_site, page, tag)}\n    {attr}={url!r}: "
                                    f"no id {unquote(fragment)!r} on {target}")
    assert not problems, f"{len(problems)} broken internal link(s):\n" + "\n".join(problems)


def test_nothing_the_browser_fetches_comes_from_another_host(built_site, pages):
    problems = []
    for page in pages:
        soup = _soup(page)
        for tag in soup.find_all(True):
            attrs = FETCHED.get(tag.name, ())
            if tag.name == "link" and FETCHED_LINK_RELS & {r.lower() for r in tag.get("rel") or []}:
                attrs = ("href",)
            for attr, url in _urls(tag):
                if attr in attrs and urlsplit(url).scheme not in ("data", "blob") and \
                        (url.startswith("//") or urlsplit(url).netloc.split(":")[0].lower() not in LOCAL_HOSTS):
                    problems.append(f"{_where(built_site, page, tag)}\n    {attr}={url!r}")
        for style in soup.find_all("style"):
            for url in re.findall(r"""(?:url\(\s*['"]?|@import\s+['"])((?:https?:)?//[^'")\s]+)""", style.get_text()):
                problems.append(f"{_rel(built_site, page)}: <style> loads {url}")
    for css in sorted(built_site.rglob("*.css")):
        for url in re.findall(r"""(?:url\(\s*['"]?|@import\s+['"])((?:https?:)?//[^'")\s]+)""",
                              css.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{_rel(built_site, css)}: loads {url}")
    assert not problems, "the site must make no third-party request; these point off the site:\n" + "\n".join(problems)


def test_content_has_no_inline_event_handlers_or_inline_scripts(built_site, pages):
    problems = []
    for page in pages:
        for article in _soup(page).find_all("article"):
            for tag in [article, *article.find_all(True)]:
                handlers = [a for a in tag.attrs if a.lower().startswith("on")]
                if handlers:
                    problems.append(f"{_where(built_site, page, tag)}\n    event handler attribute(s) {handlers}")
                for attr, url in _urls(tag):
                    if re.sub(r"[\s\x00-\x1f]", "", url).lower().startswith(("javascript:", "vbscript:")):
                        problems.append(f"{_where(built_site, page, tag)}\n    {attr} is a script URL")
                if tag.name == "script" and not tag.get("src"):
                    # Material's instant navigation re-creates inline scripts from their text alone, so even
                    # <script type="application/json"> runs as JavaScript after a click (toolchain §3.2).
                    problems.append(f"{_where(built_site, page, tag)}\n    inline <script> in the content area")
                if tag.name in ("iframe", "object", "embed", "form", "base", "meta"):
                    problems.append(f"{_where(built_site, page, tag)}\n    <{tag.name}> in the content area")
    assert not problems, "the content area must be inert markup:\n" + "\n".join(problems)


def test_ids_are_unique_on_every_page(built_site, pages):
    problems = []
    for page in pages:
        seen: dict[str, int] = {}
        for tag in _soup(page).find_all(id=True):
            seen[tag["id"]] = seen.get(tag["id"], 0) + 1
        dupes = sorted(i for i, n in seen.items() if n > 1)
        if dupes:
            problems.append(f"{_rel(built_site, page)}: {dupes}")
    assert not problems, "duplicate ids make anchors ambiguous:\n" + "\n".join(problems)


def test_every_chart_figure_is_complete_without_javascript(built_site, pages):
    """The static SVG, an accessible name, a caption, the data as a real <table> in <details>, the spec."""
    problems = []
    for page in pages:
        for fig in _soup(page).select("figure.lh-chart"):
            where = f"{_rel(built_site, page)}: figure#{fig.get('id')}"
            if not fig.get("id"):
                problems.append(f"{where}: no id (charts are linkable anchors)")
            static = fig.select_one(".lh-chart__static")
            if static is None or static.find("svg") is None:
                problems.append(f"{where}: no .lh-chart__static <svg>")
            elif static.has_attr("hidden"):
                problems.append(f"{where}: the static SVG is hidden in the HTML (invisible without JavaScript)")
            elif static.get("role") != "img" or not (static.get("aria-label") or "").strip():
                problems.append(f"{where}: static SVG lacks role=img and a non-empty aria-label")
            live = fig.select_one(".lh-chart__live[data-spec]")
            if live is None:
                problems.append(f"{where}: no .lh-chart__live[data-spec]")
            else:
                try:
                    spec = json.loads(live["data-spec"])
                    if "vega-lite" not in str(spec.get("$schema", "")):
                        problems.append(f"{where}: data-spec is not a Vega-Lite spec")
                except ValueError as err:
                    problems.append(f"{where}: data-spec is not JSON ({err})")
                if not live.has_attr("hidden"):
                    problems.append(f"{where}: the empty live container is not hidden before JavaScript runs")
            caption = fig.find("figcaption")
            if caption is None or not caption.get_text(strip=True):
                problems.append(f"{where}: no figcaption")
            details = fig.find("details")
            table = details.find("table") if details else None
            if table is None:
                raw = details.get_text(" ", strip=True)[:120] if details else ""
                problems.append(f"{where}: no <table> inside <details> (the text alternative)"
                                + (f"; <details> holds unrendered text {raw!r}" if raw else ""))
            elif len(table.find_all("tr")) < 2:
                problems.append(f"{where}: the data table has no rows")
            scripts = [s["src"] for s in fig.find_all("script", src=True)]
            if not any(urlsplit(s).path.endswith("/charts.js") for s in scripts):
                problems.append(f"{where}: does not load charts.js")
    assert not problems, "\n".join(problems)


def _registry_target(site: Path, page_part: str) -> Path | None:
    """A registry page (``lora.md``, ``lora.html``, ``lora/index.html``, ``lora/``) as a built file."""
    page_part = page_part.lstrip("/")
    candidates = []
    if page_part in ("", "index.md", "index.html"):
        candidates.append("index.html")
    elif page_part.endswith(".md"):
        stem = page_part[:-3]
        candidates += [f"{stem[:-len('index')]}index.html" if stem.endswith("/index") else f"{stem}/index.html",
                       f"{stem}.html"]
    elif page_part.endswith(".html"):
        candidates += [page_part, f"{page_part[:-5]}/index.html"]
    else:
        candidates.append(page_part.rstrip("/") + "/index.html")
    for candidate in candidates:
        if (site / candidate).is_file():
            return site / candidate
    return None


def test_public_anchor_registry_entries_exist(built_site):
    if not ANCHOR_REGISTRY.is_file():
        pytest.skip("no anchor registry yet (docs/anchors.txt is absent)")
    problems, entries = [], 0
    for number, line in enumerate(ANCHOR_REGISTRY.read_text(encoding="utf-8").splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        entry = entry.split()[0]
        entries += 1
        if "#" not in entry:
            problems.append(f"anchors.txt:{number}: {entry!r} is not 'page.html#id'")
            continue
        page_part, anchor = entry.split("#", 1)
        target = _registry_target(built_site, page_part)
        if target is None:
            problems.append(f"anchors.txt:{number}: {entry!r}: no built page {page_part!r}")
        elif not anchor or anchor not in _ids(target):
            problems.append(f"anchors.txt:{number}: {entry!r}: no id {anchor!r} on {_rel(built_site, target)}")
    assert entries, "docs/anchors.txt lists no anchors"
    assert not problems, ("public anchors disappeared (removing one must be a deliberate edit of "
                          "docs/anchors.txt):\n" + "\n".join(problems))
