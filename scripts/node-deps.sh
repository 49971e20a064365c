#!/usr/bin/env bash
# Installs the Node reference (cote 1.2.0, pinned by package-lock.json) into
# DIR/node_modules with `npm ci`. Only the interop tests need it: when npm is
# missing or `npm ci` fails (offline, an old npm), this warns that those tests
# will skip and exits 0, so `make setup` goes on and the demo still runs.
# Usage: bash scripts/node-deps.sh DIR
set -uo pipefail
dir=${1:?usage: node-deps.sh DIR}
warn() {
  echo "node-deps: $1" >&2
  echo "node-deps: the interop tests (real Node cote) will skip; the demo and the rest need no Node." >&2
  echo "node-deps: to get them later: npm ci --prefix $dir" >&2
}
if ! command -v npm >/dev/null 2>&1; then
  warn "npm is not installed"
  exit 0
fi
if ! npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error; then
  warn "\`npm ci --prefix $dir\` failed (see above)"
fi
exit 0
