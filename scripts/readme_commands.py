"""Print one of the README's two set-up commands, so that CI runs the README itself and not a copy of it.

The README's "Set up" section holds exactly two fenced ``bash`` blocks of one command each: the first installs
and serves the site, the second installs everything the suite needs and runs it. ``site --build DIR`` prints the
first with its final ``mkdocs serve`` replaced by ``mkdocs build --strict -d DIR`` (what CI can run to the end);
``test`` prints the second as written. Anything else in that section's shape is an error (exit 2), so a README
edit that CI could no longer follow fails CI instead of being skipped. Standard library only: CI runs this before
any virtual environment exists.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = re.compile(r"^## Set up\b.*?$(.*?)(?=^## |\Z)", re.M | re.S)
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)
SERVE = re.compile(r"\bmkdocs serve\s*$")


def commands(text: str) -> tuple[str, str]:
    """(site command, test command) from the README's text."""
    section = SECTION.search(text)
    if not section:
        raise ValueError("README.md has no '## Set up' section")
    blocks = [b.strip() for b in BLOCK.findall(section.group(1))]
    if len(blocks) != 2:
        raise ValueError(f"README.md's Set up section must hold exactly two bash blocks, found {len(blocks)}")
    for b in blocks:
        if "\n" in b:
            raise ValueError(f"README.md's set-up commands must be one line each, got {b!r}")
    site, test = blocks
    if not SERVE.search(site):
        raise ValueError("README.md's first set-up command must end with 'mkdocs serve'")
    if "pytest" not in test:
        raise ValueError("README.md's second set-up command must run pytest")
    return site, test


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=("site", "test"))
    parser.add_argument("--build", metavar="DIR", help="site: build strictly into DIR instead of serving")
    args = parser.parse_args(argv)
    try:
        site, test = commands(README.read_text(encoding="utf-8"))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.which == "site":
        print(SERVE.sub(f"mkdocs build --strict -d {shlex.quote(args.build)}", site) if args.build else site)
    else:
        print(test)
    return 0


if __name__ == "__main__":
    sys.exit(main())
