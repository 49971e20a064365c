"""A real etcd server for the tests that need one, on free loopback ports.

Debian's ``etcd-server`` package provides it (``scripts/system-deps.sh``
installs it); tests skip with a reason only where the binary is absent.
It runs as users secure it where asked: TLS with client certificates
(``--client-cert-auth``, :class:`EtcdTLS`), and users and roles with
authentication enabled (:meth:`EtcdServer.enable_auth`).
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import MS, free_port

ETCD = shutil.which("etcd")


@dataclass(frozen=True)
class EtcdTLS:
    """PEM files for an etcd that speaks TLS and asks clients for certificates.

    One CA signs etcd's certificate (for ``localhost``) and a client's (with
    no Common Name: etcd's JSON gateway refuses one that has a Common Name
    once authentication is on).
    """

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str

    @classmethod
    def make(cls, directory: Path) -> EtcdTLS:
        """A new CA and the two certificates, written to ``directory``."""
        from cryptography.x509 import load_pem_x509_certificate

        from coterie.tls import issue, make_ca

        ca_key, ca_cert = make_ca("coterie test etcd CA")
        server_key, server_cert = issue(ca_key, ca_cert, "localhost")
        client_key, client_cert = _client_certificate(ca_key, ca_cert)
        assert load_pem_x509_certificate(client_cert).subject.rfc4514_string() == ""
        files = {
            "ca": ca_cert,
            "server_cert": server_cert,
            "server_key": server_key,
            "client_cert": client_cert,
            "client_key": client_key,
        }
        for name, pem in files.items():
            (directory / f"{name}.pem").write_bytes(pem)
        return cls(**{name: str(directory / f"{name}.pem") for name in files})

    def context(self, *, client_cert: bool = True) -> ssl.SSLContext:
        """A client context that trusts the CA (and shows the client certificate)."""
        context = ssl.create_default_context(cafile=self.ca)
        if client_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context


def _client_certificate(ca_key_pem: bytes, ca_cert_pem: bytes) -> tuple[bytes, bytes]:
    """A client certificate with an empty subject, signed by the CA: ``(key, cert)``."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("coterie-client")]), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


class EtcdServer:
    """One single-member etcd with its data in a temporary directory.

    It can be stopped and started again on the same ports, with its data
    (as a restart in production) or without it (``wipe=True``, a member
    replaced by an empty one).

    Args:
        host: The address to listen on (loopback, or a bed host's address).
        netns: Run it in this network namespace (``ip netns exec``).
        tls: Serve TLS and ask every client for a certificate
            (``--client-cert-auth``) with these files; :attr:`url` is then
            ``https://localhost:PORT``, the name in etcd's certificate.
    """

    def __init__(
        self, host: str = "127.0.0.1", netns: str | None = None, tls: EtcdTLS | None = None
    ) -> None:
        if ETCD is None:
            pytest.skip("etcd is not installed (Debian: etcd-server)")
        self.host = host
        self.netns = netns
        self.tls = tls
        self.port = free_port()
        self.peer_port = free_port()
        self.url = f"http://{host}:{self.port}" if tls is None else f"https://localhost:{self.port}"
        self._listen = self.url if tls is None else f"https://{host}:{self.port}"
        #: The root user's token once :meth:`enable_auth` ran.
        self.root_token: str | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="coterie-etcd-")
        self.data_dir = Path(self._dir.name) / "data"
        self._proc: subprocess.Popen[bytes] | None = None
        self.log = Path(self._dir.name) / "etcd.log"

    def start(self, timeout: float = 20_000 * MS) -> None:
        """Start it and wait until it serves reads."""
        assert ETCD is not None
        peer = f"http://{self.host}:{self.peer_port}"
        argv = [
            ETCD,
            "--name", "coterie-test",
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self._listen,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"coterie-test={peer}",
            "--log-level", "warn",
        ]  # fmt: skip
        if self.tls is not None:
            argv += [
                "--client-cert-auth",
                "--trusted-ca-file", self.tls.ca,
                "--cert-file", self.tls.server_cert,
                "--key-file", self.tls.server_key,
            ]  # fmt: skip
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        with self.log.open("ab") as log:
            proc = self._proc = subprocess.Popen(argv, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"etcd exited with {proc.returncode}: {self.log.read_text()[-2000:]}")
            if self._healthy():
                return
            if time.monotonic() > deadline:
                pytest.fail(f"etcd did not serve within {timeout} s")
            time.sleep(20 * MS)

    def _healthy(self) -> bool:
        if self.netns is not None:
            check = subprocess.run(
                ["ip", "netns", "exec", self.netns, "python3", "-c",
                 "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=0.2)",
                 self.url + "/health"],
                capture_output=True, check=False,
            )  # fmt: skip
            return check.returncode == 0
        context = self.tls.context() if self.tls is not None else None
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=0.2, context=context) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def call(self, path: str, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        """One call to etcd's JSON gateway as an administrator would make it.

        Raises:
            AssertionError: When etcd refuses it, with etcd's answer.
        """
        context = self.tls.context() if self.tls is not None else None
        headers = {"Authorization": token} if token else {}
        request = urllib.request.Request(self.url + path, json.dumps(body).encode(), headers)
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as resp:
                answer: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"etcd refused {path}: {exc.code} {exc.read()[:300]!r}") from None
        return answer

    def enable_auth(self, users: dict[str, str], prefix: str = "/coterie/") -> None:
        """Turn authentication on, as ``etcdctl auth enable`` does, with ``users``.

        A ``root`` user (password ``root-password``) holds the root role; each
        of ``users`` (name: password) gets a role that may read and write
        keys under ``prefix`` only. :attr:`root_token` is root's token.
        """
        end = bytearray(prefix.encode())
        end[-1] += 1
        perm = {"permType": "READWRITE", "key": base64.b64encode(prefix.encode()).decode(),
                "range_end": base64.b64encode(bytes(end)).decode()}  # fmt: skip
        self.call("/v3/auth/role/add", {"name": "root"})
        self.call("/v3/auth/user/add", {"name": "root", "password": "root-password"})
        self.call("/v3/auth/user/grant", {"user": "root", "role": "root"})
        self.call("/v3/auth/role/add", {"name": "mesh"})
        self.call("/v3/auth/role/grant", {"name": "mesh", "perm": perm})
        for name, password in users.items():
            self.call("/v3/auth/user/add", {"name": name, "password": password})
            self.call("/v3/auth/user/grant", {"user": name, "role": "mesh"})
        self.call("/v3/auth/enable", {})
        answer = self.call("/v3/auth/authenticate", {"name": "root", "password": "root-password"})
        self.root_token = answer["token"]

    def stop(self, *, wipe: bool = False) -> None:
        """Stop it (SIGTERM, then wait); ``wipe`` deletes its data too."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5_000 * MS)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if wipe:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def close(self) -> None:
        """Stop it and delete its directory."""
        self.stop()
        self._dir.cleanup()


@pytest.fixture
def etcd_server() -> Iterator[EtcdServer]:
    """A started etcd that the test may stop and start again."""
    server = EtcdServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def etcd_url(etcd_server: EtcdServer) -> str:
    """The client URL of an etcd started for one test."""
    return etcd_server.url
