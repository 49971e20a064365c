"""``coterie doctor``: check this machine and a configuration, and say what to change.

Design: each check is a function that returns :class:`Finding` records
(``ok``, ``warning`` or ``error``, the topic, and one sentence); :func:`run`
prints them as plain lines or as JSON and exits 1 when any is an error. The
checks, in order:

- **discovery**: the scope in use (host, LAN broadcast, multicast, unicast
  seeds, Redis) and whether a hello could leave. For a UDP scope that is a
  UDP ``connect()`` to the first destination, which asks the kernel for a
  route and sends nothing; a missing route (a laptop offline, a bare
  container) is an error that names ``COTE_BROADCAST_ADDRESS`` and seeds.
- **ports**: the discovery port and each ``--port`` can be bound.
- **tls**: the ``COTERIE_TLS_*`` files (or ``--tls-*``): readable, a key
  that matches its certificate, signed by the CA, valid now and for how long
  (a warning when it is near its end:
  :func:`coterie.protocol.renewal.validity`), and which service names it is
  valid for.
- **mesh**: a monitor listens for ``--listen`` seconds and lists the nodes it
  heard; for the requester described by ``--namespace``, ``--key``,
  ``--environment``, ``--tls`` and ``--type``, which responders would pair
  and, for each that would not, why (:func:`coterie.protocol.pairing.unserved`,
  the same words a waiting requester logs).

Internal: the finding format is for people and scripts (``--json``), not an
API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import errno
import json
import socket
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from coterie.cli._common import Subparsers, add_tls_arguments, tls_files
from coterie.discovery.options import NO_ROUTE_HINT, DiscoveryOptions, DiscoverySettings
from coterie.gateways.hostscope import add_discovery_arguments, discovery_options_from_args
from coterie.protocol.pairing import build_advertisement, pairs, serves, unserved
from coterie.protocol.renewal import validity
from coterie.settings import Settings
from coterie.tls import ADVERTISED as TLS_ADVERTISED
from coterie.tls import TLSFiles

__all__ = ["Finding", "check_discovery", "check_mesh", "check_ports", "check_tls", "register"]

Level = Literal["ok", "warning", "error"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of a check.

    Attributes:
        level: ``ok``, ``warning`` or ``error`` (an error makes the exit code 1).
        topic: ``discovery``, ``ports``, ``tls`` or ``mesh``.
        message: One sentence that says what was found and, when wrong, what to change.
    """

    level: Level
    topic: str
    message: str


def register(subparsers: Subparsers) -> None:
    """Add the ``doctor`` subcommand."""
    parser = subparsers.add_parser(
        "doctor",
        help="check discovery, ports, TLS files and which responders a requester would pair with",
        description=(
            "Check this machine and a configuration: the discovery scope and whether "
            "hellos can be sent, the ports, the TLS files, and the nodes heard within a "
            "few seconds; for a requester configuration (--namespace, --key, --environment, "
            "--tls, --type), which responders would pair and why the others would not. "
            "Exit code 1 when something is wrong."
        ),
    )
    parser.add_argument(
        "--listen", type=float, default=3.0, metavar="SECONDS", help="how long to listen (3)"
    )
    parser.add_argument("--namespace", default=None, help="the requester's namespace")
    parser.add_argument("--key", default=None, help="the requester's key")
    parser.add_argument(
        "--environment", default=None, help="the requester's environment (default: COTE_ENV)"
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="the requester runs mutual TLS (implied by COTERIE_TLS_* or COTERIE_LINK_SECRET)",
    )
    parser.add_argument(
        "--type", dest="request_type", default=None, help="a request type it will send"
    )
    parser.add_argument(
        "--port",
        dest="ports",
        type=int,
        action="append",
        default=[],
        metavar="PORT",
        help="a TCP port a service will listen on (repeatable)",
    )
    add_tls_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_discovery_arguments(parser)
    parser.set_defaults(run=run, _parser=parser)


