"""``send(node=...)`` and ``gather``: one request to one chosen node, or to every one (issue 26).

Real sockets, host scope, a discovery port per test. Node cote responders
are covered in tests/interop/test_reqrep_interop.py.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from coterie import RemoteError, Requester, RequestTimeoutError, Responder
from tests.helpers import MS, DiscoveryFactory

SOON = 5_000 * MS


def _by(name: str) -> Any:
    return lambda req: {"by": name, "n": req.get("n")}


async def test_gather_asks_every_responder_once_and_send_node_pins_one(
    disc: DiscoveryFactory,
) -> None:
    async with (
        Responder("a", discovery=disc()) as a,
        Responder("b", discovery=disc()) as b,
        Responder("c", discovery=disc()) as c,
        Responder("other", discovery=disc()) as other,
        Requester("asker", discovery=disc()) as req,
    ):
        for rep in (a, b, c):
            rep.on("mem", _by(rep.name))
        other.on("unrelated", _by("other"))
        await req.wait_connected(4, timeout=SOON)
        answers = await req.gather({"type": "mem", "n": 1}, timeout=SOON)
        assert sorted(answers) == sorted([a.id, b.id, c.id])  # not "other"
        assert {node: answer["by"] for node, answer in answers.items()} == {
            a.id: "a",
            b.id: "b",
            c.id: "c",
        }
        # Pinned: every request goes to b, none elsewhere.
        results = await asyncio.gather(
            *(req.send({"type": "mem", "n": n}, node=b.id, timeout=SOON) for n in range(20))
        )
        assert Counter(r["by"] for r in results) == {"b": 20}
        assert (a.handled, b.handled, c.handled) == (1, 21, 1)


async def test_gather_marks_a_responder_that_did_not_answer_in_time(
    disc: DiscoveryFactory,
) -> None:
    async def hang(req: dict[str, Any]) -> None:
        await asyncio.sleep(60)

    def boom(req: dict[str, Any]) -> None:
        raise KeyError("cardno")

    async with (
        Responder("fast", discovery=disc()) as fast,
        Responder("hung", discovery=disc()) as hung,
        Responder("broken", discovery=disc()) as broken,
        Requester("asker", discovery=disc()) as req,
    ):
        fast.on("mem", _by("fast"))
        hung.on("mem", hang)
        broken.on("mem", boom)
        await req.wait_connected(3, timeout=SOON)
        started = time.monotonic()
        answers = await req.gather({"type": "mem"}, timeout=400 * MS)
        took = time.monotonic() - started
        assert answers[fast.id] == {"by": "fast", "n": None}
        assert type(answers[hung.id]) is RequestTimeoutError
        assert type(answers[broken.id]) is RemoteError
        assert "cardno" in str(answers[broken.id])
        assert 390 * MS <= took < 3_000 * MS  # the others came back at the bound


async def test_gather_and_node_say_clearly_when_there_is_no_one_to_ask(
    disc: DiscoveryFactory,
) -> None:
    async with Requester("asker", discovery=disc()) as req:
        with pytest.raises(LookupError, match=r"gather: no linked responder serves 'mem'; 0 resp"):
            await req.gather({"type": "mem"}, timeout=SOON)
        with pytest.raises(LookupError, match="node 'nobody' is not linked"):
            await req.send({"type": "mem"}, node="nobody", timeout=SOON)
        assert req.stats().waiting == 0 and req.stats().in_flight == 0
        async with Responder("a", discovery=disc()) as a:
            a.on("mem", _by("a"))
            await req.wait_connected(1, timeout=SOON)
            with pytest.raises(LookupError, match=r"does not serve 'disk'"):
                await req.send({"type": "disk"}, node=a.id, timeout=SOON)
            with pytest.raises(LookupError, match=r"in subset 'eu'"):
                await req.gather({"type": "mem", "__subset": "eu"}, timeout=SOON)
            # "a request must be a dict", or the compiled build's own "dict object expected"
            with pytest.raises(TypeError, match="dict"):
                await req.gather(["mem"], timeout=SOON)  # type: ignore[arg-type]
            assert await req.send({"type": "mem", "n": 2}, node=a.id, timeout=SOON) == {
                "by": "a",
                "n": 2,
            }
