"""The blocking Requester, Publisher and Subscriber (internal; see :mod:`coterie.sync`).

Design: each sync component wraps one asyncio component of :mod:`coterie`
(its *core*), built at once from the same arguments (so a bad argument fails
where it is given) and started on :mod:`coterie.sync._loop`'s thread on first
use. Every method is a blocking :meth:`~coterie.sync._loop.LoopThread.call`
of the core's own coroutine, so answers, errors and their messages are the
asyncio API's. Nothing here decides anything the core decides.

- The hot path of :meth:`Requester.send` is one check (running, in this
  process) and one call; starting, closing and rebuilding after a fork take
  the module's lock.
- After a fork, the core of the parent's process is left alone and a new one
  is built from the saved arguments on the child's loop (``gunicorn
  --preload``: made at import in the master, used in every worker).
- A component dropped without ``close()`` is closed on the loop when it is
  garbage collected, and at exit by the loop's exit hook.
- A call from a thread that runs an event loop raises :class:`RuntimeError`
  naming the asyncio API: blocking there would stall that loop (or, on the
  sync loop's own thread, wait for itself forever).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Final, Generic, Self, TypeVar, overload

from coterie._logbudget import LogBudget
from coterie.components.base import Component
from coterie.components.publisher import Publisher as AsyncPublisher
from coterie.components.requester import _UNSET, _Unset
from coterie.components.requester import Requester as AsyncRequester
from coterie.components.subscriber import Subscriber as AsyncSubscriber
from coterie.errors import NotRunningError
from coterie.observe import RequesterStats, Stats
from coterie.sync import _loop
from coterie.sync._loop import LoopThread, in_event_loop
from coterie.typed import Contract, answer_checker, request_body

__all__ = ["Publisher", "Requester", "Subscriber"]

log = logging.getLogger("coterie.sync")

#: Seconds a caller waits at most for a component to start (discovery bound) or close.
START_TIMEOUT: Final = 30.0
CLOSE_TIMEOUT: Final = 10.0

C = TypeVar("C", bound=Component)
H = TypeVar("H", bound=Callable[..., Any])
#: The answer type of a typed call (coterie.typed).
R = TypeVar("R")


def _in_loop_error(what: str, instead: str) -> RuntimeError:
    return RuntimeError(
        f"coterie.sync.{what} blocks, and this thread runs an asyncio event loop: "
        f"use the asyncio API here instead ({instead})"
    )


async def _start(core: Component, thread: LoopThread) -> None:
    await core.start()
    thread.running.add(core)


async def _stop(core: Component, thread: LoopThread) -> None:
    thread.running.discard(core)
    await core.close()


async def _stats(core: Component) -> Stats:
    return core.stats()


def _stop_soon(core: Component, thread: LoopThread, generation: int) -> None:
    """Close ``core`` without waiting: its sync component was garbage collected."""
    if generation != _loop.generation or not thread.thread.is_alive():
        return  # a forked child: the core is the parent's
    try:
        thread.loop.call_soon_threadsafe(_stop_task, core, thread)
    except RuntimeError:  # the loop is closed: exiting
        return


def _stop_task(core: Component, thread: LoopThread) -> None:
    thread.loop.create_task(_stop(core, thread))


class _SyncComponent(Generic[C]):
    """Builds, starts, rebuilds after a fork, and closes one asyncio component."""

    #: The asyncio component class this one wraps.
    _core_class: ClassVar[type[Component]]

    def __init__(self, name: str | None, kwargs: dict[str, Any]) -> None:
        self._name = name
        self._kwargs = kwargs
        self._core: C = self._build()
        self._generation = _loop.generation
        #: The loop thread while the core runs there, in this process; else None.
        self._thread: LoopThread | None = None
        self._closed = False
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def _build(self) -> C:
        core: C = self._core_class(self._name, **self._kwargs)  # type: ignore[assignment]
        return core

    def __repr__(self) -> str:
        return f"coterie.sync.{type(self).__name__}({self._core.name!r})"

    @property
    def name(self) -> str:
        """The name shown to peers."""
        return self._core.name

    def _live(self) -> tuple[LoopThread, C]:
        """The loop thread and the started core: the hot path, one check."""
        thread = self._thread
        if thread is None or self._generation != _loop.generation:
            return self._running()
        return thread, self._core

    def _running(self) -> tuple[LoopThread, C]:
        """The loop thread and the started core, starting it now if needed (slow path).

        Raises:
            NotRunningError: ``close()`` was called.
        """
        with _loop.lock():
            if self._closed:
                raise NotRunningError(
                    f"{self!r} is closed: make a new one (or use it in one 'with' block)"
                )
            if self._generation != _loop.generation:  # a forked child
                self._core = self._build()
                self._generation = _loop.generation
                self._thread = None
                if self._finalizer is not None:
                    self._finalizer.detach()
            thread = self._thread
            if thread is None:
                thread = _loop.current()
                thread.call(_start, (self._core, thread), START_TIMEOUT, task=True)
                self._finalizer = weakref.finalize(
                    self, _stop_soon, self._core, thread, self._generation
                )
                self._finalizer.atexit = False  # the loop's exit hook closes it
                self._thread = thread
            return thread, self._core

    def start(self) -> Self:
        """Join the mesh now rather than on first use. Idempotent.

        Raises:
            NotRunningError: ``close()`` was called.
            RuntimeError: Called from a thread that runs an event loop.
        """
        if in_event_loop():
            raise _in_loop_error(f"{type(self).__name__}.start()", "'async with'")
        self._running()
        return self

    def stats(self) -> Stats:
        """The asyncio component's ``stats()`` (:mod:`coterie.observe`), read on its loop."""
        if in_event_loop():
            raise _in_loop_error(f"{type(self).__name__}.stats()", "the asyncio API")
        with _loop.lock():
            thread = self._thread if self._generation == _loop.generation else None
            core = self._core
        if thread is None:  # not running here: nothing else touches it
            return core.stats()
        stats: Stats = thread.call(_stats, (core,))
        return stats

    def close(self) -> None:
        """Leave the mesh (bounded: a few seconds at most). Idempotent.

        Later calls raise :class:`~coterie.NotRunningError`.
        """
        if in_event_loop():
            raise _in_loop_error(f"{type(self).__name__}.close()", "await close()")
        with _loop.lock():
            if self._closed:
                return
            self._closed = True
            thread, self._thread = self._thread, None
            if self._finalizer is not None:
                self._finalizer.detach()
            if self._generation != _loop.generation:
                thread = None  # the parent's core, never started in this process
        if thread is not None:
            thread.call(_stop, (self._core, thread), CLOSE_TIMEOUT, task=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Requester(_SyncComponent[AsyncRequester]):
    """Sends requests and blocks for the answers; :class:`coterie.Requester`'s arguments.

    Safe to share between threads (make one per process, at import, and use
    it from every view). See :mod:`coterie.sync`.

    Args:
        name: Name shown to peers.
        **kwargs: Every keyword of :class:`coterie.Requester` (``namespace``,
            ``key``, ``timeout``, ``balance``, ``discovery``, ``tls``, ...).
    """

    _core_class = AsyncRequester

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name, kwargs)

    def stats(self) -> RequesterStats:
        """Requests in flight and waiting, per responder (``RequesterStats``)."""
        stats = super().stats()
        assert isinstance(stats, RequesterStats)
        return stats

    def send(
        self,
        request: dict[str, Any],
        *,
        timeout: float | _Unset | None = _UNSET,
        retry: bool = True,
    ) -> Any:
        """Send a request and return the responder's result, as :meth:`coterie.Requester.send`.

        Args:
            request: A JSON-serialisable dict with a ``type``.
            timeout: Seconds for this request, waiting included; defaults to
                ``__timeout`` or the requester's ``timeout``; ``None`` waits
                without bound.
            retry: Resend to another responder if the link carrying it is lost.

        Raises:
            RemoteError, RequestTimeoutError, LinkLostError, QueueFullError,
            FrameTooLargeError, TypeError, ValueError: As the asyncio API,
                with the same messages.
            NotRunningError: ``close()`` was called.
            RuntimeError: Called from a thread that runs an event loop.
        """
        if in_event_loop():
            raise _in_loop_error("Requester.send()", "await coterie.Requester(...).send(...)")
        thread, core = self._live()
        if timeout is _UNSET:
            wire = request.get("__timeout") if type(request) is dict else None
            bound = wire / 1000 if isinstance(wire, int | float) and wire > 0 else core.timeout
            if retry:
                return thread.call(core.send, (request,), bound)
        else:
            bound = timeout
        return thread.call(_send, (core, request, timeout, retry), bound)

    @overload
    def call(
        self,
        request: Any,
        *,
        returns: type[R],
        timeout: float | _Unset | None = _UNSET,
        retry: bool = True,
    ) -> R: ...

    @overload
    def call(
        self,
        request: Contract[R],
        *,
        timeout: float | _Unset | None = _UNSET,
        retry: bool = True,
    ) -> R: ...

    @overload
    def call(
        self,
        request: dict[str, Any],
        *,
        timeout: float | _Unset | None = _UNSET,
        retry: bool = True,
    ) -> Any: ...

    def call(
        self,
        request: Any,
        *,
        returns: Any = None,
        timeout: float | _Unset | None = _UNSET,
        retry: bool = True,
    ) -> Any:
        """A typed :meth:`send`: a request model in, its checked answer out.

        As :meth:`coterie.Requester.call` (see :mod:`coterie.typed`), blocking.
        """
        check = answer_checker(request, returns)
        answer = self.send(request_body(request), timeout=timeout, retry=retry)
        return answer if check is None else check(answer)