def run(args: argparse.Namespace) -> int:
    """Run every check, print the findings, and return 1 if any is an error."""
    settings = Settings.from_environ()
    options = discovery_options_from_args(args)
    if not args.verbose:
        options.log = False  # the doctor's own hellos are not news
    resolved = options.resolve()
    findings = check_discovery(resolved)
    findings += check_ports(resolved, args.ports)
    files = tls_files(args, settings)
    if files is not None:
        findings += check_tls(files)
    tls = args.tls or files is not None or settings.link_secret is not None
    mine = build_advertisement(
        "req",
        name="coterie doctor",
        namespace=args.namespace,
        key=args.key,
        environment=settings.environment if args.environment is None else args.environment,
        extra=dict([TLS_ADVERTISED]) if tls else None,
    )
    heard = asyncio.run(_listen(options, args.listen))
    findings += check_mesh(mine, heard, args.request_type, resolved, args.listen)
    _print(findings, heard, json_out=args.json)
    return 1 if any(f.level == "error" for f in findings) else 0


# -- discovery and ports ------------------------------------------------------------


def check_discovery(s: DiscoverySettings) -> list[Finding]:
    """The scope in use and whether a hello can leave this host.

    A UDP ``connect()`` asks the kernel for a route to the first destination
    without sending anything; Redis is reported, not dialled.
    """
    if s.redis is not None:
        return [Finding("ok", "discovery", f"scope: Redis at {s.redis.connection_url()}")]
    if s.seeds or s.unicast:
        where, kind = (s.seeds or s.unicast)[0], "unicast to seeds"
    elif s.multicast:
        where, kind = s.multicast, "multicast"
    else:
        where = s.broadcast
        kind = "host (this machine only)" if where.startswith("127.") else "LAN broadcast"
    scope = f"scope: {kind}, {where} port {s.port}"
    host = where.rsplit(":", 1)[0] if where.count(":") == 1 else where
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.connect((host, s.port))
    except socket.gaierror as exc:
        return [Finding("error", "discovery", f"{scope}; {host!r} does not resolve ({exc})")]
    except OSError as exc:
        reason = "no route" if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH) else exc
        return [
            Finding(
                "error", "discovery", f"{scope}; hellos cannot be sent ({reason}): {NO_ROUTE_HINT}"
            )
        ]
    return [Finding("ok", "discovery", f"{scope}; hellos can be sent")]


def check_ports(s: DiscoverySettings, ports: list[int]) -> list[Finding]:
    """The discovery port (UDP, shared as cote shares it) and each TCP ``ports`` entry."""
    udp = _bind_error(socket.SOCK_DGRAM, s.address, s.port)
    found = [
        Finding("ok", "ports", f"discovery port {s.port}/udp can be bound")
        if udp is None
        else Finding(
            "error",
            "ports",
            f"discovery port {s.port}/udp cannot be bound ({udp}); "
            "choose another with --discovery-port (DiscoveryOptions(port=...) in code)",
        )
    ]
    for port in ports:
        tcp = _bind_error(socket.SOCK_STREAM, "0.0.0.0", port)
        found.append(
            Finding("ok", "ports", f"port {port}/tcp is free")
            if tcp is None
            else Finding(
                "error",
                "ports",
                f"port {port}/tcp is taken ({tcp}); stop what holds it "
                "or give the service another port",
            )
        )
    return found


