"""The one event-loop thread that every ``coterie.sync`` component runs on (internal).

Design: a process has at most one :class:`LoopThread`, a daemon thread that
runs an event loop (uvloop when installed) from the first call of any sync
component. A blocking call from any thread goes through :meth:`LoopThread.call`:

- **In.** The caller appends ``(context, function, args, waiter)`` to an
  inbox (a :class:`collections.deque`, whose ``append`` and ``popleft`` are
  atomic) and wakes the loop with ``call_soon_threadsafe`` only when no drain
  is already scheduled, so a burst from many threads costs one wake-up.
- **Run.** The drain calls ``function(*args)``, which returns a coroutine
  (``Requester.send`` itself), and steps it by hand in the caller's
  ``contextvars`` context (so a trace begun in a Flask view carries on):
  ``coro.send(None)`` until it yields the future it waits on, then again from
  that future's done callback. This is what a task does, without the task:
  no ``Task`` object, no extra loop turn per step. ``asyncio.current_task()``
  is ``None`` inside, which the components never ask.
- **Out.** The waiter is a bare lock created locked; the loop stores the
  value or the exception and releases it, and the caller's ``acquire``
  returns. No ``concurrent.futures.Future`` (a condition variable and
  callbacks) and no ``run_coroutine_threadsafe`` (a task and two futures).
- **Bounded waits.** A caller waits in slices of at most a second, and gives
  up when the loop thread has died or, when the call has a bound, a second
  past it: the call is then cancelled on the loop.

Fork: :func:`os.register_at_fork` forgets the loop thread in a child (it does
not exist there) and bumps :data:`generation`; components compare it and
build their asyncio component again on the child's own loop.

Exit: an :mod:`atexit` hook closes every component still running (so peers
hear goodbye), bounded by :data:`EXIT_TIMEOUT`, then stops the loop. The
thread is a daemon, so even a loop that does not stop never holds up the
interpreter's exit.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextvars
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

from coterie.components.base import Component
from coterie.errors import RequestTimeoutError

__all__ = ["EXIT_TIMEOUT", "LoopThread", "current", "generation", "in_event_loop", "lock"]

log = logging.getLogger("coterie.sync")

#: Seconds the exit hook gives the components still running to close.
EXIT_TIMEOUT: Final = 0.5
#: Seconds a caller waits at most between checks that the loop thread lives.
_SLICE: Final = 1.0
#: Seconds past a call's own bound before the caller gives up on the loop.
_GRACE: Final = 1.0

#: What runs on the loop: called there, it returns the coroutine to await.
Make = Callable[..., Coroutine[Any, Any, Any]]

_get_running_loop = asyncio._get_running_loop


def in_event_loop() -> bool:
    """Whether the calling thread runs an asyncio event loop right now."""
    return _get_running_loop() is not None


class _Waiter:
    """One blocking call: a lock held until the loop has the outcome."""

    __slots__ = ("error", "lock", "ok", "resume", "value", "waiting")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()
        self.ok = False
        self.value: Any = None
        self.error: BaseException | None = None
        #: The future the coroutine waits on now (to cancel it), and its callback.
        self.waiting: asyncio.Future[Any] | None = None
        self.resume: Callable[[Any], None] | None = None


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class LoopThread:
    """The process's event-loop thread, started by :func:`current` on first use."""

    def __init__(self) -> None:
        self.loop = _new_loop()
        self._inbox: collections.deque[
            tuple[contextvars.Context, Make, tuple[Any, ...], _Waiter, bool]
        ] = collections.deque()
        self._scheduled = False
        #: Asyncio components that are running, to close at exit.
        self.running: set[Component] = set()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="coterie-sync-loop", daemon=True)
        self.thread.start()
        self._ready.wait(10.0)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            self._ready.set()

    # -- calls from other threads ---------------------------------------------------

    def call(
        self, make: Make, args: tuple[Any, ...], bound: float | None = None, task: bool = False
    ) -> Any:
        """Run ``make(*args)`` on the loop, await the coroutine it returns, return its result.

        Args:
            make: Returns the coroutine to await on the loop.
            args: Its arguments.
            bound: Seconds the call may take by its own rules (a request's
                timeout), or ``None``; the caller gives up a second after it.
            task: Run the coroutine as a task (for one that asks for
                ``current_task()``, as ``asyncio.timeout`` does), not stepped
                by hand.

        Raises:
            Whatever the coroutine raises, as it raised it.
            RequestTimeoutError: The loop gave no outcome a second past ``bound``.
            RuntimeError: The loop thread is gone.
        """
        waiter = _Waiter()
        self._inbox.append((contextvars.copy_context(), make, args, waiter, task))
        if not self._scheduled:
            self._scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._drain)
            except RuntimeError as exc:  # closed: the interpreter is exiting
                raise RuntimeError(
                    "coterie.sync's event loop is closed (the process is exiting)"
                ) from exc
        try:
            if not waiter.lock.acquire(timeout=_SLICE):
                self._wait_longer(waiter, bound)
        except BaseException:  # KeyboardInterrupt too: the call is withdrawn
            self.loop.call_soon_threadsafe(_cancel, waiter)
            raise
        if waiter.ok:
            return waiter.value
        error = waiter.error
        assert error is not None
        raise error

    def _wait_longer(self, waiter: _Waiter, bound: float | None) -> None:
        started = time.monotonic() - _SLICE
        give_up = None if bound is None else started + bound + _GRACE
        while not waiter.lock.acquire(timeout=_SLICE):
            if not self.thread.is_alive():
                raise RuntimeError("coterie.sync's event-loop thread has stopped")
            if give_up is not None and time.monotonic() >= give_up:
                raise RequestTimeoutError(
                    f"coterie.sync's event loop gave no answer within {bound} s + "
                    f"{_GRACE} s: it is blocked (an observer or callback that blocks?)"
                )

    # -- on the loop ------------------------------------------------------------------

    def _drain(self) -> None:
        self._scheduled = False
        inbox = self._inbox
        while inbox:
            context, make, args, waiter, task = inbox.popleft()
            try:
                coro = context.run(make, *args)
            except BaseException as exc:  # noqa: BLE001 -- handed to the caller
                _fail(waiter, exc)
                continue
            if task:
                future = self.loop.create_task(coro, context=context)
                waiter.waiting = future
                future.add_done_callback(functools.partial(_settle, waiter))
            else:
                _step(coro, waiter, context)


