"""Print the public anchors of a built site, one ``page/index.html#id`` per line: the content of docs/anchors.txt.

Public anchors are the ids other sites link to: rule-of-thumb tables (``rot-…``), references (``ref-…``),
preset sections (``presets-…``), FAQ questions (``faq-…``) and chart figures (``figure.lh-chart``).
``tests/test_anchors.py`` checks that every listed anchor exists and that no ``rot-`` id is missing.

Regenerate after adding or renaming one (a visible diff is the point)::

    mkdocs build --strict -d /tmp/site
    python scripts/list_anchors.py /tmp/site > docs/anchors.txt

or ``python scripts/list_anchors.py --build > docs/anchors.txt`` to build into a temporary directory first.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_ID = re.compile(r"^(?:rot|ref|presets|faq)-[a-z0-9][a-z0-9._-]*$")
HEADER = """\
# Public anchors of the built site: page (use_directory_urls) and id. Links from outside depend on them,
# so removing or renaming one must show up here. Regenerate: python scripts/list_anchors.py --build
"""


def page_anchors(html: str) -> list[str]:
    """The public ids of one page, in document order."""
    soup = BeautifulSoup(html, "html.parser")
    ids = []
    for tag in soup.find_all(id=True):
        value = tag["id"]
        chart = tag.name == "figure" and "lh-chart" in (tag.get("class") or [])
        if (chart or PUBLIC_ID.match(value)) and value not in ids:
            ids.append(value)
    return ids


def public_anchors(site: Path) -> list[str]:
    """Every public anchor of the site as ``page#id``, sorted (pages by path, ids by name)."""
    out = []
    for page in sorted(site.rglob("*.html")):
        rel = page.relative_to(site).as_posix()
        if rel == "404.html":
            continue
        out += [f"{rel}#{i}" for i in sorted(page_anchors(page.read_text(encoding="utf-8")))]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", nargs="?", type=Path, help="a built site directory")
    parser.add_argument("--build", action="store_true", help="build the site (strict) into a temporary directory")
    args = parser.parse_args(argv)
    if args.build == bool(args.site):
        parser.error("give a built site directory or --build")
    if args.build:
        sys.path.insert(0, str(ROOT))
        from tests.conftest import build_site

        with tempfile.TemporaryDirectory() as tmp:
            proc = build_site(Path(tmp))
            if proc.returncode:
                sys.stderr.write(proc.stdout + proc.stderr)
                return proc.returncode
            anchors = public_anchors(Path(tmp))
    else:
        if not args.site.is_dir():
            parser.error(f"{args.site} is not a directory")
        anchors = public_anchors(args.site)
    sys.stdout.write(HEADER + "".join(a + "\n" for a in anchors))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
