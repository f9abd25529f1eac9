"""The built site in Chromium: every page clean, charts live, instant navigation, theme switch, no-JS.

Generic over the build: pages are every ``*.html`` in the site and charts are every ``figure.lh-chart``
found there, so the tests grow with the handbook. Chart-specific tests skip with "no chart pages yet"
while no page has a chart. Every test also asserts that no request left 127.0.0.1 and that the browser
logged no console error and no page error (see conftest.Recorder).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import RENDER_TIMEOUT_MS, BuiltPage, Recorder, Site, new_page

CHART_JS = ("/charts.js", "/vega-bundle.js")

# All figures listed are live: data-rendered=live, one <svg> in the live container, static copy hidden,
# and (when given) none of the live SVGs is one we marked before (so each was rendered anew).
_ALL_LIVE = """([ids, stale]) => ids.every(id => {
  const fig = document.getElementById(id);
  if (!fig || !fig.matches('figure.lh-chart') || fig.closest('[data-lh-old]')) return false;
  const live = fig.querySelector('.lh-chart__live');
  const svgs = live ? live.querySelectorAll('svg') : [];
  const still = fig.querySelector('.lh-chart__static');
  return fig.getAttribute('data-rendered') === 'live' && svgs.length >= 1 && !live.hidden
    && (!stale || !live.querySelector('svg[data-lh-old]')) && (!still || still.hidden);
})"""

_FIGURE_STATE = """(ids) => ids.map(id => {
  const fig = document.getElementById(id);
  if (!fig) return {id, missing: true};
  const live = fig.querySelector('.lh-chart__live');
  const still = fig.querySelector('.lh-chart__static');
  const visible = el => !!el && !el.hidden && getComputedStyle(el).display !== 'none' && el.getClientRects().length > 0;
  return {id, rendered: fig.getAttribute('data-rendered'),
          liveSvgs: live ? [...live.querySelectorAll('svg')].filter(s => !s.parentElement.closest('svg')).length : 0,
          liveVisible: visible(live), staticVisible: visible(still),
          notReRendered: !!(live && live.querySelector('svg[data-lh-old]'))};
})"""


def _require_chart_pages(site: Site, at_least: int = 1) -> list[BuiltPage]:
    pages = site.chart_pages
    if len(pages) < at_least:
        pytest.skip("no chart pages yet" if not pages else f"fewer than {at_least} chart pages yet")
    return pages


def _assert_clean(rec: Recorder, context: str = "") -> None:
    problems = rec.problems()
    assert not problems, f"{context}\n" + "\n".join(problems)


def _wait_live(page, built: BuiltPage, stale: bool = False) -> None:
    try:
        page.wait_for_function(_ALL_LIVE, arg=[list(built.chart_ids), stale], timeout=RENDER_TIMEOUT_MS)
    except Exception as err:  # a Playwright TimeoutError: report each figure's state
        state = page.evaluate(_FIGURE_STATE, list(built.chart_ids))
        raise AssertionError(f"{built.file}: charts did not all render live within "
                             f"{RENDER_TIMEOUT_MS / 1000:.0f} s: {state}") from err


def _assert_one_svg_per_chart(page, built: BuiltPage) -> None:
    for state in page.evaluate(_FIGURE_STATE, list(built.chart_ids)):
        assert state.get("liveSvgs") == 1, f"{built.file}: #{state['id']} live container holds {state}"
        assert state["liveVisible"] and not state["staticVisible"], f"{built.file}: {state}"


def _scheme(page) -> str:
    return page.evaluate("document.body.getAttribute('data-md-color-scheme')")


# ---------------------------------------------------------------------------------------- every page

@pytest.fixture(scope="module")
def visits(browser, site_server) -> dict[str, tuple[list[str], list[str]]]:
    """Each built page opened once, in one context: ``{file: (problems, requested URLs)}``."""
    contexts: list = []
    page, rec = new_page(browser, contexts)
    out = {}
    try:
        for built in site_server.pages:
            problems, requests = len(rec.problems()), len(rec.requests)
            # networkidle: late requests (the search index, anything a script fetches) count for this page.
            page.goto(built.url, wait_until="networkidle")
            failed = []
            if built.chart_ids:
                try:
                    _wait_live(page, built)
                except AssertionError as err:
                    failed.append(str(err))
            out[built.file] = (rec.problems()[problems:] + failed, rec.requests[requests:])
    finally:
        for context in contexts:
            context.close()
    return out


def test_every_page_loads_without_errors_or_third_party_requests(visits):
    failures = [f"{file}:\n  " + "\n  ".join(problems) for file, (problems, _) in visits.items() if problems]
    if any("api.github.com" in line for line in failures):
        failures.append("hint: Material's header repository widget (theme partial source.html, shown when "
                        "repo_url is set) fetches stars/forks/release from api.github.com on the first page "
                        "of each session")
    assert not failures, "\n".join(failures)


def test_pages_without_charts_load_no_chart_javascript(site_server, visits):
    loaded = []
    for built in site_server.plain_pages:
        chart_js = [u for u in visits[built.file][1] if urlsplit(u).path.endswith(CHART_JS)]
        if chart_js:
            loaded.append(f"{built.file}: {chart_js}")
    assert not loaded, "pages without a chart must not download chart JavaScript:\n" + "\n".join(loaded)


def test_chart_pages_load_the_chart_javascript_once(site_server, visits):
    pages = _require_chart_pages(site_server)
    wrong = []
    for built in pages:
        requested = [urlsplit(u).path for u in visits[built.file][1]]
        counts = {name: sum(p.endswith(name) for p in requested) for name in CHART_JS}
        if counts != {name: 1 for name in CHART_JS}:
            wrong.append(f"{built.file}: {counts}")
    assert not wrong, "each chart page should fetch charts.js and the Vega bundle exactly once:\n" + "\n".join(wrong)


# ------------------------------------------------------------------------------------------- charts

def test_every_chart_renders_live_and_hides_its_static_copy(site_server, open_page):
    pages = _require_chart_pages(site_server)
    page, rec = open_page()
    for built in pages:
        page.goto(built.url, wait_until="load")
        _wait_live(page, built)
        _assert_one_svg_per_chart(page, built)
        # vega-embed's container is labelled for assistive technology (toolchain §3.6).
        roles = page.evaluate("""(ids) => ids.map(id => {
            const live = document.getElementById(id).querySelector('.lh-chart__live');
            const labelled = live.matches('[role]') ? live : live.querySelector('svg[role], [role=graphics-document]');
            return labelled ? labelled.getAttribute('role') : null;
        })""", list(built.chart_ids))
        assert all(roles), f"{built.file}: live charts without an ARIA role: {dict(zip(built.chart_ids, roles))}"
    _assert_clean(rec)


def _click_nav_link(page, target: BuiltPage) -> None:
    """Click the primary-navigation link to ``target`` (a real click, so Material's instant nav runs)."""
    found = page.evaluate("""(url) => {
        const strip = u => u.split('#')[0];
        const links = [...document.querySelectorAll('.md-sidebar--primary a.md-nav__link[href], .md-tabs a[href], .md-header a[href]')];
        const link = links.find(a => strip(a.href) === url && a.getClientRects().length > 0);
        if (!link) return false;
        document.querySelectorAll('[data-lh-click]').forEach(a => a.removeAttribute('data-lh-click'));
        link.setAttribute('data-lh-click', '1');
        return true;
    }""", target.url)
    assert found, f"no visible navigation link to {target.url} on {page.url}"
    page.locator("[data-lh-click]").first.click()


def _instant_navigate(page, target: BuiltPage) -> None:
    # Mark the old content so the new page's figures cannot be confused with the old page's.
    page.evaluate("document.querySelectorAll('article').forEach(a => a.setAttribute('data-lh-old', '1'))")
    _click_nav_link(page, target)
    page.wait_for_url(target.url)
    page.wait_for_function("() => !!document.querySelector('article:not([data-lh-old])') "
                           "&& !document.querySelector('article[data-lh-old]')")


def test_instant_navigation_keeps_the_window_and_renders_charts_each_time(site_server, open_page):
    pages = _require_chart_pages(site_server)
    home = site_server.page("index.html")
    first = pages[0] if pages[0] is not home else (pages[1] if len(pages) > 1 else home)
    others = [p for p in pages if p not in (first, home)]
    # home -> first chart page -> another chart page (or home) -> first chart page again
    route = [first, others[0] if others else home, first]
    if route[0] is home:
        pytest.skip("the only chart page is the home page; instant navigation needs a second page")

    page, rec = open_page()
    # networkidle: Material enables instant navigation only once it has fetched sitemap.xml.
    page.goto(home.url, wait_until="networkidle")
    if home.chart_ids:
        _wait_live(page, home)
    page.evaluate("window.__marker = 1")
    bundle_requests = len(rec.requested("/vega-bundle.js"))
    for step, target in enumerate(route, 1):
        _instant_navigate(page, target)
        assert page.evaluate("window.__marker") == 1, \
            f"step {step}: navigating to {target.file} reloaded the page (instant navigation is off or broke)"
        if target.chart_ids:
            _wait_live(page, target)
            _assert_one_svg_per_chart(page, target)
        _assert_clean(rec, f"after step {step} (instant navigation to {target.file})")
    total = len(rec.requested("/vega-bundle.js"))
    assert total - bundle_requests <= 1, f"the Vega bundle was downloaded {total} times in one visit"


def test_theme_switch_rerenders_charts(site_server, open_page):
    pages = _require_chart_pages(site_server)
    built = pages[0]
    page, rec = open_page(color_scheme="light")
    page.goto(built.url, wait_until="load")
    _wait_live(page, built)
    start = _scheme(page)
    # The built HTML names the palette inputs; the label for the *other* scheme's input is the toggle.
    target = "slate" if start != "slate" else "default"
    for scheme in (target, start):
        toggle = page.evaluate("""(scheme) => {
            const input = document.querySelector(`input[name="__palette"][data-md-color-scheme="${scheme}"]`);
            return input ? `label[for="${input.id}"]` : null;
        }""", scheme)
        assert toggle, f"no palette input for the {scheme!r} scheme in {built.file}"
        before = page.evaluate("""(ids) => ids.map(id => {
            const svg = document.getElementById(id).querySelector('.lh-chart__live svg');
            svg.setAttribute('data-lh-old', '1');
            const text = svg.querySelector('text');
            return text ? (text.getAttribute('fill') || getComputedStyle(text).fill) : null;
        })""", list(built.chart_ids))
        page.locator(toggle).click()
        page.wait_for_function("(s) => document.body.getAttribute('data-md-color-scheme') === s", arg=scheme)
        _wait_live(page, built, stale=True)
        _assert_one_svg_per_chart(page, built)
        after = page.evaluate("""(ids) => ids.map(id => {
            const text = document.getElementById(id).querySelector('.lh-chart__live svg text');
            return text ? (text.getAttribute('fill') || getComputedStyle(text).fill) : null;
        })""", list(built.chart_ids))
        changed = [b != a for b, a in zip(before, after) if b is not None and a is not None]
        assert all(changed), f"switching to {scheme!r}: chart text colours stayed {after} (theme not applied)"
    assert _scheme(page) == start
    _assert_clean(rec)


def test_without_javascript_static_charts_and_data_tables_are_shown(site_server, open_page):
    pages = _require_chart_pages(site_server)
    page, rec = open_page(java_script_enabled=False)
    problems = []
    for built in pages:
        page.goto(built.url, wait_until="load")
        for chart_id in built.chart_ids:
            fig = page.locator(f"figure.lh-chart#{chart_id}")
            where = f"{built.file}#{chart_id}"
            if not fig.locator(".lh-chart__static svg").first.is_visible():
                problems.append(f"{where}: static SVG not visible without JavaScript")
            if fig.locator(".lh-chart__live").first.is_visible():
                problems.append(f"{where}: the live container shows without JavaScript")
            if fig.locator("details table").count() != 1:
                problems.append(f"{where}: no data <table> in <details> "
                                f"(details text: {fig.locator('details').first.inner_text()[:100]!r})")
            elif fig.locator("details table tbody tr").count() < 1:
                problems.append(f"{where}: the data table has no rows")
            if fig.get_attribute("data-rendered"):
                problems.append(f"{where}: data-rendered set without JavaScript")
    assert not problems, "\n".join(problems)
    assert not rec.requested("/vega-bundle.js"), "the Vega bundle was fetched with JavaScript off"
    assert not rec.blocked, rec.blocked
