"""Mutual TLS on every link, over real sockets: what a party on the network cannot do."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from coterie import Requester, Responder, TLSFiles
from coterie.protocol.messages import encode_request
from coterie.tls import TLS, issue, make_ca, service_dns_name
from coterie.transport.link import connect
from tests.helpers import MS, DiscoveryFactory, wait_for

SOON = 5_000 * MS
CARD = "4111111111111111"


def write_pki(tmp: Path, *names: str, ca_name: str = "ca") -> dict[str, TLSFiles]:
    """A CA and one certificate per service name, as ``coterie certs`` makes them."""
    ca_key, ca_cert = make_ca()
    (tmp / f"{ca_name}.key").write_bytes(ca_key)
    (tmp / f"{ca_name}.crt").write_bytes(ca_cert)
    out = {}
    for name in names:
        key, cert = issue(ca_key, ca_cert, name)
        slug = service_dns_name(name)
        (tmp / f"{ca_name}-{slug}.key").write_bytes(key)
        (tmp / f"{ca_name}-{slug}.crt").write_bytes(cert)
        out[name] = TLSFiles(
            tmp / f"{ca_name}.crt", tmp / f"{ca_name}-{slug}.crt", tmp / f"{ca_name}-{slug}.key"
        )
    return out


async def test_a_shared_secret_roots_mutual_tls(disc: DiscoveryFactory) -> None:
    async with Responder(name="vault", discovery=disc(), secret="k1") as rep:
        rep.on("open", lambda req: "opened")
        assert rep.advertisement["tls"] == "mtls/1"
        async with Requester(name="teller", discovery=disc(), secret="k1", timeout=SOON) as req:
            assert await req.send({"type": "open"}) == "opened"
            (link,) = rep.links
            assert link.transport is not None
            assert link.transport.get_extra_info("ssl_object").version() == "TLSv1.3"


async def test_a_wrong_secret_never_gets_a_request_through(
    disc: DiscoveryFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="coterie")
    async with Responder(name="vault", discovery=disc(), secret="right") as rep:
        seen: list[object] = []
        rep.on("open", seen.append)
        async with Requester(
            name="thief", discovery=disc(), secret="wrong", timeout=500 * MS
        ) as req:
            with pytest.raises(TimeoutError):
                await req.send({"type": "open"})
        assert seen == []
    assert "this side could not verify the peer's certificate" in caplog.text


async def test_plain_components_do_not_pair_with_tls_ones(disc: DiscoveryFactory) -> None:
    async with Responder(name="vault", discovery=disc(), secret="k") as rep:
        rep.on("open", lambda req: "opened")
        async with Requester(name="plain", discovery=disc(), timeout=300 * MS) as req:
            with pytest.raises(TimeoutError):
                await req.send({"type": "open"})
            assert req.peers == []  # it saw the vault, and left it alone


async def test_certificates_from_files(tmp_path: Path, disc: DiscoveryFactory) -> None:
    pki = write_pki(tmp_path, "validation service", "payment service")
    async with Responder(
        name="validation service", discovery=disc(), tls=pki["validation service"]
    ) as rep:
        rep.on("validate", lambda req: req["cardno"] == CARD)
        async with Requester(
            name="payment service", discovery=disc(), tls=pki["payment service"], timeout=SOON
        ) as req:
            assert await req.send({"type": "validate", "cardno": CARD}) is True


async def test_the_environment_configures_tls(tmp_path: Path, disc: DiscoveryFactory) -> None:
    pki = write_pki(tmp_path, "validation service", "payment service")

    def env(name: str) -> dict[str, str]:
        files = pki[name]
        return {
            "COTERIE_TLS_CA": str(files.ca),
            "COTERIE_TLS_CERT": str(files.cert),
            "COTERIE_TLS_KEY": str(files.key),
        }

    async with Responder(
        name="validation service", discovery=disc(), environ=env("validation service")
    ) as rep:
        rep.on("validate", lambda req: True)
        assert rep.tls is not None
        async with Requester(
            name="payment service", discovery=disc(), environ=env("payment service"), timeout=SOON
        ) as req:
            assert await req.send({"type": "validate", "cardno": CARD}) is True
    with pytest.raises(ValueError, match="go together"):
        Responder(environ={"COTERIE_TLS_CA": str(pki["payment service"].ca)})


async def test_a_certificate_cannot_act_as_another_service(
    tmp_path: Path, disc: DiscoveryFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # A stolen validator certificate, announced as "payment service": a
    # requester that wants payment service refuses it.
    caplog.set_level(logging.WARNING, logger="coterie")
    pki = write_pki(tmp_path, "validation service", "checkout")
    async with Responder(
        name="payment service", discovery=disc(), tls=pki["validation service"]
    ) as impostor:
        seen: list[object] = []
        impostor.on("pay", seen.append)
        async with Requester(
            name="checkout", discovery=disc(), tls=pki["checkout"], timeout=500 * MS
        ) as req:
            with pytest.raises(TimeoutError):
                await req.send({"type": "pay", "cardno": CARD})
        assert seen == []
    assert "not valid for 'payment-service'" in caplog.text


async def test_another_cas_certificate_is_refused(tmp_path: Path, disc: DiscoveryFactory) -> None:
    ours = write_pki(tmp_path, "validation service", ca_name="ours")
    theirs = write_pki(tmp_path, "payment service", ca_name="theirs")
    async with Responder(
        name="validation service", discovery=disc(), tls=ours["validation service"]
    ) as rep:
        seen: list[object] = []
        rep.on("validate", seen.append)
        async with Requester(
            name="payment service",
            discovery=disc(),
            tls=theirs["payment service"],
            timeout=500 * MS,
        ) as req:
            with pytest.raises(TimeoutError):
                await req.send({"type": "validate", "cardno": CARD})
        assert seen == [] and rep.links == frozenset()


def refused(out: str) -> bool:
    """s_client saw the server end the connection: an alert, a reset, or EOF."""
    return any(sign in out for sign in ("alert", "errno=104", "unexpected eof"))


async def _s_client(port: int, *args: str, served: Responder | None = None) -> str:
    """Run ``openssl s_client``, send one request frame, and return what it printed.

    It waits until the server closes the connection, or with ``served``
    until that responder has handled the request.
    """
    proc = await asyncio.create_subprocess_exec(
        "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3", *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(encode_request({"type": "validate", "cardno": CARD}, "1"))
    await proc.stdin.drain()
    try:
        if served is None:
            await asyncio.wait_for(proc.wait(), SOON)
        else:
            await wait_for(lambda: served.handled > 0, SOON)
    finally:
        if proc.returncode is None:
            proc.kill()
        out = await proc.stdout.read()
        await proc.wait()
    return out.decode(errors="replace")


async def test_openssl_s_client_without_a_certificate_is_refused(
    tmp_path: Path, disc: DiscoveryFactory
) -> None:
    pki = write_pki(tmp_path, "validation service")
    async with Responder(
        name="validation service", discovery=disc(), tls=pki["validation service"]
    ) as rep:
        seen: list[object] = []
        rep.on("validate", seen.append)
        out = await _s_client(rep.port, "-CAfile", str(pki["validation service"].ca))
        # The server drops the connection (TLS 1.3: after the client's Finished).
        assert refused(out), out
        assert seen == [] and rep.handled == 0


async def test_openssl_s_client_with_another_cas_certificate_is_refused(
    tmp_path: Path, disc: DiscoveryFactory
) -> None:
    ours = write_pki(tmp_path, "validation service", ca_name="ours")
    theirs = write_pki(tmp_path, "intruder", ca_name="theirs")
    async with Responder(
        name="validation service", discovery=disc(), tls=ours["validation service"]
    ) as rep:
        seen: list[object] = []
        rep.on("validate", seen.append)
        files = theirs["intruder"]
        out = await _s_client(rep.port, "-cert", str(files.cert), "-key", str(files.key))
        assert refused(out), out
        assert seen == [] and rep.handled == 0


async def test_openssl_s_client_with_our_cas_certificate_is_served(
    tmp_path: Path, disc: DiscoveryFactory
) -> None:
    # The control for the two refusals above: the same client, a good certificate.
    pki = write_pki(tmp_path, "validation service", "payment service")
    async with Responder(
        name="validation service", discovery=disc(), tls=pki["validation service"]
    ) as rep:
        rep.on("validate", lambda req: "ok")
        files = pki["payment service"]
        out = await _s_client(
            rep.port,
            "-cert", str(files.cert), "-key", str(files.key), "-CAfile", str(files.ca),
            served=rep,
        )  # fmt: skip
        assert "Verify return code: 0 (ok)" in out
        assert rep.handled == 1


async def test_a_relay_sees_only_ciphertext_and_cannot_inject(
    tmp_path: Path, disc: DiscoveryFactory
) -> None:
    """A party between requester and responder relays every byte: it learns nothing.

    The requester is pointed at the relay (as a forged hello would point it);
    the relay forwards both ways and records what passes, then tries to
    inject a request of its own into the stream.
    """
    pki = write_pki(tmp_path, "validation service", "payment service")
    passed = bytearray()
    writers: list[asyncio.StreamWriter] = []

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            passed.extend(data)
            writer.write(data)
        writer.close()

    async with Responder(
        name="validation service", discovery=disc(), tls=pki["validation service"]
    ) as rep:
        rep.on("validate", lambda req: req["cardno"] == CARD)

        async def relay(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            ur, uw = await asyncio.open_connection("127.0.0.1", rep.port)
            writers.append(uw)
            await asyncio.gather(pump(r, uw), pump(ur, w), return_exceptions=True)

        server = await asyncio.start_server(relay, "127.0.0.1", 0)
        relay_port = server.sockets[0].getsockname()[1]
        replies: list[list[object]] = []
        files = pki["payment service"]
        client_tls = TLS.from_files(ca=files.ca, cert=files.cert, key=files.key, server=False)
        link = await connect(
            "127.0.0.1",
            relay_port,
            lambda link, args: replies.append(args),
            lambda link, exc: None,
            tls=client_tls,
            server_name="validation service",
        )
        link.write(encode_request({"type": "validate", "cardno": CARD}, "r1"))
        await wait_for(lambda: bool(replies), SOON)
        assert replies == [[None, True, "r1"]]
        assert CARD.encode() not in passed and b"validate" not in passed
        # Inject a plaintext request into the responder's side of the stream.
        handled = rep.handled
        writers[0].write(encode_request({"type": "validate", "cardno": CARD}, "forged"))
        await writers[0].drain()
        # The TLS record check fails: the responder drops the link.
        await wait_for(lambda: not rep.links, SOON)
        assert rep.handled == handled
        link.close()
        server.close()


async def test_a_connection_that_never_starts_its_handshake_is_dropped_at_the_deadline(
    disc: DiscoveryFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import coterie.transport.network as network

    monkeypatch.setattr(network, "TLS_HANDSHAKE_TIMEOUT", 200 * MS)
    async with Responder("silent-tls", discovery=disc(), secret="deadline") as rep:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", rep.port)
        opened = loop.time()
        try:
            # Nothing sent: no handshake starts; the deadline drops it (EOF here).
            assert await asyncio.wait_for(reader.read(), 5_000 * MS) == b""
            assert loop.time() - opened >= 190 * MS
        finally:
            writer.close()
