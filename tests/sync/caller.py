"""A script that calls the mesh with coterie.sync, as a user's would: no asyncio import.

    python -m tests.sync.caller PORT MODE

MODE ``close`` calls once, closes and ends; ``no-close`` calls once and
ends without closing; ``stuck`` leaves a request without a responder pending
in a daemon thread as it ends; ``interrupt`` waits for an answer that never
comes until SIGINT; ``fork`` makes the requester at import, forks
two children that call once each, then calls itself; ``used-fork`` calls
once before forking too. Each answer is printed as a JSON line with
``time.monotonic()`` (one clock for every process on Linux) and the pid.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

import coterie.sync
from coterie import DiscoveryOptions

PORT, MODE = int(sys.argv[1]), sys.argv[2]
CARD = {"type": "validate", "cardno": "4111111111111111"}

requester = coterie.sync.Requester(
    "script",
    discovery=DiscoveryOptions(
        port=PORT, broadcast="127.255.255.255", hello_interval=100, check_interval=200, log=False
    ),
    timeout=10.0,
)


def say(**fields: Any) -> None:
    # One write per line: forked processes share the pipe, and a short write is atomic.
    line = json.dumps({"pid": os.getpid(), "at": time.monotonic(), **fields}) + "\n"
    os.write(1, line.encode())


if MODE in ("close", "no-close"):
    answer = requester.send(CARD)
    if MODE == "close":
        requester.close()
    say(answer=answer)
elif MODE == "stuck":
    say(answer=requester.send(CARD))
    threading.Thread(
        target=requester.send, args=({"type": "nobody"},), kwargs={"timeout": None}, daemon=True
    ).start()
    time.sleep(0.1)
    say(answer="leaving")
elif MODE in ("fork", "used-fork"):
    if MODE == "used-fork":
        say(answer=requester.send(CARD), role="parent before fork")
    children = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            say(answer=requester.send(CARD), role="child")
            sys.exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    say(answer=requester.send(CARD), role="parent")
elif MODE == "interrupt":
    say(answer="waiting")
    try:
        requester.send({"type": "nobody"}, timeout=None)
    except KeyboardInterrupt:
        say(answer="interrupted", waiting=requester.stats().waiting)
else:
    raise SystemExit(f"unknown mode {MODE!r}")
