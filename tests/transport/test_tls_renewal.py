"""Certificates that change while a mesh runs: renewed from the secret, or rotated files.

Real sockets and real certificates. A certificate rooted in the link secret
lives ``COTERIE_LINK_CERT_LIFETIME`` (2 s here, two days by default) and is
renewed before each new handshake once two thirds of it have passed; files
are read again before a handshake when they changed. Links made before keep
the certificate they were made with, and keep serving.

The renewal test runs in real time (about three lifetimes, 5 s): OpenSSL
judges expiry by the wall clock, and the point is that links made after the
first certificates expired still verify.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from coterie import Requester, Responder, TLSFiles
from coterie.cli import main
from coterie.settings import Settings
from coterie.tls import TLS
from coterie.transport.link import Link, connect
from tests.helpers import MS, DiscoveryFactory
from tests.transport.test_tls_strict import handshake_end

SOON = 5_000 * MS
LIFETIME = 2.0
SHORT = {"COTERIE_LINK_CERT_LIFETIME": str(int(LIFETIME * 1000))}


def presented(link: Link) -> bytes:
    """The DER certificate the other end of ``link`` presented in its handshake."""
    assert link.transport is not None
    ssl_object = link.transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True)
    assert der is not None
    return bytes(der)


def der(path: str | Path) -> bytes:
    cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


async def test_a_secret_mesh_keeps_linking_across_renewals(disc: DiscoveryFactory) -> None:
    vault = Responder(name="vault", discovery=disc(), secret="k", environ=SHORT)
    vault.on("open", lambda req: "vault")
    teller = Requester(name="teller", discovery=disc(), secret="k", environ=SHORT, timeout=SOON)
    assert vault.tls is not None and teller.tls is not None
    async with vault, teller:
        assert await teller.send({"type": "open"}) == "vault"
        (first_link,) = vault.links
        expiries = [(vault.tls.expires, teller.tls.expires)]
        first_end = max(expiries[0], key=lambda e: e or 0.0)
        assert first_end is not None and first_end - time.time() <= LIFETIME + 1
        for step in range(3):
            # Past both certificates' renewal point (two thirds of their life),
            # before their end: the next handshakes renew them.
            due = max(e for e in expiries[-1] if e is not None) - LIFETIME / 3
            await asyncio.sleep(max(0.0, due - time.time()))
            # A new requester links to the vault: the vault presents a renewed certificate.
            async with Requester(
                name=f"teller {step}", discovery=disc(), secret="k", environ=SHORT, timeout=SOON
            ) as newcomer:
                assert await newcomer.send({"type": "open"}) == "vault"
            # The teller links to a new responder: it presents a renewed certificate.
            counter = Responder(name=f"counter {step}", discovery=disc(), secret="k", environ=SHORT)
            counter.on(f"count {step}", lambda req, step=step: step)
            async with counter:
                assert await teller.send({"type": f"count {step}"}) == step
            # The link made before every renewal still serves.
            assert first_link in vault.links
            assert await teller.send({"type": "open"}) == "vault"
            expiries.append((vault.tls.expires, teller.tls.expires))
        # Three renewals on each side, and the last links were made after the
        # first certificates had expired.
        for side in (0, 1):
            ends = [e[side] or 0.0 for e in expiries]
            assert ends == sorted(ends) and len(set(ends)) == 4, expiries
        assert time.time() > first_end


async def test_rotated_files_serve_the_next_handshake_and_live_links_keep_theirs(
    tmp_path: Path, disc: DiscoveryFactory
) -> None:
    for argv in (["init"], ["issue", "vault"], ["issue", "teller"]):
        assert main(["certs", "--dir", str(tmp_path), *argv]) == 0
    ca = tmp_path / "ca.crt"
    vault = TLSFiles(ca, tmp_path / "vault.crt", tmp_path / "vault.key")
    teller = TLSFiles(ca, tmp_path / "teller.crt", tmp_path / "teller.key")
    rep = Responder(name="vault", discovery=disc(), tls=vault)
    rep.on("open", lambda req: "vault")
    async with rep, Requester(name="teller", discovery=disc(), tls=teller, timeout=SOON) as req:
        assert await req.send({"type": "open"}) == "vault"
        (first,) = rep.links
        old_vault, old_teller = der(vault.cert), der(teller.cert)
        assert presented(first) == old_teller
        # cert-manager (here `coterie certs issue --force`) rotates both pairs.
        for name in ("vault", "teller"):
            assert main(["certs", "--dir", str(tmp_path), "issue", name, "--force"]) == 0
        assert der(vault.cert) != old_vault and der(teller.cert) != old_teller
        # The responder's next handshake presents its new certificate...
        probe = TLS.from_files(**teller._asdict(), server=False)
        link = await connect(
            "127.0.0.1",
            rep.port,
            lambda link, args: None,
            lambda link, exc: None,
            tls=probe,
            server_name="vault",
            timeout=SOON,
        )
        try:
            assert presented(link) == der(vault.cert)
        finally:
            link.close()
        # ...and the requester's next one its new certificate.
        counter = Responder(name="vault", discovery=disc(), tls=vault)  # its certificate's name
        counter.on("count", lambda req: 1)
        async with counter:
            assert await req.send({"type": "count"}) == 1
            (second,) = counter.links
            assert presented(second) == der(teller.cert)
        # The link made before the rotation keeps its certificates and serves.
        assert first in rep.links and presented(first) == old_teller
        assert await req.send({"type": "open"}) == "vault"


def test_a_half_rotated_pair_keeps_the_loaded_one_until_it_is_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="coterie.tls")
    for argv in (["init"], ["issue", "vault"], ["issue", "other"], ["issue", "teller"]):
        assert main(["certs", "--dir", str(tmp_path), *argv]) == 0
    ca = tmp_path / "ca.crt"
    vault = TLSFiles(ca, tmp_path / "vault.crt", tmp_path / "vault.key")
    server = TLS.from_files(**vault._asdict(), server=True)
    client = TLS.from_files(ca=ca, cert=tmp_path / "teller.crt", key=tmp_path / "teller.key",
                            server=False)  # fmt: skip
    loaded = der(vault.cert)
    # A rotation caught halfway: the certificate of another key.
    Path(vault.cert).write_bytes((tmp_path / "other.crt").read_bytes())
    assert server.refresh() is False and server.refresh() is False
    assert handshake_end(client.context, server.context, "vault").getpeercert(True) == loaded
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith(f"reloading the TLS files {vault.cert}, {vault.key} failed (")
    assert said.endswith("the pair loaded before is kept until they change again")
    # A missing file, as between a delete and a create: the same.
    Path(vault.key).unlink()
    assert server.refresh() is False
    assert handshake_end(client.context, server.context, "vault").getpeercert(True) == loaded
    # The rotation completes: the next handshake presents the new pair.
    assert main(["certs", "--dir", str(tmp_path), "issue", "vault", "--force"]) == 0
    assert server.refresh() is True and server.refresh() is False
    fresh = handshake_end(client.context, server.context, "vault").getpeercert(True)
    assert fresh == der(vault.cert) != loaded


def test_renewal_follows_the_clock_it_is_given() -> None:
    tls = TLS.from_secret("k", "vault", server=True, lifetime=3_600)
    now, first = time.time(), tls.expires
    assert first is not None and 3_600 <= first - now <= 3_602
    assert tls.refresh(now + 2_390) is False  # before two thirds of the hour
    assert tls.expires == first
    assert tls.refresh(now + 2_402) is True
    assert tls.expires is not None and tls.expires >= first + 2_400
    assert tls.refresh(now + 2_403) is False


def test_a_context_you_built_is_yours_to_keep_current() -> None:
    tls = TLS.from_context(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    assert tls.refresh() is False and tls.expires is None


def test_the_lifetime_is_checked() -> None:
    assert Settings.from_environ(SHORT).link_cert_lifetime == LIFETIME
    with pytest.raises(ValueError, match="COTERIE_LINK_CERT_LIFETIME must be at least 1000 ms"):
        Settings.from_environ({"COTERIE_LINK_CERT_LIFETIME": "500"})
    with pytest.raises(ValueError, match="at least 1 second"):
        TLS.from_secret("k", "vault", server=True, lifetime=0.5)
