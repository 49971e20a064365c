"""Channel security: mutual TLS on every link, with Python's ``ssl``.

Design: coterie does not invent a handshake. Every link of a component with
TLS is a TLS 1.3 connection on which both sides present a certificate that
must chain to the mesh's CA (mutual TLS). What TLS gives, and a home-made
handshake did not: the keys are bound to the connection, so a party that
relays the handshake bytes can neither read nor inject a single frame, and
every frame is encrypted and authenticated.

Names are bound too: a connecting side checks that the listening peer's
certificate carries the DNS name :func:`service_dns_name` derives from the
name that peer announces. A certificate issued to "validation service"
therefore cannot pose as "payment service".

Where the CA comes from:

- :meth:`TLS.from_files`: a CA certificate, and this service's certificate
  and key, e.g. made by ``coterie certs init`` / ``coterie certs issue NAME``
  (:func:`make_ca`, :func:`issue`) or by your own PKI
  (``COTERIE_TLS_CA``, ``COTERIE_TLS_CERT``, ``COTERIE_TLS_KEY``);
- :meth:`TLS.from_secret`: a shared secret (``COTERIE_LINK_SECRET``) is the
  root: the CA key is derived from it with HKDF-SHA256 (Ed25519, so the CA
  certificate is byte-identical in every process), and each component makes
  a fresh key and certificate signed by it at start. Knowing the secret is
  knowing the CA: keep it as you would a CA key.
- :meth:`TLS.from_context`: an ``ssl.SSLContext`` you built.

A listening component (Responder, Publisher, Monitor) uses the server side,
a connecting one (Requester, Subscriber) the client side. Components with TLS
advertise ``tls`` and pair only with peers that do; Node cote cannot do TLS,
so it never pairs with them (see docs/security.md).
"""

from __future__ import annotations

import datetime
import re
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

# cryptography (about 10 MiB resident) is imported where certificates are
# made, not here: a component without TLS never loads it.
if TYPE_CHECKING:
    from pathlib import Path  # pathlib (with urllib.parse and ipaddress) is not needed at run time

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

__all__ = [
    "ADVERTISED",
    "TLS",
    "TLSFiles",
    "describe_failure",
    "issue",
    "make_ca",
    "service_dns_name",
]

#: Advertisement field (and value) of components whose links are TLS.
ADVERTISED = ("tls", "mtls/1")

_CA_NAME = "coterie mesh CA"
_EPOCH = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
_FAR = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)
_NOT_DNS = re.compile(r"[^a-z0-9]+")


#: TLS alerts a peer sends when it refuses the certificate this side presented.
_REFUSED_OURS = frozenset(
    {
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_ACCESS_DENIED",
        "TLSV1_ALERT_DECRYPT_ERROR",
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
    }
)


def describe_failure(exc: BaseException | None) -> str:
    """Whose certificate a failed TLS handshake refused, in words that say what to change.

    ``exc`` is the ``ssl`` error (or an error caused by one). A certificate
    this side could not verify, and one the peer refused with an alert, read
    differently: the fix is on the other side in the first case, and in this
    side's own ``COTERIE_TLS_CERT`` (or secret) in the second.
    """
    while exc is not None and not isinstance(exc, ssl.SSLError):
        exc = exc.__cause__
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"this side could not verify the peer's certificate ({exc.verify_message}): "
            "the peer's certificate must be issued by the CA this side trusts "
            "(COTERIE_TLS_CA, or the same COTERIE_LINK_SECRET) for the name it announces"
        )
    reason = getattr(exc, "reason", None)
    if reason in _REFUSED_OURS:
        return (
            f"the peer refused this side's certificate ({str(reason).lower()}): "
            "this side's COTERIE_TLS_CERT must be issued by the CA the peer trusts "
            "(or both must use the same COTERIE_LINK_SECRET)"
        )
    return f"the TLS handshake failed ({exc})" if exc is not None else "the TLS handshake failed"


class TLSFiles(NamedTuple):
    """Paths to PEM files: the CA that signs every peer, and this service's pair."""

    ca: str | Path
    cert: str | Path
    key: str | Path


