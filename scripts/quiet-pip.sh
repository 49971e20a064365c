#!/usr/bin/env bash
# Runs pip (the command and arguments given) without one harmless warning:
#
#   WARNING: Location 'file:///opt/pypi/simple/orjson/' is ignored: it is
#   neither a file nor a directory.
#
# A machine whose pip configuration names an extra index or find-links
# directory that lacks a package prints it once per package looked up
# (about 50 lines for `make setup`). The configuration itself is left alone,
# so mirrors, certificates and proxies set there still apply. Everything else
# pip prints is kept, and pip's exit code is this script's.
set -uo pipefail
{ "$@" 2>&1 1>&3 3>&- |
    { grep -v -E "^WARNING: Location '[^']*' is ignored: it is neither a file nor a directory\.$" || true; } >&2; } 3>&1
