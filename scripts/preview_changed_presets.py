"""Print the ``python -m calc preset check`` preview of every preset changed against main.

The local stand-in for a preview comment on a pull request (site-toolchain.md §5): CI prints, for each
``calc/presets/*.yaml`` added or modified on this branch, the rows the site will show, so the reviewer can
compare them with the model card. The base is ``origin/main`` when it exists, else ``main``; the changed
files are ``git diff --name-only BASE...HEAD`` (committed changes since the branch left main). Without git,
without either base, or with nothing changed, it prints nothing and exits 0. A changed preset that does not
validate prints its one-line error and the exit status is 2, as with ``preset check``.

Usage: python scripts/preview_changed_presets.py [--base REF] [--root DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = "calc/presets"


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def find_base(root: Path) -> str | None:
    """``origin/main`` if it resolves, else ``main``, else None."""
    for ref in ("origin/main", "main"):
        if _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}") is not None:
            return ref
    return None


def changed_presets(root: Path, base: str | None = None) -> list[Path]:
    """Preset files added, modified, renamed or copied in ``base...HEAD`` that still exist, sorted."""
    base = base or find_base(root)
    if base is None:
        return []
    out = _git(root, "diff", "--name-only", "--diff-filter=ACMR", f"{base}...HEAD", "--", f"{PRESETS}/*.yaml")
    if not out:
        return []
    names = sorted({line.strip() for line in out.splitlines() if line.strip()})
    return [root / n for n in names if n.startswith(f"{PRESETS}/") and n.count("/") == 2 and (root / n).is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="git ref to compare with (default: origin/main, else main)")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    files = changed_presets(root, args.base)
    if not files:
        return 0
    print(f"== preview of {len(files)} preset(s) changed against {args.base or find_base(root)}", flush=True)
    sys.path.insert(0, str(ROOT))
    from calc.cli import main as calc_main

    rc = calc_main(["preset", "check", *[str(f) for f in files]])
    sys.stdout.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main())
