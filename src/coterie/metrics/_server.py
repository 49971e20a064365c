"""The HTTP endpoint: prometheus_client's own server, in a daemon thread."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.registry import CollectorRegistry

__all__ = ["INSTALL_HINT", "MetricsServer", "prometheus", "start"]

INSTALL_HINT = "coterie's metrics need prometheus_client: pip install 'coterie[metrics]'"


def prometheus() -> Any:
    """The ``prometheus_client`` module, imported on first use.

    Raises:
        ImportError: It is not installed; the message says how to install it.
    """
    try:
        import prometheus_client
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(INSTALL_HINT) from exc
    return prometheus_client


class MetricsServer:
    """The HTTP endpoint :func:`coterie.metrics.serve` started; ``close()`` stops it.

    Attributes:
        host: The address it listens on.
        port: The port it listens on (the one picked, if 0 was asked).
    """

    def __init__(self, server: WSGIServer, thread: threading.Thread, host: str) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.port: int = server.server_port

    @property
    def url(self) -> str:
        """Where to scrape: ``http://host:port/metrics``."""
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def start(registry: CollectorRegistry, port: int, host: str) -> MetricsServer:
    """Serve ``registry`` on ``host:port`` (every path, ``/metrics`` included)."""
    server, thread = prometheus().start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread, host)
