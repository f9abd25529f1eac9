#!/usr/bin/env bash
# Non-blocking check of the exit route from MkDocs 1.6 (site-toolchain.md §1.2): does the site build
# with ProperDocs, MkDocs' drop-in continuation? Installs properdocs==1.6.7 with `pip --target` into a
# throwaway directory (its dependencies are MkDocs 1.6's, already installed), runs
# `properdocs build --strict` into another throwaway directory, and prints "properdocs: works" or
# "properdocs: fails (<reason>)". It always exits 0: ProperDocs is not what deploys the site.
#
# Usage: scripts/check_properdocs.sh        (PYTHON=... to choose the interpreter; default: python3)
set -uo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
VERSION="1.6.7"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

report() {  # report works|fails [reason] -- and stop with status 0
  if [ "$1" = works ]; then echo "properdocs: works (properdocs==$VERSION, build --strict)"
  else echo "properdocs: fails ($2)"; fi
  exit 0
}

if ! "$PY" -m pip install -q --disable-pip-version-check --no-deps --target "$work/pkg" "properdocs==$VERSION" \
     >"$work/pip.log" 2>&1; then
  report fails "cannot install properdocs==$VERSION: $(grep -m1 -i error "$work/pip.log" || tail -n1 "$work/pip.log")"
fi

export NO_MKDOCS_2_WARNING=1 SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1767225600}"
PYTHONPATH="$work/pkg${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m properdocs build --strict -f mkdocs.yml \
  -d "$work/site" >"$work/build.log" 2>&1
rc=$?
if [ "$rc" -eq 0 ]; then
  [ -f "$work/site/index.html" ] || report fails "build exited 0 but wrote no index.html"
  report works
fi
reason="$(grep -E -m1 "^(ERROR|Error|Aborted)|Error:|Exception" "$work/build.log" || tail -n1 "$work/build.log")"
report fails "exit $rc: ${reason}"
