#!/usr/bin/env bash
# Checks what `make dist` built (issue 29 item 11): installs the wheel into a
# fresh venv (no source tree on its path), then runs a smoke test there:
# import, `coterie --version`, and one request from a requester to a
# responder in host scope (discovery stays on this host: 127.255.255.255).
# auditwheel, when installed, shows the wheel's platform tags.
# Usage: check-dist.sh DIST [WHEEL]; PY names the interpreter for the venv.
set -euo pipefail
dist=${1:-dist}
py=${PY:-python3}
wheel=${2:-$(ls "$dist"/coterie-*.whl | head -n 1)}
ls "$dist"/coterie-*.tar.gz >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q "$wheel"
cd "$tmp"
export COTE_BROADCAST_ADDRESS=127.255.255.255
"$tmp/venv/bin/coterie" --version
timeout 60 "$tmp/venv/bin/python" - <<'PY'
import asyncio

import coterie


async def main() -> None:
    async with coterie.Responder(name="dist smoke") as responder:
        responder.on("add", lambda req: req["a"] + req["b"])
        async with coterie.Requester(name="dist smoke client", timeout=20) as requester:
            answer = await requester.send({"type": "add", "a": 2, "b": 3})
    assert answer == 5, answer
    print(f"dist smoke: coterie {coterie.__version__} from {coterie.__file__}: 2 + 3 = {answer}")


asyncio.run(main())
PY
if command -v auditwheel >/dev/null 2>&1; then
  auditwheel show "$wheel"
else
  echo "check-dist: auditwheel not installed; the wheel keeps its linux tag ($(basename "$wheel"))"
fi
