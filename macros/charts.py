"""Charts: an Altair spec rendered at build time to inline SVG, made live by the offline Vega bundle.

The figure works without JavaScript (the SVG and a data table are in the HTML). ``charts.js`` finds the
spec in the ``data-spec`` attribute — not in a ``<script type=application/json>``, which Material's instant
navigation would turn into executable script — renders it with vega-embed and hides the static copy.
Pages without a chart load no chart JavaScript: the figure itself brings the ``<script>``.
"""

from __future__ import annotations

import html
import json
from typing import Any, Sequence
from urllib.parse import urlparse

from macros.render import md_table

_SVG_CACHE: dict[str, str] = {}
SITE_URL: str | None = None  # set by define_env from mkdocs.yml's site_url


def spec_json(spec: dict[str, Any]) -> str:
    """Canonical JSON of a spec: sorted keys so builds are byte-identical."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def render_svg(spec: dict[str, Any]) -> str:
    """The chart as SVG (vl-convert, deterministic), cached per spec within a build."""
    import vl_convert

    key = spec_json(spec)
    if key not in _SVG_CACHE:
        svg = vl_convert.vegalite_to_svg(key)
        _SVG_CACHE[key] = svg[svg.index("<svg"):] if "<svg" in svg else svg
    return _SVG_CACHE[key]


def script_url(site_url: str | None) -> str:
    """Absolute path of charts.js under the site's base path (site_url's path, '/' when unset)."""
    base = urlparse(site_url or "/").path or "/"
    return base.rstrip("/") + "/assets/javascripts/charts.js"


def figure(spec: dict[str, Any], *, chart_id: str, caption: str, description: str,
           headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A ``<figure>``: static SVG (role=img, aria-label), live container, caption, data table, loader."""
    cap_id = f"{chart_id}-caption"
    table = md_table(headers, rows)
    return (
        f'<figure class="lh-chart" id="{html.escape(chart_id)}" aria-labelledby="{cap_id}" markdown="1">\n'
        f'<div class="lh-chart__static" role="img" aria-label="{html.escape(description, quote=True)}">'
        f"{render_svg(spec)}</div>\n"
        f'<div class="lh-chart__live" hidden data-spec="{html.escape(spec_json(spec), quote=True)}"></div>\n'
        f'<figcaption id="{cap_id}">{html.escape(caption)}</figcaption>\n'
        f'<details class="lh-chart__data" markdown="1">\n<summary>Data table</summary>\n\n{table}\n\n</details>\n'
        f'<script src="{html.escape(script_url(SITE_URL), quote=True)}" defer></script>\n'
        f"</figure>"
    )