def _bind_error(kind: socket.SocketKind, host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be bound, or ``None``; UDP shares the port as cote does."""
    try:
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_DGRAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                with contextlib.suppress(AttributeError, OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


# -- TLS --------------------------------------------------------------------------


def check_tls(files: TLSFiles, *, now: _dt.datetime | None = None) -> list[Finding]:
    """Whether the TLS files form a pair signed by the CA, and what they are valid for.

    Args:
        files: The CA, certificate and key paths.
        now: The time to judge validity at (the current time by default).
    """
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    now = now or _dt.datetime.now(_dt.UTC)
    try:
        ca = x509.load_pem_x509_certificate(_read(files.ca))
        cert = x509.load_pem_x509_certificate(_read(files.cert))
        key = serialization.load_pem_private_key(_read(files.key), password=None)
    except (OSError, ValueError, TypeError) as exc:
        return [Finding("error", "tls", f"the TLS files cannot be read: {exc}")]
    found: list[Finding] = []
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, public) != cert.public_key().public_bytes(der, public):
        found.append(
            Finding("error", "tls", f"{files.key} is not the key of {files.cert}: give its pair")
        )
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError) as exc:
        found.append(
            Finding(
                "error",
                "tls",
                f"{files.cert} is not signed by the CA in {files.ca} ({type(exc).__name__}); "
                "peers will refuse it: issue it with `coterie certs issue` from that CA",
            )
        )
    names: list[str] = []
    with contextlib.suppress(x509.ExtensionNotFound):
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = san.value.get_values_for_type(x509.DNSName)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    state = validity(now.timestamp(), start.timestamp(), end.timestamp())
    if state == "not yet valid":
        found.append(Finding("error", "tls", f"{files.cert} is not valid before {start:%Y-%m-%d}"))
    elif state == "expired":
        found.append(
            Finding("error", "tls", f"{files.cert} expired on {end:%Y-%m-%d}: issue a new one")
        )
    else:
        left = end - now
        when = f"{left.days} days" if left.days else f"{left.seconds // 3600} hours"
        message = (
            f"{files.cert} is valid for {', '.join(names) or 'no DNS name'} "
            f"until {end:%Y-%m-%d} ({when})"
        )
        if state == "near expiry":
            message += (
                ": it is near its end; replace the files before then (running components "
                "load them at their next handshake)"
            )
        found.append(Finding("warning" if state == "near expiry" else "ok", "tls", message))
    return found


def _read(path: str | Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# -- the mesh -------------------------------------------------------------------------


async def _listen(options: DiscoveryOptions, seconds: float) -> list[dict[str, Any]]:
    """The advertisements of every node heard within ``seconds``."""
    from coterie.components.monitor import Monitor

    async with Monitor("coterie doctor", host="127.0.0.1", discovery=options) as monitor:
        await asyncio.sleep(max(seconds, 0.0))
        return [dict(n.advertisement) for n in monitor.snapshot().nodes.values()]


def check_mesh(
    mine: Mapping[str, Any],
    heard: list[dict[str, Any]],
    request_type: str | None,
    s: DiscoverySettings,
    seconds: float,
) -> list[Finding]:
    """What the nodes heard mean for a requester advertising ``mine``."""
    if not heard:
        return [
            Finding(
                "error",
                "mesh",
                f"no node heard within {seconds:g} s ({s.scope}, port {s.port}): start a "
                "service, or check that it uses the same scope, port and discovery key",
            )
        ]
    found = [Finding("ok", "mesh", f"heard {len(heard)} node(s) within {seconds:g} s")]
    responders = [a for a in heard if a.get("axon_type") == "rep"]
    paired = [
        a
        for a in responders
        if pairs(mine, a, "rep") and (request_type is None or serves(a, request_type))
    ]
    what = f" for {request_type!r}" if request_type else ""
    for adv in responders:
        if request_type is not None and pairs(mine, adv, "rep") and not serves(adv, request_type):
            served = ", ".join(repr(t) for t in adv.get("respondsTo") or [])
            found.append(
                Finding(
                    "warning",
                    "mesh",
                    f"responder {adv.get('name')!r} pairs but does not serve {request_type!r}"
                    f" (it serves {served})",
                )
            )
    for adv in paired:
        found.append(Finding("ok", "mesh", f"responder {adv.get('name')!r} would pair{what}"))
    for sentence in unserved(
        mine, responders, "rep", request_type, me="this requester", limit=len(responders)
    ):
        found.append(Finding("warning", "mesh", sentence))
    if not paired:
        found.append(
            Finding(
                "error",
                "mesh",
                f"no responder would pair with this requester{what}"
                + ("" if responders else ": no responder is on the mesh"),
            )
        )
    return found


def _print(findings: list[Finding], heard: list[dict[str, Any]], *, json_out: bool) -> None:
    out = sys.stdout
    if json_out:
        doc = {
            "ok": not any(f.level == "error" for f in findings),
            "findings": [asdict(f) for f in findings],
            "nodes": [
                {k: a.get(k) for k in ("name", "axon_type", "type", "key", "namespace", "tls")}
                for a in heard
            ],
        }
        out.write(json.dumps(doc) + "\n")
        return
    for f in findings:
        out.write(f"{f.level}: {f.topic}: {f.message}\n")
