"""The built site: strict build, and the numbers on the pages are calc's."""

from __future__ import annotations

from bs4 import BeautifulSoup

from calc.pages.site import preset_summaries


def _rows(html: str) -> dict[str, list[str]]:
    soup = BeautifulSoup(html, "html.parser")
    table = soup.select_one("#presets-at-a-glance ~ table") or soup.find("table")
    rows = {}
    for tr in table.find_all("tr")[1:]:
        cells = [td.get_text(strip=True) for td in tr.find_all("td")]
        rows[cells[0]] = cells
    return rows


def test_home_page_lists_every_preset_with_calcs_counts(built_site):
    rows = _rows((built_site / "index.html").read_text(encoding="utf-8"))
    summaries = preset_summaries(r=16)
    assert len(rows) == len(summaries)
    for s in summaries:
        cells = rows[s.preset.name]
        assert cells[3] == f"{s.total_params:,}"
        assert cells[5] == f"{s.trainable_params:,}"


def test_llama_3_1_8b_is_counted_gqa_aware_on_the_home_page(built_site):
    # Meta's published size is 8.03B; a GQA-unaware count (k, v as wide as q) gives 8.84B.
    rows = _rows((built_site / "index.html").read_text(encoding="utf-8"))
    assert rows["Llama 3.1 8B"][3] == "8,030,261,248"


def test_home_page_anchor_exists(built_site):
    soup = BeautifulSoup((built_site / "index.html").read_text(encoding="utf-8"), "html.parser")
    assert soup.find(id="presets-at-a-glance") is not None
