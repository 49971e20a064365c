"""The protocol, sans-I/O: bytes and facts in, events and outcomes out.

Internal: these modules are not part of the public API (``coterie.__all__``)
and may change between releases; they are documented for contributors.

Nothing in this package imports asyncio, socket, ssl, time, random or os (a
test walks its imports): time and randomness come in as arguments, so every
rule is unit tested deterministically. The asyncio adapters in
:mod:`coterie.transport`, :mod:`coterie.discovery` and
:mod:`coterie.components` own sockets, futures and timers.

| module | what it decides |
| --- | --- |
| :mod:`~coterie.protocol.framing` | AMP frames: how a message is framed and unframed, size limits |
| :mod:`~coterie.protocol.messages` | axon's request, reply, publish and status shapes; |
| | decoding request frames; reserved fields; the size of what is sent |
| :mod:`~coterie.protocol.codes` | the one vocabulary of outcome codes (wire, metrics, traces) |
| :mod:`~coterie.protocol.requester` | the requester side, whole: one machine over routing, |
| | liveness and binding, and the rules between them (inputs with ``now``, outputs) |
| :mod:`~coterie.protocol.routing` | where a request goes, how long it waits, |
| | when it is resent; exactly-once answers |
| :mod:`~coterie.protocol.ejection` | which failing responder leaves the rotation, and its probes |
| :mod:`~coterie.protocol.slowstart` | a newly linked responder's small share of requests |
| :mod:`~coterie.protocol.liveness` | telling a silent peer from a slow one |
| :mod:`~coterie.protocol.binding` | what routing trusts of a linked responder: its link's word |
| :mod:`~coterie.protocol.admission` | who a listener lets in: link cap, shares, handshakes |
| :mod:`~coterie.protocol.backoff` | how long to stay away after a failure (full jitter, drawn |
| | by the adapter); when a peer is gone |
| :mod:`~coterie.protocol.pairing` | advertisements and who pairs with whom |
| :mod:`~coterie.protocol.patterns` | which names a ``*`` pattern takes: handlers (EventEmitter2), |
| | ``respondsTo``, and ``subscribesTo`` topics (axon) |
| :mod:`~coterie.protocol.status` | status reports to monitors: their shape, what a monitor keeps, |
| | traffic counts and rates |
| :mod:`~coterie.protocol.sockend` | what the Sockend forwards and relays, and its refusals |
| :mod:`~coterie.protocol.namespaces` | which namespaces a gateway serves; reaping idle ones |
| :mod:`~coterie.protocol.packets` | discovery datagrams (hello, goodbye) |
| :mod:`~coterie.protocol.cipher` | cote's discovery encryption |
| :mod:`~coterie.protocol.nodes` | the node table: who is out there, timeouts, master election |
| :mod:`~coterie.protocol.renewal` | when a certificate is renewed, and when one is near its end |
| :mod:`~coterie.protocol.groups` | discovery groups: who hears of whom; the etcd key layout |
| :mod:`~coterie.protocol.budget` | the one token bucket (fast-contact replies, log lines) |
| :mod:`~coterie.protocol.sharing` | events shared by a group: one member of each group per event |
| :mod:`~coterie.protocol.seeds` | the seed set: which addresses are members of a seeded mesh |

A test (``tests/test_imports.py``) checks that this table names every module.
"""
