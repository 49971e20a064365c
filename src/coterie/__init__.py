"""coterie: zero-configuration microservices for asyncio, wire-compatible with cote.

Components find each other on the network with no configuration and talk over
load-balanced TCP links using cote 1.2.0's wire format, so Python and Node
services share one mesh. A responder serves while its ``async with`` block
runs, so the requester works inside it::

    import asyncio

    from coterie import Requester, Responder


    async def main() -> None:
        async with Responder(name="validation service") as responder:
            responder.on("validate", lambda req: req["cardno"] == "4111111111111111")

            async with Requester(name="payment service") as requester:
                card = {"type": "validate", "cardno": "4111111111111111"}
                print(await requester.send(card, timeout=5))  # True


    asyncio.run(main())  # COTE_BROADCAST_ADDRESS=127.255.255.255 keeps it on this host
"""

import importlib
from typing import TYPE_CHECKING, Any

# First: importing it chooses, once, compiled or pure-Python request-path modules.
from coterie import _native  # noqa: F401
from coterie._version import __version__
from coterie.components.responder import Responder
from coterie.discovery.medium import DiscoveryTransport
from coterie.discovery.options import DiscoveryOptions, EtcdSettings, RedisSettings
from coterie.errors import (
    CoterieError,
    FrameTooLargeError,
    LinkLostError,
    NotRunningError,
    QueueFullError,
    RemoteError,
    RequestTimeoutError,
    Retryable,
)
from coterie.observe import Observer
from coterie.protocol.nodes import Node
from coterie.settings import Settings
from coterie.tls import TLSFiles

if TYPE_CHECKING:
    from coterie.components.monitor import Monitor
    from coterie.components.publisher import Publisher
    from coterie.components.requester import (
        DEFAULT_REQUEST_TIMEOUT,
        PendingBalancedRequester,
        Requester,
        TimeBalancedRequester,
    )
    from coterie.components.subscriber import Subscriber
    from coterie.serving import serve
    from coterie.typed import Contract

#: Names imported on first use (PEP 562), so a process loads only the
#: components it uses: a plain responder never loads the requester, the
#: monitor or pub/sub. Name -> module.
_LAZY = {
    "Contract": "coterie.typed",
    "DEFAULT_REQUEST_TIMEOUT": "coterie.components.requester",
    "Monitor": "coterie.components.monitor",
    "PendingBalancedRequester": "coterie.components.requester",
    "Publisher": "coterie.components.publisher",
    "Requester": "coterie.components.requester",
    "Subscriber": "coterie.components.subscriber",
    "TimeBalancedRequester": "coterie.components.requester",
    "serve": "coterie.serving",
}

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "Contract",
    "CoterieError",
    "DiscoveryOptions",
    "DiscoveryTransport",
    "EtcdSettings",
    "FrameTooLargeError",
    "LinkLostError",
    "Monitor",
    "Node",
    "NotRunningError",
    "Observer",
    "PendingBalancedRequester",
    "Publisher",
    "QueueFullError",
    "RedisSettings",
    "RemoteError",
    "RequestTimeoutError",
    "Requester",
    "Responder",
    "Retryable",
    "Settings",
    "Subscriber",
    "TLSFiles",
    "TimeBalancedRequester",
    "__version__",
    "serve",
]


def _present(value: Any) -> Any:
    """A public class prints as ``coterie.Name``, where users import it from (as anyio does).

    Its ``__module__`` is rewritten; ``coterie.Name`` resolves it, so pickling
    and ``repr`` name a path that works. Called for every public name as it
    is first found here (the lazy ones on first access).
    """
    if isinstance(value, type) and value.__module__.startswith("coterie."):
        value.__module__ = __name__
    return value


for _name in __all__:
    if _name in globals():
        _present(globals()[_name])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'coterie' has no attribute {name!r}")
    value = _present(getattr(importlib.import_module(module), name))
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
