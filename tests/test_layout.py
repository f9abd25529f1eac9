"""calc's layout mirrors the site: the engine at the top, page figures in calc/pages, the CLI in calc/cli.

And the rule that keeps it portable: no calc module imports the site stack (MkDocs, Altair, Jinja, the macros).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CALC = ROOT / "calc"
SITE_STACK = {"mkdocs", "material", "altair", "vl_convert", "jinja2", "markdown", "pymdownx", "macros", "bs4"}
ENGINE = ("families", "architecture", "lora", "quant", "memory", "adapters", "gpus")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.partition(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.partition(".")[0])
    return out


@pytest.mark.parametrize("path", sorted(CALC.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_calc_knows_no_site(path):
    assert not (_imports(path) & SITE_STACK)


def test_the_engine_is_at_calcs_top():
    assert all((CALC / f"{name}.py").is_file() for name in ENGINE)


@pytest.mark.parametrize("macro", sorted((ROOT / "macros").glob("*_pages.py")), ids=lambda p: p.name)
def test_each_page_group_has_its_figures_module(macro):
    group = macro.stem.removesuffix("_pages")
    assert (CALC / "pages" / f"{group}.py").is_file()


def test_the_cli_lives_in_calc_cli():
    from calc.cli import COMMAND_MODULES

    assert all((CALC / "cli" / f"{name}.py").is_file() for name in COMMAND_MODULES)
    assert not (CALC / "commands").exists() and not (CALC / "cli.py").exists()
