"""Reproducible builds: the same sources and SOURCE_DATE_EPOCH give the same bytes, in any output directory.

The session's strict build (``built_site``, tests/conftest.py) is compared with a second build into another
temporary directory under the same environment (``BUILD_ENV``: SOURCE_DATE_EPOCH=1767225600). Every file's
SHA-256 must match; the failure lists the files that differ or exist in only one build (and, for the first
few text files that differ, the first differing line).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.conftest import BUILD_ENV, build_site


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _first_difference(a: Path, b: Path) -> str:
    try:
        left, right = a.read_text(encoding="utf-8").splitlines(), b.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return "binary"
    for i, (x, y) in enumerate(zip(left, right), start=1):
        if x != y:
            return f"line {i}: {x[:160]!r} != {y[:160]!r}"
    return f"{len(left)} vs {len(right)} lines"


def test_two_builds_with_the_same_source_date_epoch_are_byte_identical(built_site, tmp_path):
    assert BUILD_ENV.get("SOURCE_DATE_EPOCH")
    second = tmp_path / "second-build"
    proc = build_site(second)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    first, other = _hashes(built_site), _hashes(second)
    only_first = sorted(set(first) - set(other))
    only_second = sorted(set(other) - set(first))
    changed = sorted(f for f in set(first) & set(other) if first[f] != other[f])
    problems = ([f"only in the first build: {f}" for f in only_first]
                + [f"only in the second build: {f}" for f in only_second]
                + [f"differs: {f}" + (f" ({_first_difference(built_site / f, second / f)})" if i < 5 else "")
                   for i, f in enumerate(changed)])
    assert not problems, f"{len(problems)} difference(s) between two builds:\n" + "\n".join(problems)
    assert len(first) > 10 and "index.html" in first and "sitemap.xml" in first
