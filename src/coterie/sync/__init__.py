"""coterie.sync: the blocking front end, for Django and Flask views, scripts and notebooks.

The same components as :mod:`coterie`, over the same core, with blocking
methods that any thread may call::

    import coterie.sync

    requester = coterie.sync.Requester("payment service")  # once, at import


    def card_is_valid(cardno: str) -> bool:  # from any thread: a view, a task, a script
        return requester.send({"type": "validate", "cardno": cardno}, timeout=5)

- :class:`Requester` takes :class:`coterie.Requester`'s arguments; ``send``
  returns the answer or raises the asyncio API's errors, with its messages.
- :class:`Publisher` ``.publish(topic, data)``; :class:`Subscriber`
  ``.on(topic, fn)`` runs plain callables on a bounded thread pool.
- ``close()`` and ``with`` both work; a call after ``close()`` raises
  :class:`coterie.NotRunningError`.

Design (websockets' ``sync/`` beside its ``asyncio/``): every sync component
wraps an asyncio component, and all of them in a process share one daemon
event-loop thread, started on first use (:mod:`coterie.sync._loop`). A call
hands the component's own coroutine to that loop and blocks on a lock until
the outcome is back, so nothing of the protocol is written twice. A process
forked after import (``gunicorn --preload``) builds its components again on
its own loop on first use; the interpreter exits within a second of the last
call, ``close()`` or not. Called from a thread that runs an event loop, a
blocking method raises :class:`RuntimeError` that names the asyncio API
instead (blocking there would stall that loop). See docs/sync.md.
"""

from coterie.sync._components import Publisher, Requester, Subscriber

__all__ = ["Publisher", "Requester", "Subscriber"]
