"""Time to first contact: a new requester process meets a running responder.

Design: the responder is started first and left running for a while (the
wait varies over the rounds across a hello interval, the same waits for both
implementations, so neither gets a lucky phase of the responder's hello
timer). Then a requester process starts with ``firstContact``: it sends one
request at once and reports the time from creating its component to the
reply. Default discovery timing, as a user gets it. The driver also notes the
time from spawning the process to that report, which adds interpreter start.
"""

from __future__ import annotations

import asyncio

from bench.model import Context, Row
from bench.proc import Group
from bench.scenarios.common import REQUEST, start_responders

#: cote's default hello interval, in seconds.
HELLO_INTERVAL = 2.0


async def run(ctx: Context) -> list[Row]:
    """Measure first contact for every implementation."""
    p = ctx.params
    contact = Row(
        "contact",
        "time to first contact (component start -> first reply)",
        "ms",
        higher_is_better=False,
        target="<= 100 ms",
        check=lambda ours, theirs: ours <= 100,
    )
    with_start = Row(
        "contact_proc",
        "time to first contact incl. process start",
        "ms",
        higher_is_better=False,
    )
    for round_no in range(p.contact_rounds):
        settle = p.contact_settle + (round_no / max(1, p.contact_rounds)) * (
            0 if p.smoke else HELLO_INTERVAL
        )
        for impl in ctx.order(round_no):
            async with Group() as group:
                await start_responders(group, impl, 1)
                await asyncio.sleep(settle)
                req = await group.spawn(
                    impl,
                    "requester",
                    impl.config(
                        name=f"{impl.name} newcomer",
                        firstContact={"req": REQUEST, "timeout": 10000},
                    ),
                )
                event = await req.expect("first_contact", timeout=20.0)
                if event.get("err"):
                    ctx.notes.append(f"{impl.name}: first contact failed: {event['err']}")
                    continue
                contact.add(impl.name, float(event["ms"]))
                with_start.add(impl.name, (event["_at"] - req.started_at) * 1000)
                ctx.log(
                    f"round {round_no + 1} {impl.name:7} first contact {event['ms']:8.1f} ms "
                    f"(responder up {settle:.2f} s)"
                )
    return [contact, with_start]
