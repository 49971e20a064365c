"""Going on with a coroutine that was already stepped once (internal).

Design: the responder runs a coroutine handler eagerly, as Python 3.12's
eager task factory does: it calls ``coro.send(None)`` at once, in the read
callback, and most handlers finish there without waiting, so they cost no
task. A coroutine that does wait has by then yielded the future it waits on
(or ``None`` for a bare yield, as ``asyncio.sleep(0)`` does). A task cannot
take over such a coroutine directly: it would send into it again before the
future is done. :func:`resume` is the glue: a generator-based coroutine that
first yields that very future to the task driving it, then passes every
value sent and every exception thrown straight on to the coroutine, exactly
as ``await coro`` would have from that point on. So the task waits on the
handler's own future, a cancellation reaches the handler where it waits, and
the coroutine's return value or exception is the task's. This works the same
on Python 3.11 (which has no eager tasks) and later.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["resume"]


@types.coroutine
def resume(coro: Coroutine[Any, Any, Any], waiting: Any) -> Generator[Any, Any, Any]:
    """Await ``coro``, which has already been stepped once and yielded ``waiting``.

    Args:
        coro: A started coroutine, suspended at the yield that gave ``waiting``.
        waiting: What that first step yielded (a future, or ``None``).

    Returns:
        What ``coro`` returns; its exception propagates.
    """
    send, throw = coro.send, coro.throw
    yielded = waiting
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        # A cancellation, or a failed future: the handler's.
        except BaseException as exc:  # noqa: BLE001
            try:
                yielded = throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = send(sent)
            except StopIteration as stop:
                return stop.value