def _settle(waiter: _Waiter, task: asyncio.Future[Any]) -> None:
    if task.cancelled():
        _fail(waiter, asyncio.CancelledError())
    elif (error := task.exception()) is not None:
        _fail(waiter, error)
    else:
        waiter.value, waiter.ok = task.result(), True
        waiter.lock.release()


def _fail(waiter: _Waiter, exc: BaseException) -> None:
    waiter.error = exc
    waiter.lock.release()


def _step(coro: Coroutine[Any, Any, Any], waiter: _Waiter, context: contextvars.Context) -> None:
    """Run ``coro`` until it waits on a future; go on from that future's callback."""
    try:
        yielded = context.run(coro.send, None)
    except StopIteration as stop:
        waiter.value, waiter.ok = stop.value, True
        waiter.waiting = None
        waiter.lock.release()
        return
    except BaseException as exc:  # noqa: BLE001 -- handed to the caller
        waiter.waiting = None
        _fail(waiter, exc)
        return
    if getattr(yielded, "_asyncio_future_blocking", None):
        yielded._asyncio_future_blocking = False
        waiter.waiting = yielded
        waiter.resume = resume = lambda _: _step(coro, waiter, context)
        yielded.add_done_callback(resume)
    elif yielded is None:  # a bare yield (asyncio.sleep(0)): go on next turn
        asyncio.get_running_loop().call_soon(_step, coro, waiter, context)
    else:
        coro.close()
        _fail(waiter, RuntimeError(f"coterie.sync cannot wait on {yielded!r}"))


def _cancel(waiter: _Waiter) -> None:
    """Withdraw an abandoned call: at once when stepped by hand, as a task's cancel otherwise."""
    waiting, resume = waiter.waiting, waiter.resume
    if waiting is None or waiting.done():
        return
    if resume is None:  # a task
        waiting.cancel()
        return
    waiting.remove_done_callback(resume)
    waiting.cancel()
    resume(waiting)  # the coroutine meets CancelledError now, not a loop turn later


# -- the process's one loop thread ------------------------------------------------------

_state_lock = threading.RLock()
_current: LoopThread | None = None
#: Bumped in a forked child: components made before then build their core again.
generation = 0


def lock() -> threading.RLock:
    """The lock that guards starting the loop and components (new in a forked child)."""
    return _state_lock


def current() -> LoopThread:
    """The process's loop thread, started now if it is not running."""
    global _current
    thread = _current
    if thread is not None:
        return thread
    with _state_lock:
        if _current is None:
            _current = LoopThread()
        return _current


def _after_fork_in_child() -> None:
    global _current, _state_lock, generation
    # The parent's loop thread does not exist here; its objects are left alone
    # (never closed: their sockets are the parent's too).
    if _current is not None:
        _orphans.append(_current)
    _current = None
    _state_lock = threading.RLock()
    generation += 1


#: Loop threads of a parent process, kept so that nothing of theirs is finalized.
_orphans: list[LoopThread] = []


async def _close_all(components: list[Component], timeout: float) -> None:
    tasks = [asyncio.ensure_future(c.close()) for c in components]
    if tasks:
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.debug("closing at exit failed: %r", task.exception())


def _at_exit() -> None:
    thread = _current
    if thread is None or not thread.thread.is_alive():
        return
    loop = thread.loop
    components = list(thread.running)
    if components:
        with_bound = asyncio.run_coroutine_threadsafe(_close_all(components, EXIT_TIMEOUT), loop)
        try:
            with_bound.result(EXIT_TIMEOUT + 0.2)
        except Exception:  # noqa: BLE001 -- exiting anyway
            log.debug("components did not close in time at exit")
    loop.call_soon_threadsafe(loop.stop)
    thread.thread.join(0.2)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
