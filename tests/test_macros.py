"""The macros layer: registration shape (mkdocs-macros / Zensical MacroEnv) and escaping of data."""

from __future__ import annotations

from dataclasses import dataclass

import jinja2
from bs4 import BeautifulSoup

import macros
from macros import render


class FakeEnv:
    """The subset of the macros environment the project may use: macro(), filter(), variables, conf."""

    def __init__(self) -> None:
        self.macros: dict = {}
        self.filters: dict = {}
        self.variables: dict = {}
        self.conf: dict = {}

    def macro(self, fn, name=None):
        self.macros[name or fn.__name__] = fn
        return fn

    def filter(self, fn, name=None):
        self.filters[name or fn.__name__] = fn
        return fn


@dataclass(frozen=True)
class ChartParts:
    figure: object        # the figure.lh-chart element
    static: object        # its .lh-chart__static (role=img) element
    details: object       # the <details> holding the data table
    table_lines: list     # the data table's Markdown lines ("| … |")


def chart_parts(out: str) -> ChartParts:
    """A chart macro's output, checked for what every chart carries: an id, a caption, a labelled static
    image and a data table; the parts are returned for the page's own further checks."""
    fig = BeautifulSoup(out, "html.parser").find("figure", class_="lh-chart")
    assert fig is not None and fig.get("id", "").startswith("chart-")
    assert fig.find("figcaption").get_text(strip=True)
    static = fig.find(class_="lh-chart__static")
    assert static["role"] == "img" and len(static["aria-label"]) > 40
    details = fig.find("details")
    table_lines = [line for line in details.get_text().splitlines() if line.startswith("|")]
    assert len(table_lines) >= 4          # header, rule, at least two rows
    return ChartParts(fig, static, details, table_lines)


def test_define_env_registers_the_same_macros_twice():
    env = FakeEnv()
    macros.define_env(env)
    first = dict(env.macros)
    macros.define_env(env)  # Zensical calls it once per page
    assert env.macros.keys() == first.keys()
    assert "preset_table" in env.macros


def test_preset_table_renders_under_strict_jinja():
    env = FakeEnv()
    macros.define_env(env)
    jinja = jinja2.Environment(undefined=jinja2.StrictUndefined)
    out = jinja.from_string("{{ preset_table() }}").render(**env.macros)
    assert out.startswith("| Model |")
    assert "Llama 3.1 8B" in out


def test_text_from_data_cannot_inject_markup_or_break_a_table():
    hostile = '<script>alert(1)</script> | [x](javascript:alert(1)) *bold*'
    out = render.text(hostile)
    assert "<script>" not in out and "|" not in out.replace("\\|", "")
    assert "&lt;script&gt;" in out
    assert "\\[x\\]\\(javascript" in out


def test_links_only_to_http_urls():
    assert render.link("x", "javascript:alert(1)") == "x"
    assert render.link("x", "https://example.org/a b").endswith("(https://example.org/a%20b)")
