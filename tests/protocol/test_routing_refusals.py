"""A responder's ``queue_full`` refusal: the request never ran, so it goes elsewhere."""

from __future__ import annotations

from typing import Any

from coterie.errors import QueueFullError
from coterie.protocol.routing import Drained, Fail, Resolve, Router
from tests.protocol.helpers import ANY, answers, ok, req, sends

FULL: dict[str, Any] = {"message": "a: 2 handlers in progress, 0 waiting", "code": "queue_full"}


def test_a_refused_request_goes_to_another_responder_even_without_retry() -> None:
    router = Router(balance="pending")
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    ((peer, frame),) = sends(router.submit(req(0, retry=False), 0))
    other = "b" if peer == "a" else "a"
    out = router.reply(peer, [FULL, "r0"], 1)
    assert sends(out) == [(other, frame)]
    assert answers(out) == []
    assert router.resent == 1
    assert router.traffic()[peer] == (1, 0)  # a refusal is no handler error
    assert isinstance(router.reply(other, ok("r0"), 2)[0], Resolve)


def test_a_request_every_responder_refused_fails_with_queue_full() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    ((first, _),) = sends(router.submit(req(0), 0))
    ((second, _),) = sends(router.reply(first, [FULL, "r0"], 1))
    assert second != first
    out = router.reply(second, [FULL, "r0"], 2)
    (failed,) = answers(out)
    assert isinstance(failed, Fail)
    assert isinstance(failed.error, QueueFullError)
    assert "refused unrun by every responder that serves it (2)" in str(failed.error)
    assert "max_queue" in str(failed.error)
    assert sends(out) == []
    assert router.waiting == 0


def test_a_responder_that_is_leaving_does_not_count_as_one_to_try() -> None:
    router = Router(settle=0)
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    router.peer_leaving("b")  # up, but takes nothing new
    router.submit(req(0), 0)
    (failed,) = answers(router.reply("a", [FULL, "r0"], 1))
    assert isinstance(failed, Fail)
    assert isinstance(failed.error, QueueFullError)
    assert "(1)" in str(failed.error)


def test_a_leaving_responder_that_refused_its_last_request_is_drained() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    ((peer, frame),) = sends(router.submit(req(0), 0))
    router.peer_leaving(peer)
    out = router.reply(peer, [FULL, "r0"], 1)
    other = "b" if peer == "a" else "a"
    assert Drained(peer) in out
    assert sends(out) == [(other, frame)]
