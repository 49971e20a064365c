#!/usr/bin/env bash
# `make dist` on the other supported Pythons (3.12, 3.13): for each one found
# (under pyenv's versions, or on PATH as python3.X), builds its wheel into
# DIST and checks it with scripts/check-dist.sh. A Python that is not on this
# machine is skipped with a message, not an error.
set -euo pipefail
dist=${1:-dist}
for version in 3.12 3.13; do
  # pyenv's own builds first: its shims on PATH exist even for versions that
  # are not selected, and fail when run.
  py=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".*/bin/python 2>/dev/null | tail -n 1 || true)
  if [ -z "$py" ]; then
    py=$(command -v "python$version" || true)
  fi
  if [ -z "$py" ] || ! "$py" -c "" >/dev/null 2>&1; then
    echo "dist: no Python $version here (not on PATH, not in pyenv); its wheel is skipped"
    continue
  fi
  before=$(ls "$dist"/*.whl)
  # From the sdist, in pip's own build directory: a build in the source tree
  # would replace the tree's compiled modules (src/coterie/_compiled) with
  # this Python's.
  "$py" -m pip wheel -q --no-deps -w "$dist" "$(ls "$dist"/coterie-*.tar.gz | head -n 1)"
  wheel=$(ls "$dist"/*.whl | grep -vxF "$before")
  PY=$py bash scripts/check-dist.sh "$dist" "$wheel"
done
