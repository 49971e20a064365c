"""What a TLS mistake says on the connecting side: whose certificate was refused, once.

Real sockets, real certificates from two CAs. The peer that refuses our
certificate does so after the TLS 1.3 handshake completed on our side, so
the link opens and is reset at once; that must read as a refused
certificate, said once, and be retried with back-off, not in a tight loop.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from coterie import Requester, Responder, TLSFiles
from coterie.protocol.backoff import Reconnect
from tests.helpers import MS, DiscoveryFactory
from tests.transport.test_tls import write_pki

BOUND = 1_000 * MS


def tls_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "coterie.peers" and r.levelno >= logging.WARNING
    ]


async def test_our_certificate_refused_is_said_once(
    tmp_path: Path,
    disc: DiscoveryFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG, logger="coterie")
    # Every wait the whole back-off delay (no jitter), so the count below is the rule's.
    monkeypatch.setattr("coterie.transport.peers.jitter", lambda: 1.0)
    ours = write_pki(tmp_path, "vault", ca_name="ours")
    theirs = write_pki(tmp_path, "client", ca_name="theirs")
    # Trusts the right CA, but presents a certificate from another one.
    client = TLSFiles(ours["vault"].ca, theirs["client"].cert, theirs["client"].key)
    rep = Responder("vault", discovery=disc(), tls=ours["vault"])
    rep.on("open", lambda req: True)
    async with rep, Requester("client", discovery=disc(), tls=client, timeout=BOUND) as req:
        with pytest.raises(TimeoutError):
            await req.send({"type": "open"})
    (said,) = tls_warnings(caplog)
    assert said.startswith("responder 'vault' at 127.0.0.1:")
    assert "closed the TLS link right after the handshake, before any answer: it most " in said
    assert "likely refused this side's certificate; this side's COTERIE_TLS_CERT must be " in said
    # Back-off (50 ms doubling to 0.5 s), not a tight loop: no more links
    # than the back-off allows within the request's bound, and one more.
    links = [r for r in caplog.records if r.getMessage().startswith("linked to responder")]
    assert 1 <= len(links) <= attempts_within(BOUND) + 1, len(links)


def attempts_within(bound: float) -> int:
    """How many attempts the reconnect back-off, waiting whole delays, makes within ``bound``."""
    rule, waited, attempts = Reconnect(), 0.0, 1
    while True:
        delay = rule.lost(0, 0.0, 1.0)  # dropped at once: always a delay, never "gone"
        assert delay is not None
        waited += delay
        if waited >= bound:
            return attempts
        attempts += 1


def test_the_allowance_is_the_back_off_s() -> None:
    assert attempts_within(1.0) == 5  # at 0, 0.05, 0.15, 0.35 and 0.75 s
    assert attempts_within(3.0) == 9


async def test_a_peer_certificate_we_cannot_verify_is_said_once(
    tmp_path: Path, disc: DiscoveryFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="coterie.peers")
    ours = write_pki(tmp_path, "vault", ca_name="ours")
    theirs = write_pki(tmp_path, "client", ca_name="theirs")
    rep = Responder("vault", discovery=disc(), tls=ours["vault"])
    rep.on("open", lambda req: True)
    async with (
        rep,
        Requester("client", discovery=disc(), tls=theirs["client"], timeout=BOUND) as req,
    ):
        with pytest.raises(TimeoutError):
            await req.send({"type": "open"})
    (said,) = tls_warnings(caplog)
    assert said.startswith("TLS with responder 'vault' at 127.0.0.1:")
    # Both CAs are named "coterie mesh CA"; the certificate's Authority Key
    # Identifier names the other one, and OpenSSL says so its own way.
    assert "failed: this side could not verify the peer's certificate (" in said
    assert said.endswith(
        "): the peer's certificate must be issued by the CA this side trusts "
        "(COTERIE_TLS_CA, or the same COTERIE_LINK_SECRET) for the name it announces"
    )
