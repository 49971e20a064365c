"""The web monitor: the mesh as a live graph and table in a browser.

:class:`MonitorServer` serves one :class:`~coterie.Monitor` over HTTP
(aiohttp, the ``http`` extra); ``coterie monitor --web`` is its command line.
See :mod:`coterie.web.server` for its design and ``docs/monitor.md`` for the
page.

Public: this package's names, :class:`MonitorServer` and :func:`view`.
Internal: the module :mod:`coterie.web.server` that defines them; import
them from ``coterie.web``.
"""

from __future__ import annotations

from coterie.web.server import MonitorServer, view

__all__ = ["MonitorServer", "view"]
