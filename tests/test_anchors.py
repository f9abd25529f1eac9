"""The public-anchor registry docs/anchors.txt: every listed anchor exists, and every rule-of-thumb table
(``rot-…`` id) anywhere in the built site is listed, so adding, renaming or removing one is a visible diff.

Regenerate the list with ``python scripts/list_anchors.py --build > docs/anchors.txt``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "docs" / "anchors.txt"


def _list_anchors():
    spec = importlib.util.spec_from_file_location("list_anchors", ROOT / "scripts" / "list_anchors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


list_anchors = _list_anchors()


def registry() -> list[tuple[int, str]]:
    """(line number, entry) for every non-comment line of docs/anchors.txt."""
    out = []
    for number, line in enumerate(REGISTRY.read_text(encoding="utf-8").splitlines(), 1):
        entry = line.strip()
        if entry and not entry.startswith("#"):
            out.append((number, entry))
    return out


@pytest.fixture(scope="module")
def site_ids(built_site) -> dict[str, set[str]]:
    """page path (as in the registry) -> every id on it."""
    from bs4 import BeautifulSoup

    out = {}
    for page in built_site.rglob("*.html"):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        out[page.relative_to(built_site).as_posix()] = {t["id"] for t in soup.find_all(id=True)}
    return out


def test_registry_entries_are_well_formed_and_unique():
    entries = registry()
    assert entries, "docs/anchors.txt lists no anchor"
    bad = [f"docs/anchors.txt:{n}: {e}" for n, e in entries
           if e.count("#") != 1 or not e.split("#")[0].endswith(".html") or not e.split("#")[1]]
    assert not bad, "entries must be 'page/index.html#id':\n" + "\n".join(bad)
    seen, dupes = set(), []
    for n, e in entries:
        if e in seen:
            dupes.append(f"docs/anchors.txt:{n}: {e}")
        seen.add(e)
    assert not dupes, "listed twice:\n" + "\n".join(dupes)


def test_every_listed_anchor_exists(site_ids):
    missing = []
    for n, entry in registry():
        page, _, anchor = entry.partition("#")
        if page not in site_ids:
            missing.append(f"docs/anchors.txt:{n}: {entry} (no page {page})")
        elif anchor not in site_ids[page]:
            missing.append(f"docs/anchors.txt:{n}: {entry} (no id {anchor!r} on the page)")
    assert not missing, ("public anchors that the built site no longer has (links from outside would break; "
                         "restore them or, if the removal is intended, regenerate the list):\n" + "\n".join(missing))


def test_every_rule_of_thumb_table_is_listed(built_site, site_ids):
    listed = {e for _, e in registry()}
    unlisted = sorted(f"{page}#{i}" for page, ids in site_ids.items() for i in ids
                      if i.startswith("rot-") and f"{page}#{i}" not in listed and page != "404.html")
    assert not unlisted, ("rot- anchors missing from docs/anchors.txt (run python scripts/list_anchors.py "
                          "--build > docs/anchors.txt):\n" + "\n".join(unlisted))


def test_list_anchors_finds_public_ids_and_chart_figures():
    html = ('<h3 id="rot-rank">x</h3><p id="ref-hu2021"></p><h2 id="faq-merge"></h2><h2 id="other"></h2>'
            '<figure class="lh-chart" id="chart-nf4-levels"></figure><figure id="plain"></figure>'
            '<h2 id="presets-at-a-glance"></h2><span id="rot-rank"></span>')
    assert list_anchors.page_anchors(html) == ["rot-rank", "ref-hu2021", "faq-merge", "chart-nf4-levels",
                                               "presets-at-a-glance"]
