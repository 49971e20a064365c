"""Status reports to monitors: what one says, and what a monitor keeps of it (sans-I/O).

Design: the one home of the monitor's message, both sides, as pure functions
with the clock passed in; :mod:`coterie.components.monitorable` sends what
:func:`encode_status` frames and :mod:`coterie.components.monitor` keeps what
:func:`decode_status`, :func:`targets`, :func:`counts` and :func:`rates`
accept. The shape is cote 1.2.0's, framed like a publish::

    ["status", {"id": <reporter iid>, "nodes": [<linked iids>]}]

Beyond cote, a coterie reporter adds ``"traffic"``: ``{<target iid>:
{"requests": n, "errors": n}}`` from a requester, ``{<target iid>:
{"events": n}}`` from a subscriber, counted since each link came up. cote's
monitor passes the object on untouched and reads nothing but ``id``.

Every reporter may be hostile, so what a monitor keeps is bounded here: an
id longer than :data:`MAX_ID_LENGTH` is no id, a report names at most
``max_edges`` targets (the first, in sorted order), a count is a
non-negative integer, and a count that went down (a new link) has no rate
until the next report. A link reports for one node only: the first id it
names (:func:`reports_for`).
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeGuard

from coterie.protocol.framing import encode_frame

__all__ = [
    "DEFAULT_MAX_EDGES",
    "MAX_ID_LENGTH",
    "STATUS_TOPIC",
    "TRAFFIC_FIELD",
    "Counts",
    "LinkRate",
    "Status",
    "counts",
    "decode_status",
    "encode_status",
    "rates",
    "reports_for",
    "status_report",
    "targets",
]

#: The topic of a status frame.
STATUS_TOPIC = "status"
#: The status field beyond cote's that carries per-link request and error counts.
TRAFFIC_FIELD = "traffic"
#: Default most links one node's status report may name.
DEFAULT_MAX_EDGES = 256
#: Longest id kept from a status report (cote's ids are 36 characters).
MAX_ID_LENGTH = 64

#: Cumulative counts per target: ``(requests or events, errors)``.
Counts = dict[str, tuple[int, int]]


class LinkRate(NamedTuple):
    """Traffic on one link, per second, between a reporter's last two status reports.

    ``requests`` is events on a subscriber's link (``errors`` then stays 0).
    """

    requests: float
    errors: float


class Status(NamedTuple):
    """A status report that has the shape: its reporter's id, the ids it names, its traffic."""

    id: str
    nodes: list[Any]
    traffic: Any


def status_report(
    node_id: str, nodes: list[str], traffic: dict[str, dict[str, int]] | None
) -> dict[str, Any]:
    """The status object a component reports: ``{"id", "nodes"[, "traffic"]}``."""
    report: dict[str, Any] = {"id": node_id, "nodes": nodes}
    if traffic is not None:
        report[TRAFFIC_FIELD] = traffic
    return report


def encode_status(report: dict[str, Any]) -> bytes:
    """Frame a status object (:func:`status_report`): ``["status", report]``."""
    return encode_frame((STATUS_TOPIC, report))


def decode_status(args: list[Any]) -> Status | None:
    """The status report a frame carries, or ``None`` when it is not one.

    A status frame is ``["status", {"id": str, "nodes": list, ...}]``; its
    ``traffic`` is returned as it came (:func:`counts` reads it).
    """
    if len(args) < 2 or args[0] != STATUS_TOPIC:
        return None
    status = args[1]
    if not isinstance(status, dict):
        return None
    node_id, nodes = status.get("id"), status.get("nodes")
    if not isinstance(node_id, str) or not isinstance(nodes, list):
        return None
    return Status(node_id, nodes, status.get(TRAFFIC_FIELD))


def reports_for(claimed: str | None, node_id: str) -> bool:
    """Whether a link that reported for ``claimed`` (``None``: not yet) may report for ``node_id``.

    A link reports for one node only, the first it names, and that id must
    be no longer than :data:`MAX_ID_LENGTH`.
    """
    if claimed is None:
        return len(node_id) <= MAX_ID_LENGTH
    return claimed == node_id


def targets(nodes: list[Any], max_edges: int) -> tuple[tuple[str, ...], int]:
    """The ids a monitor keeps of a report's ``nodes``, and how many it named (more: some cut).

    cote reports ``null`` for a link it cannot name; only strings of at most
    :data:`MAX_ID_LENGTH` characters count, once each, sorted, and at most
    ``max_edges`` of them.
    """
    named = tuple(sorted({n for n in nodes if isinstance(n, str) and len(n) <= MAX_ID_LENGTH}))
    return named[:max_edges], len(named)


def _count(value: Any) -> TypeGuard[int]:
    """Whether ``value`` is a count: a non-negative int (not a bool)."""
    return type(value) is int and value >= 0


def counts(traffic: Any, kept: tuple[str, ...]) -> Counts | None:
    """The cumulative counts a report's ``traffic`` gives for its kept targets.

    ``None`` when the report carries no traffic object (cote's); otherwise
    only the kept targets whose entry holds counts: ``requests`` and
    ``errors`` (a requester's) or ``events`` (a subscriber's, errors 0).
    """
    if not isinstance(traffic, dict):
        return None
    found: Counts = {}
    for target in kept:
        entry = traffic.get(target)
        if isinstance(entry, dict):
            requests, errors = entry.get("requests"), entry.get("errors")
            events = entry.get("events")
            if _count(requests) and _count(errors):
                found[target] = (requests, errors)
            elif _count(events):
                found[target] = (events, 0)
    return found


def rates(
    before: tuple[float, Counts] | None, now: float, now_counts: Counts
) -> dict[str, LinkRate]:
    """Rates per target from a reporter's previous counts (taken at ``before[0]``) and these.

    A target without earlier counts, or whose counts went down (its link is
    new), has no rate; nor has any when no time passed.
    """
    found: dict[str, LinkRate] = {}
    if before is None or now <= before[0]:
        return found
    seconds = now - before[0]
    for target, (requests, errors) in now_counts.items():
        earlier = before[1].get(target)
        if earlier is not None and requests >= earlier[0] and errors >= earlier[1]:
            found[target] = LinkRate(
                (requests - earlier[0]) / seconds, (errors - earlier[1]) / seconds
            )
    return found
