"""The public API is what ``coterie.__all__`` lists: pinned here on purpose.

Adding or removing a public name is a decision; update this list with it.
"""

from __future__ import annotations

import coterie

PUBLIC = [
    "DEFAULT_REQUEST_TIMEOUT",
    "CoterieError",
    "DecodeError",
    "DiscoveryOptions",
    "DiscoveryTransport",
    "FrameTooLargeError",
    "LinkLostError",
    "Monitor",
    "Node",
    "PendingBalancedRequester",
    "ProtocolError",
    "Publisher",
    "QueueFullError",
    "RedisSettings",
    "RemoteError",
    "RequestTimeoutError",
    "Requester",
    "Responder",
    "Subscriber",
    "TimeBalancedRequester",
    "__version__",
]


def test_all_is_pinned() -> None:
    assert coterie.__all__ == PUBLIC


def test_every_public_name_exists() -> None:
    missing = [name for name in coterie.__all__ if not hasattr(coterie, name)]
    assert missing == []


def test_star_import_gives_exactly_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from coterie import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(PUBLIC)


def test_errors_share_a_base_and_refine_builtins() -> None:
    for name in ("DecodeError", "FrameTooLargeError", "LinkLostError", "ProtocolError",
                 "RemoteError", "RequestTimeoutError"):  # fmt: skip
        assert issubclass(getattr(coterie, name), coterie.CoterieError)
    assert issubclass(coterie.RequestTimeoutError, TimeoutError)
    assert issubclass(coterie.LinkLostError, ConnectionError)
    assert issubclass(coterie.FrameTooLargeError, ValueError)
    assert issubclass(coterie.DecodeError, ValueError)


def test_version_is_a_string() -> None:
    assert isinstance(coterie.__version__, str) and coterie.__version__
