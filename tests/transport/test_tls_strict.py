"""coterie's certificates pass strict X.509 verification (``ssl.VERIFY_X509_STRICT``).

Python 3.13's default context sets that flag, and OpenSSL then refuses a
certificate without an Authority Key Identifier, a CA without a Subject Key
Identifier, and so on. Each test here verifies a chain with the flag on: with
this interpreter's ``ssl`` (a handshake in memory, and a mesh over real
sockets), and with the default context of Python 3.12 (flag added) and 3.13
(strict by default) in a subprocess, when they are installed.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from coterie import Requester, Responder, TLSFiles
from coterie.tls import TLS, issue, make_ca
from tests.helpers import MS, DiscoveryFactory

SOON = 5_000 * MS


def handshake_end(client: ssl.SSLContext, server: ssl.SSLContext, name: str) -> ssl.SSLObject:
    """Run a TLS handshake between two contexts in memory; returns the client's end."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    theirs_in, theirs_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    ours = client.wrap_bio(to_client, to_server, server_hostname=name)
    theirs = server.wrap_bio(theirs_in, theirs_out, server_side=True)
    for _ in range(8):
        for side in (ours, theirs):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        theirs_in.write(to_server.read())
        to_client.write(theirs_out.read())
    assert ours.version() is not None, "the handshake did not finish"
    return ours


def handshake(client: ssl.SSLContext, server: ssl.SSLContext, name: str) -> str:
    """Run a TLS handshake between two contexts in memory; returns the version agreed."""
    return str(handshake_end(client, server, name).version())


def strict(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    return ctx


def write_pair(tmp: Path, name: str) -> TLSFiles:
    ca_key, ca_cert = make_ca()
    key, cert = issue(ca_key, ca_cert, name)
    files = TLSFiles(tmp / "ca.crt", tmp / f"{name}.crt", tmp / f"{name}.key")
    Path(files.ca).write_bytes(ca_cert)
    Path(files.cert).write_bytes(cert)
    Path(files.key).write_bytes(key)
    return files


def test_issued_certificates_pass_strict_verification(tmp_path: Path) -> None:
    # Mutual: each side verifies the other's certificate strictly.
    files = write_pair(tmp_path, "payment")
    server = strict(TLS.from_files(**files._asdict(), server=True).context)
    client = strict(TLS.from_files(**files._asdict(), server=False).context)
    assert handshake(client, server, "payment") == "TLSv1.3"


def test_secret_rooted_certificates_pass_strict_verification() -> None:
    server = strict(TLS.from_secret("s", "vault", server=True).context)
    client = strict(TLS.from_secret("s", "teller", server=False).context)
    assert handshake(client, server, "vault") == "TLSv1.3"


def test_the_extensions_strict_verification_needs(tmp_path: Path) -> None:
    files = write_pair(tmp_path, "payment")
    ca = x509.load_pem_x509_certificate(Path(files.ca).read_bytes())
    leaf = x509.load_pem_x509_certificate(Path(files.cert).read_bytes())
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca


def test_a_ca_made_before_key_identifiers_still_issues_matching_ones(tmp_path: Path) -> None:
    # A CA made by an older coterie has no Subject Key Identifier: what it
    # issues now names it by the same SHA-1 of its key, so it still verifies.
    import datetime as dt

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "old CA")])
    now = dt.datetime.now(dt.UTC)
    old_ca = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    ca_pem = old_ca.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    leaf_key, leaf_pem = issue(key_pem, ca_pem, "payment")
    leaf = x509.load_pem_x509_certificate(leaf_pem)
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    expected = x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
    assert aki.key_identifier == expected
    files = TLSFiles(tmp_path / "ca.crt", tmp_path / "p.crt", tmp_path / "p.key")
    for path, data in zip(files, (ca_pem, leaf_pem, leaf_key), strict=True):
        Path(path).write_bytes(data)
    server = TLS.from_files(**files._asdict(), server=True).context
    client = TLS.from_files(**files._asdict(), server=False).context
    assert handshake(client, server, "payment") == "TLSv1.3"


async def test_a_mesh_with_strict_verification_on_both_sides(disc: DiscoveryFactory) -> None:
    responder = Responder(name="vault", discovery=disc(), secret="k")
    requester = Requester(name="teller", discovery=disc(), secret="k", timeout=SOON)
    for component in (responder, requester):
        assert component.tls is not None
        strict(component.tls.context)
    responder.on("open", lambda req: "opened")
    async with responder, requester:
        assert await requester.send({"type": "open"}) == "opened"


@functools.cache
def python(minor: int) -> str | None:
    """A Python 3.``minor`` interpreter on this machine (pyenv's, or on PATH), if there is one."""
    pyenv = sorted(glob.glob(f"/root/.pyenv/versions/3.{minor}.*/bin/python3"), reverse=True)
    named = shutil.which(f"python3.{minor}")
    for candidate in [*pyenv, *([named] if named else [])]:
        probe = [
            candidate,
            "-I",
            "-c",
            f"import sys; sys.exit(sys.version_info[:2] != (3, {minor}))",
        ]
        if subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0:
            return candidate
    return None


#: Run by another interpreter: a handshake with its default context, made
#: strict where it is not already (it is from 3.13 on).
_VERIFY = """
import ssl, sys
ca, cert, key, name = sys.argv[1:]
client = ssl.create_default_context(cafile=ca)
if sys.version_info >= (3, 13):
    assert client.verify_flags & ssl.VERIFY_X509_STRICT, "not a strict default context"
client.verify_flags |= ssl.VERIFY_X509_STRICT
server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server.load_cert_chain(cert, key)
to_server, to_client, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
ours = client.wrap_bio(to_client, to_server, server_hostname=name)
theirs = server.wrap_bio(s_in, s_out, server_side=True)
for _ in range(8):
    for side in (ours, theirs):
        try:
            side.do_handshake()
        except ssl.SSLWantReadError:
            pass
    s_in.write(to_server.read())
    to_client.write(s_out.read())
print(sys.version_info[:2], ours.version())
"""


@pytest.mark.parametrize("minor", [12, 13])
def test_another_pythons_strict_default_context_accepts_the_chain(
    minor: int, tmp_path: Path
) -> None:
    interpreter = python(minor)
    if interpreter is None:
        pytest.skip(f"no Python 3.{minor} interpreter on this machine")
    files = write_pair(tmp_path, "payment service")
    done = subprocess.run(
        [interpreter, "-I", "-c", _VERIFY, *map(str, files), "payment-service"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"(3, {minor}) TLSv1.3", done.stdout
