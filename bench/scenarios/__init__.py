"""The bench scenarios, in the order they run.

Each module has ``async def run(ctx) -> list[Row]``.
"""

from __future__ import annotations

from bench.scenarios import contact, failover, handlers, http, peers, pubsub, reqrep, rss, sync

#: name -> module, in run order.
SCENARIOS = {
    "reqrep": reqrep,
    "handlers": handlers,
    "peers": peers,
    "sync": sync,
    "contact": contact,
    "failover": failover,
    "pubsub": pubsub,
    "rss": rss,
    "http": http,
}