def service_dns_name(name: str) -> str:
    """The DNS name a service's certificate carries.

    ``"Payment Service"`` -> ``payment-service``: lower case, every run of
    other characters one dash, at most 63 characters.
    """
    label = _NOT_DNS.sub("-", name.lower()).strip("-")[:63].strip("-")
    return label or "coterie-service"


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates (and revocation lists); a service signs handshakes."""
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_certificate(
    key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey, name: str
) -> x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(_EPOCH)
        .not_valid_after(_FAR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(key, algorithm)
    )


def _authority_key_id(
    ca_key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
) -> x509.AuthorityKeyIdentifier:
    """The Authority Key Identifier of certificates ``ca_cert`` signs.

    Strict verification (``ssl.VERIFY_X509_STRICT``, on by default from
    Python 3.13) refuses a certificate without one. It is the CA's Subject
    Key Identifier, or, for a CA made before coterie added one, the same
    SHA-1 of its public key that identifier would hold.
    """
    from cryptography import x509

    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _leaf(
    ca_key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    name: str,
    days: int,
    key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    dns = service_dns_name(name)
    now = datetime.datetime.now(datetime.UTC)
    algorithm = None if isinstance(ca_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_id(ca_key, ca_cert), critical=False)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, algorithm)
    )


def _pem_key(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(common_name: str = _CA_NAME) -> tuple[bytes, bytes]:
    """A new development CA (ECDSA P-256).

    Returns:
        ``(key_pem, cert_pem)``.
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return _pem_key(key), _pem_cert(_ca_certificate(key, common_name))


def issue(
    ca_key_pem: bytes, ca_cert_pem: bytes, name: str, *, days: int = 397
) -> tuple[bytes, bytes]:
    """A certificate for service ``name``, signed by the CA, for server and client use.

    Its DNS name is :func:`service_dns_name` of ``name``.

    Returns:
        ``(key_pem, cert_pem)``.

    Raises:
        ValueError: When the CA key or certificate cannot be read.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key must be an ECDSA or Ed25519 key")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    return _pem_key(key), _pem_cert(_leaf(ca_key, ca_cert, name, days, key))


def _context(server: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED  # mutual: the server asks for a client certificate
    if not server:
        ctx.check_hostname = True  # the peer's name is bound to its certificate
    return ctx


@dataclass(frozen=True, slots=True)
class TLS:
    """The TLS context of one side of a component's links.

    Attributes:
        context: The ``ssl.SSLContext`` its links use.
        server: Whether it is the listening side's context.
    """

    context: ssl.SSLContext
    server: bool

    @property
    def checks_names(self) -> bool:
        """Whether a connecting side checks the peer's announced name."""
        return not self.server and self.context.check_hostname

    @classmethod
    def from_files(cls, *, ca: str | Path, cert: str | Path, key: str | Path, server: bool) -> TLS:
        """Mutual TLS from PEM files: the CA that signs every peer, and this service's pair.

        Raises:
            OSError: When a file cannot be read.
            ssl.SSLError: When they do not form a valid pair or CA.
        """
        ctx = _context(server)
        ctx.load_verify_locations(cafile=str(ca))
        ctx.load_cert_chain(str(cert), str(key))
        return cls(ctx, server)

    @classmethod
    def from_secret(cls, secret: str | bytes, name: str, *, server: bool) -> TLS:
        """Mutual TLS rooted in a shared secret (see the module doc).

        Raises:
            ValueError: For an empty secret.
        """
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        raw = secret.encode() if isinstance(secret, str) else bytes(secret)
        if not raw:
            raise ValueError("a link secret must not be empty")
        seed = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"coterie link secret", info=b"mesh CA"
        ).derive(raw)
        ca_key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        ca_cert = _ca_certificate(ca_key, _CA_NAME)
        key = ed25519.Ed25519PrivateKey.generate()
        cert = _leaf(ca_key, ca_cert, name, 2, key)
        ctx = _context(server)
        ctx.load_verify_locations(cadata=_pem_cert(ca_cert).decode())
        # load_cert_chain reads files only: write the fresh pair to a private
        # temporary directory that is gone as soon as it is loaded.
        import tempfile  # with shutil, bz2 and lzma: only for a component that uses TLS
        from pathlib import Path

        with tempfile.TemporaryDirectory(prefix="coterie-tls-") as tmp:
            cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            key_path.touch(mode=0o600)
            key_path.write_bytes(_pem_key(key))
            cert_path.write_bytes(_pem_cert(cert))
            ctx.load_cert_chain(str(cert_path), str(key_path))
        return cls(ctx, server)

    @classmethod
    def from_context(cls, context: ssl.SSLContext) -> TLS:
        """Use an ``ssl.SSLContext`` you built; its purpose decides the side."""
        return cls(context, context.protocol == ssl.PROTOCOL_TLS_SERVER)
