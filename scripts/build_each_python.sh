#!/usr/bin/env bash
# Build the site with every CPython >= 3.11 found on this machine and check each build is byte-identical to the
# reference build given as $1 (the README's). Each interpreter gets a fresh virtual environment with the README's
# site install (`pip install -e .`). Interpreters are found on PATH, in /usr/bin and under pyenv; one per version.
set -euo pipefail
cd "$(dirname "$0")/.."
reference=${1:?usage: build_each_python.sh REFERENCE_SITE_DIR}
export NO_MKDOCS_2_WARNING=1 SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1767225600}" PIP_DISABLE_PIP_VERSION_CHECK=1

candidates=(/usr/bin/python3 /usr/bin/python3.1[1-9] /usr/local/bin/python3.1[1-9])
for name in python3.11 python3.12 python3.13 python3.14; do
  p=$(command -v "$name" 2>/dev/null) && candidates+=("$p")
done
root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
candidates+=("$root"/versions/3.1[1-9]*/bin/python3)

declare -A seen=()
work=$(mktemp -d)
failed=0
for py in "${candidates[@]}"; do
  [ -x "$py" ] || continue
  ver=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3]) if sys.version_info >= (3, 11) else None' \
        2>/dev/null) || continue
  [ -n "$ver" ] && [ "$ver" != None ] || continue
  [ -z "${seen[$ver]:-}" ] || continue
  seen[$ver]=1
  echo "-- Python $ver ($py)"
  "$py" -m venv "$work/venv-$ver"
  "$work/venv-$ver/bin/pip" install -q -e . || { echo "   FAILED: pip install -e . with Python $ver"; failed=1; continue; }
  "$work/venv-$ver/bin/mkdocs" build --strict -q -d "$work/site-$ver" \
    || { echo "   FAILED: mkdocs build --strict with Python $ver"; failed=1; continue; }
  if diff -r -q "$reference" "$work/site-$ver" >"$work/diff-$ver"; then
    echo "   byte-identical to the reference build"
  else
    echo "   DIFFERS from the reference build:"; head -20 "$work/diff-$ver"; failed=1
  fi
done
[ "${#seen[@]}" -gt 0 ] || { echo "no Python >= 3.11 found"; exit 1; }
rm -rf "$work"
exit "$failed"
