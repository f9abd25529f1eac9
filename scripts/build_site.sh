#!/usr/bin/env bash
# Build the site with `mkdocs build --strict` into a fresh directory beside DEST and put it in place only
# when the build succeeds. A failed build (a bad preset, a macro error) leaves DEST exactly as it was.
#
# Plain `mkdocs build` cannot promise that: it empties the site directory before rendering the pages, so an
# error raised while rendering (any macro failure after "Cleaning site directory") leaves an empty or
# half-written site where the last good one was. Here DEST is swapped with two renames on one file system:
# DEST -> .DEST.old.PID, the new build -> DEST, then the old copy is deleted. At every moment either the old
# or the new complete site exists (DEST itself is missing only between the two renames).
#
# Usage: scripts/build_site.sh [DEST]           (default: site; PYTHON=... chooses the interpreter)
# The exit status is mkdocs' own when the build fails. SOURCE_DATE_EPOCH is kept if set, else the last
# commit's time (or 1767225600 outside git), so the sitemap dates, and with them the bytes, are reproducible.
set -euo pipefail
cd "$(dirname "$0")/.."

dest="${1:-site}"
PY="${PYTHON:-python}"
export NO_MKDOCS_2_WARNING=1
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || true)"
  export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1767225600}"
fi

parent="$(dirname "$dest")"
name="$(basename "$dest")"
mkdir -p "$parent"
parent="$(cd "$parent" && pwd)"
tmp="$(mktemp -d "$parent/.$name.build.XXXXXX")"
old="$parent/.$name.old.$$"
trap 'rm -rf "$tmp"' EXIT

chmod 755 "$tmp"   # mktemp -d makes it 0700; the site is published
set +e
"$PY" -m mkdocs build --strict -f mkdocs.yml -d "$tmp"
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  echo "build_site: mkdocs build failed (exit $rc); $dest left as it was" >&2
  exit "$rc"
fi
if [ ! -f "$tmp/index.html" ]; then
  echo "build_site: the build wrote no index.html; $dest left as it was" >&2
  exit 1
fi

if [ -e "$parent/$name" ]; then
  mv "$parent/$name" "$old"
fi
if ! mv "$tmp" "$parent/$name"; then
  [ -e "$old" ] && mv "$old" "$parent/$name"
  echo "build_site: could not move the new site into place; $dest left as it was" >&2
  exit 1
fi
rm -rf "$old"
echo "build_site: $dest updated"
