"""The node table: who is out there, from hellos, goodbyes and silence (sans-I/O).

Design: :class:`NodeTable` is node-discover's bookkeeping with the clock passed
in. Feed it packets (:meth:`NodeTable.hello`, :meth:`NodeTable.goodbye`) and
call :meth:`NodeTable.check` on a timer; it returns what changed and never
does I/O, so every rule (timeouts, own packets, master election) is unit
tested with a fake clock.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Node", "NodeTable"]


@dataclass(slots=True)
class Node:
    """A peer component seen on the discovery channel.

    Attributes:
        id: The component's instance id (``iid``).
        process_id: The id of its process (``pid``).
        host_name: The host name it announced.
        address: The source address of its last hello ("0.0.0.0" when the
            medium carries none, as Redis).
        advertisement: Its advertisement (role, key, namespace, port, ...).
        is_master: Whether it claims to be the elected master.
        is_master_eligible: Whether it may be elected.
        weight: Election weight; older processes weigh more.
        last_seen: Clock reading (seconds) of its last hello.
        data: The last hello's ``data`` object as received.
    """

    id: str
    process_id: str
    host_name: str
    address: str
    advertisement: dict[str, Any]
    is_master: bool = False
    is_master_eligible: bool = False
    weight: float = 0.0
    last_seen: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def port(self) -> int | None:
        """The TCP port it serves on, if it binds one."""
        port = self.advertisement.get("port")
        return port if isinstance(port, int) and 0 < port < 65536 else None

    @property
    def advertised(self) -> str:
        """The address its hello announces ("" when none).

        coterie announces where peers should connect; node-discover always
        says "127.0.0.1", which :meth:`connect_host` ignores.
        """
        value = self.data.get("address")
        return value if isinstance(value, str) else ""

    def connect_host(self, use_host_names: bool) -> str:
        """The host to open a link to.

        In order: the announced address, unless it is loopback, unspecified
        or missing (node-discover announces 127.0.0.1 whatever the truth);
        the host name, when host names are in use or the medium carries no
        source address (Redis); the source address. A limited broadcast sent
        from an unaddressed host arrives from 0.0.0.0, which means "this
        host" when connecting.
        """
        if _reachable(self.advertised):
            return self.advertised
        source_known = self.address not in ("", "0.0.0.0")
        if self.host_name and (use_host_names or not source_known):
            return self.host_name
        return self.address if source_known else "127.0.0.1"


def _reachable(address: str) -> bool:
    """Whether an announced address can reach a node from another host."""
    if not address or address.lower() == "localhost":
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True  # a host name given on purpose
    return not (ip.is_loopback or ip.is_unspecified)


class NodeTable:
    """Tracks peers for one component.

    Args:
        iid: This component's instance id (its own packets are ignored).
        pid: This process's id.
        node_timeout: Seconds of silence after which a node is dropped.
        master_timeout: Seconds a silent master still counts as present.
        ignore_process: Ignore other components of this same process.
        weight: This node's election weight.
        master_eligible: Whether this node may become master.
    """

    def __init__(
        self,
        iid: str,
        pid: str,
        *,
        node_timeout: float,
        master_timeout: float,
        ignore_process: bool = False,
        weight: float = 0.0,
        master_eligible: bool = True,
    ) -> None:
        self.iid = iid
        self.pid = pid
        self.node_timeout = node_timeout
        self.master_timeout = master_timeout
        self.ignore_process = ignore_process
        self.weight = weight
        self.is_master = False
        self.is_master_eligible = master_eligible
        self.nodes: dict[str, Node] = {}

    def is_own(self, packet: dict[str, Any]) -> bool:
        """Whether a packet comes from this component (or process, if ignored)."""
        if packet.get("iid") == self.iid:
            return True
        return self.ignore_process and packet.get("pid") == self.pid

    def hello(
        self, packet: dict[str, Any], address: str, now: float
    ) -> tuple[Node, bool, bool] | None:
        """Record a hello.

        Returns:
            The node, whether it is new, and whether its advertisement changed;
            ``None`` for an own packet.
        """
        if self.is_own(packet):
            return None
        data: dict[str, Any] = packet["data"]
        iid: str = packet["iid"]
        node = self.nodes.get(iid)
        is_new = node is None
        weight = data.get("weight")
        if node is None:
            node = Node(
                id=iid,
                process_id=str(packet.get("pid", "")),
                host_name=str(packet.get("hostName", "")),
                address=address,
                advertisement=data["advertisement"],
            )
            self.nodes[iid] = node
        changed = not is_new and node.advertisement != data["advertisement"]
        node.address = address
        node.host_name = str(packet.get("hostName", node.host_name))
        node.advertisement = data["advertisement"]
        node.is_master = data.get("isMaster") is True
        node.is_master_eligible = data.get("isMasterEligible") is True
        node.weight = float(weight) if isinstance(weight, int | float) else 0.0
        node.last_seen = now
        node.data = data
        if node.is_master and self.is_master and node.weight > self.weight:
            self.is_master = False  # another master outranks us: step down
        return node, is_new, changed

    def goodbye(self, packet: dict[str, Any]) -> Node | None:
        """Forget a node that said goodbye; returns it if it was known."""
        if self.is_own(packet):
            return None
        return self.nodes.pop(packet["iid"], None)

    def check(self, now: float) -> list[Node]:
        """Drop silent nodes and run the master election.

        Returns:
            The nodes dropped for silence.
        """
        removed: list[Node] = []
        masters = 0
        higher = False
        for iid, node in list(self.nodes.items()):
            silent = now - node.last_seen
            if silent > self.node_timeout:
                if node.is_master and silent < self.master_timeout:
                    masters += 1
                del self.nodes[iid]
                removed.append(node)
                continue
            if node.is_master:
                masters += 1
            elif node.is_master_eligible and node.weight > self.weight:
                higher = True
        if not self.is_master and masters < 1 and self.is_master_eligible and not higher:
            self.is_master = True
        return removed

    def remove(self, iid: str) -> Node | None:
        """Forget a node, e.g. when its link proves it dead."""
        return self.nodes.pop(iid, None)
