"""coterie's handler patterns against the EventEmitter2 that cote 1.2.0 ships.

cote's components are EventEmitter2 emitters (``wildcard: true``, delimiter
``::``); :func:`coterie.protocol.patterns.matches` must take the same names.
The script below only builds emitters: it opens no socket.
"""

from __future__ import annotations

import asyncio
import json

from coterie.protocol.patterns import matches
from tests.helpers import MS
from tests.interop.nodepeer import NODE_MODULES
from tests.protocol.test_patterns import EVENTEMITTER2, NAMES

SCRIPT = """
const EE = require(process.argv[1]).EventEmitter2
const [patterns, names] = JSON.parse(process.argv[2])
const out = {}
for (const p of patterns) {
  const e = new EE({ wildcard: true, delimiter: '::' })
  const hit = []
  e.on(p, function () { hit.push(this.event) })
  for (const n of names) e.emit(n)
  out[p] = hit
}
process.stdout.write(JSON.stringify(out))
"""


async def test_handler_patterns_match_eventemitter2() -> None:
    patterns = [*EVENTEMITTER2, "user.*", "orders*"]
    proc = await asyncio.create_subprocess_exec(
        "node", "-e", SCRIPT, str(NODE_MODULES / "eventemitter2"),
        json.dumps([patterns, NAMES]),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(10_000 * MS):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    node = json.loads(out)

    ours = {p: [n for n in NAMES if matches(p, n)] for p in patterns}
    # The one extension: a "*" inside a segment is a glob in coterie, a literal in EventEmitter2.
    assert node.pop("user.*") == ["user.*"] and ours.pop("user.*") == ["user.x", "user.*"]
    assert node.pop("orders*") == [] and ours.pop("orders*") == ["ordersX"]
    assert ours == node == EVENTEMITTER2
