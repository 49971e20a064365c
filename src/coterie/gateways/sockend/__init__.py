"""Sockend: a socket.io gateway that exposes the mesh to browsers, as cote's Sockend.

Design: a :class:`Sockend` is a component that pairs with nothing (it
advertises ``axon_type: "sockend"``, as cote's does) and watches every node
discovery reports. Nodes with the Sockend's key are grouped by their cote
namespace; each namespace ``ns`` is served on the socket.io namespace
``/ns`` (no namespace, or ``""``, is ``/``):

- **Requests.** For each namespace that has a responder advertising a
  ``respondsTo`` list, the Sockend starts one coterie
  :class:`~coterie.Requester` in that namespace (linked only to responders
  that advertise ``respondsTo``, as cote's) and registers a catch-all
  handler on the socket.io namespace. A client's ``emit(type, data, ack)``
  becomes ``requester.send({**data, "type": type})`` and the ack receives
  ``(null, result)``, or ``(error)`` when it failed: the responder's error
  value as it arrived (cote's behaviour), or one of the Sockend's own errors,
  ``{"name": "SockendError", "code": ..., "message": ...}``.
- **Publishes.** For each namespace that has a publisher, the Sockend starts
  one coterie :class:`~coterie.Subscriber` there and relays each event whose
  name some publisher of that namespace advertises in ``broadcasts`` to the
  socket.io namespace: to everyone, or, when the data is an object carrying
  ``__room`` and/or ``__rooms``, only to those rooms (the two keys are
  removed before the emit). Rooms are joined by the application, e.g. in a
  ``connect`` handler with ``sio.enter_room``. A client in several of the
  rooms gets the event once (cote sends it once per room). Events are emitted
  in arrival order by one task, through a bounded queue.

Beyond cote, on purpose (cote 1.2.0's weak spots):

- ``__subset`` and ``__timeout`` sent by a client are removed: routing and
  time bounds are the server's business. Server-side *transformers* (cote's
  ``requesterTransformators``) run after that and may set them.
- Only event types that a discovered responder of that namespace currently
  advertises in ``respondsTo`` are forwarded (all of them: cote exposes only
  the first responder's list); others get a ``no_handler`` error.
- A missing payload is ``{}`` (as cote); a ``null`` or non-object payload,
  one that is not JSON, or one larger than ``max_payload`` bytes gets a
  ``bad_request`` / ``too_large`` error instead of crashing the process.
- Every forwarded request is bounded by ``request_timeout`` (``timeout``
  error) and by the requester's waiting queue (``queue_full`` error).
- Errors are logged at debug level. An emit without an acknowledgement is
  still forwarded (fire and forget, as in cote); its answer or error is
  dropped by python-socketio, which sends acks only when asked.
- A publisher that advertises no ``broadcasts`` list has nothing relayed
  (cote relays all its events).
- Namespaces have a life cycle (cote keeps every namespace it ever saw,
  so anyone who can send a hello makes it run requesters forever). A
  namespace none of whose responders or publishers has been seen for the
  discovery's ``node_timeout`` is closed: its requester and subscriber stop
  (checked every ``check_interval``; rules in
  :mod:`coterie.protocol.namespaces`). A client that calls it then gets a
  ``gone`` error; it is served again when a node of it returns. At most
  ``max_namespaces`` are served at once; a namespace announced past that is
  ignored, with one warning naming it and the node. The default namespace
  and those listed in ``namespaces=`` are never closed nor counted.

python-socketio is an optional dependency (``pip install 'coterie[sockend]'``);
``import coterie`` never imports this module. Serve the socket.io server with
aiohttp (see :func:`socketio_app` and ``docs/sockend.md``).

The package holds one idea per module: the rules about what a client sends
and receives are pure, in :mod:`coterie.protocol.sockend` (and which nodes a
gateway exposes in :mod:`coterie.protocol.pairing`); :mod:`._spaces` keeps the
namespace bookkeeping; :mod:`._gateway` is the component and its socket.io
glue. This module is the public surface.
"""

from __future__ import annotations

try:
    import socketio  # type: ignore[import-untyped]  # noqa: F401
    from aiohttp import web  # noqa: F401
except ImportError as _exc:  # without the extra: one clear message, not a missing module
    raise ImportError(
        f"coterie.gateways.sockend needs python-socketio and aiohttp ({_exc.name} is "
        "missing): pip install 'coterie[sockend]'",
        name=_exc.name,
    ) from _exc

from coterie.gateways.sockend._gateway import (
    DEFAULT_MAX_NAMESPACES,
    DEFAULT_MAX_PAYLOAD,
    DEFAULT_REQUEST_TIMEOUT,
    Sockend,
    Transformer,
    socketio_app,
)
from coterie.protocol.sockend import RESERVED_KEYS, socketio_namespace

__all__ = [
    "DEFAULT_MAX_NAMESPACES",
    "DEFAULT_MAX_PAYLOAD",
    "DEFAULT_REQUEST_TIMEOUT",
    "RESERVED_KEYS",
    "Sockend",
    "Transformer",
    "socketio_app",
    "socketio_namespace",
]