def _send(core: AsyncRequester, request: Any, timeout: Any, retry: bool) -> Any:
    return core.send(request, timeout=timeout, retry=retry)


class Publisher(_SyncComponent[AsyncPublisher]):
    """Publishes events; takes :class:`coterie.Publisher`'s arguments.

    Args:
        name: Name shown to peers.
        **kwargs: Every keyword of :class:`coterie.Publisher`.
    """

    _core_class = AsyncPublisher

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name, kwargs)

    def publish(self, topic: str, data: Any = None) -> int:
        """Send ``data`` as ``topic`` to every subscriber (:meth:`coterie.Publisher.publish`).

        Returns:
            How many subscribers it was queued for (none connected: 0, and
            it is dropped, as cote does; see :meth:`wait_subscribers`).

        Raises:
            TypeError, ValueError, FrameTooLargeError: As the asyncio API.
            NotRunningError: ``close()`` was called.
            RuntimeError: Called from a thread that runs an event loop.
        """
        if in_event_loop():
            raise _in_loop_error("Publisher.publish()", "await coterie.Publisher(...).publish()")
        thread, core = self._live()
        count: int = thread.call(core.publish, (topic, data))
        return count

    def wait_subscribers(self, count: int = 1, timeout: float = 10.0) -> None:
        """Block until at least ``count`` subscribers are connected.

        Raises:
            TimeoutError: When they are not within ``timeout`` seconds.
        """
        if in_event_loop():
            raise _in_loop_error(
                "Publisher.wait_subscribers()", "await coterie.Publisher(...).wait_subscribers()"
            )
        thread, core = self._running()
        thread.call(core.wait_subscribers, (count, timeout), timeout, task=True)


class _Pool:
    """A bounded pool of daemon threads that runs subscriber handlers.

    At most ``workers`` threads and ``max_queued`` calls waiting; a call
    beyond that is dropped, counted and logged (rate-limited), never
    allowed to stall the loop thread. Rebuilt in a forked child.
    """

    def __init__(self, workers: int, max_queued: int) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        if isinstance(max_queued, bool) or not isinstance(max_queued, int) or max_queued < 1:
            raise ValueError(f"max_queued must be a positive int, got {max_queued!r}")
        self.workers = workers
        self.max_queued = max_queued
        self.dropped = 0
        self._drops = LogBudget(log)
        self._fresh()

    def _fresh(self) -> None:
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.Queue(
            self.max_queued
        )
        self._threads: list[threading.Thread] = []
        self._generation = _loop.generation

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Queue ``fn(*args)`` (on the loop thread: never blocks)."""
        if self._generation != _loop.generation:
            self._fresh()
        try:
            self._queue.put_nowait((fn, args))
        except queue.Full:
            self.dropped += 1
            self._drops.warning(
                "subscriber handlers are too slow: %d event(s) dropped, %d wait to run "
                "on %d thread(s) (raise workers= or max_queued=)",
                self.dropped,
                self.max_queued,
                self.workers,
            )
            return
        if len(self._threads) < self.workers:
            thread = threading.Thread(
                target=self._work, name=f"coterie-sync-handler-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _work(self) -> None:
        jobs = self._queue
        while True:
            fn, args = jobs.get()
            try:
                fn(*args)
            except Exception:
                log.exception("subscriber handler %r failed", fn)
            finally:
                jobs.task_done()

    def join(self, timeout: float) -> bool:
        """Wait until every queued call has run, at most ``timeout`` s; whether it did."""
        jobs = self._queue
        deadline = time.monotonic() + timeout
        with jobs.all_tasks_done:
            while jobs.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                jobs.all_tasks_done.wait(left)
        return True


async def _register(core: AsyncSubscriber, event: str, dispatch: Callable[..., Any]) -> None:
    core.on(event, dispatch)


class Subscriber(_SyncComponent[AsyncSubscriber]):
    """Receives events and runs plain handlers on a bounded thread pool.

    Args:
        name: Name shown to peers.
        workers: Threads that run handlers (at most); 8 by default.
        max_queued: Events that may wait for a thread; beyond it an event is
            dropped and counted (:attr:`dropped`) with a WARNING.
        **kwargs: Every keyword of :class:`coterie.Subscriber`
            (``subscribes_to``, ``namespace``, ``key``, ...).
    """

    _core_class = AsyncSubscriber

    def __init__(
        self,
        name: str | None = None,
        *,
        workers: int = 8,
        max_queued: int = 10_000,
        **kwargs: Any,
    ) -> None:
        self._pool = _Pool(workers, max_queued)
        self._handlers: list[tuple[str, Callable[..., Any]]] = []
        super().__init__(name, kwargs)

    @property
    def dropped(self) -> int:
        """Events dropped because every handler thread was busy and the queue full."""
        return self._pool.dropped

    def _build(self) -> AsyncSubscriber:
        core = super()._build()
        for event, fn in self._handlers:
            core.on(event, self._dispatcher(fn))
        return core

    def _dispatcher(self, fn: Callable[..., Any]) -> Callable[..., None]:
        submit = self._pool.submit

        def dispatch(*args: Any) -> None:
            submit(fn, args)

        return dispatch

    @overload
    def on(self, event: str) -> Callable[[H], H]: ...

    @overload
    def on(self, event: str, handler: H) -> H: ...

    def on(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Run ``handler`` on the pool for each event; starts the subscriber. A decorator too.

        ``handler(data)`` for a name, ``handler(event, data)`` for a ``*``
        pattern, as :meth:`coterie.Subscriber.on`; plain callables only.

        Raises:
            TypeError: ``handler`` is not callable, or is a coroutine function.
            ValueError: ``event`` is not a non-empty string.
            NotRunningError: ``close()`` was called.
        """
        if not isinstance(event, str) or not event:
            raise ValueError("event must be a non-empty string")

        def register(fn: H) -> H:
            import inspect

            if in_event_loop():
                raise _in_loop_error("Subscriber.on()", "coterie.Subscriber(...).on()")
            if not callable(fn):
                raise TypeError(f"handler for {event!r} is not callable")
            if inspect.iscoroutinefunction(fn):
                raise TypeError(
                    f"handler for {event!r} is a coroutine function: coterie.sync runs plain "
                    "callables on threads; use coterie.Subscriber for coroutine handlers"
                )
            with _loop.lock():
                if self._closed:
                    raise NotRunningError(f"{self!r} is closed: make a new one")
                self._handlers.append((event, fn))
                thread = self._thread if self._generation == _loop.generation else None
                if thread is None:  # not started here: the core is ours alone
                    self._core.on(event, self._dispatcher(fn))
            if thread is not None:
                thread.call(_register, (self._core, event, self._dispatcher(fn)))
            else:
                self._running()
            return fn

        return register(handler) if handler is not None else register

    def close(self, timeout: float = 5.0) -> None:
        """Leave the mesh, then wait up to ``timeout`` s for queued handlers to run."""
        super().close()
        self._pool.join(timeout)
