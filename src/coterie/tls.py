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

Certificates change while a mesh runs, and no link drops for it. Before
each new handshake (a link opened, a connection accepted) :meth:`TLS.refresh`
renews a secret-rooted certificate once two thirds of its lifetime have
passed (two days by default, ``COTERIE_LINK_CERT_LIFETIME``; the rule is
:mod:`coterie.protocol.renewal`, time as an argument), and reads the files
again when one of them changed (cert-manager, Vault and ``coterie certs
issue --force`` rotate them). The new pair is loaded into the same
``SSLContext``, so listeners and connectors already holding it present it
from their next handshake on; links already made keep the certificate they
were made with. A pair that does not load (a rotation caught halfway) is
refused with one warning and the loaded one stays. A CA added to the CA file
is trusted from then on; one removed stays trusted until the process
restarts (a context cannot forget a CA). Nothing runs on a timer.

A listening component (Responder, Publisher, Monitor) uses the server side,
a connecting one (Requester, Subscriber) the client side. Components with TLS
advertise ``tls`` and pair only with peers that do; Node cote cannot do TLS,
so it never pairs with them (see docs/security.md).
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from coterie.protocol.renewal import renewal_due

# cryptography (about 10 MiB resident) is imported where certificates are
# made, not here: a component without TLS never loads it.
if TYPE_CHECKING:
    from pathlib import Path  # pathlib (with urllib.parse and ipaddress) is not needed at run time

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

__all__ = [
    "ADVERTISED",
    "SECRET_CERT_LIFETIME",
    "TLS",
    "TLSFiles",
    "describe_failure",
    "issue",
    "make_ca",
    "resolve_tls",
    "service_dns_name",
]

log = logging.getLogger("coterie.tls")

#: Seconds a certificate rooted in a link secret is valid (two days); it is
#: renewed after two thirds of that (:mod:`coterie.protocol.renewal`).
SECRET_CERT_LIFETIME = 2 * 86_400.0

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
    lifetime: float,
    key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
    now: float | None = None,
) -> x509.Certificate:
    """A service's certificate, valid for ``lifetime`` seconds from ``now`` (or at least that).

    X.509 counts whole seconds: the end is rounded up to the next one.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    dns = service_dns_name(name)
    start = time.time() if now is None else now
    end = math.ceil(start + lifetime)
    algorithm = None if isinstance(ca_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_utc(start - 300))  # five minutes of clock skew
        .not_valid_after(_utc(end))
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


def _utc(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


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
    return _pem_key(key), _pem_cert(_leaf(ca_key, ca_cert, name, days * 86_400.0, key))


def _context(server: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED  # mutual: the server asks for a client certificate
    if not server:
        ctx.check_hostname = True  # the peer's name is bound to its certificate
    return ctx


def _load_pair(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Give ``ctx`` this certificate and key for its next handshakes.

    The pair is loaded into a scratch context first: a pair that does not
    match raises ``ssl.SSLError`` there and leaves ``ctx`` as it was (a
    failed load on ``ctx`` itself could drop its key). Handshakes already
    made keep the pair they were made with.

    Raises:
        ssl.SSLError: When the certificate and key do not form a pair.
        OSError: When the temporary files cannot be written.
    """
    # load_cert_chain reads files only: write the pair to a private temporary
    # directory that is gone as soon as it is loaded.
    import tempfile  # with shutil, bz2 and lzma: only for a component that uses TLS
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="coterie-tls-") as tmp:
        cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        cert_path.write_bytes(cert_pem)
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)
        ctx.load_cert_chain(cert_path, key_path)


class _Renewed:
    """A certificate made from the secret's CA, replaced when :func:`renewal_due` says so."""

    __slots__ = ("ca_cert", "ca_key", "expires", "issued", "lifetime", "name", "troubled")

    def __init__(
        self,
        ca_key: ed25519.Ed25519PrivateKey,
        ca_cert: x509.Certificate,
        name: str,
        lifetime: float,
    ) -> None:
        self.ca_key, self.ca_cert, self.name, self.lifetime = ca_key, ca_cert, name, lifetime
        self.issued = self.expires = 0.0
        self.troubled = False

    def load(self, ctx: ssl.SSLContext, now: float) -> None:
        """Make a fresh key and certificate and give them to ``ctx``."""
        from cryptography.hazmat.primitives.asymmetric import ed25519

        key = ed25519.Ed25519PrivateKey.generate()
        cert = _leaf(self.ca_key, self.ca_cert, self.name, self.lifetime, key, now)
        _load_pair(ctx, _pem_cert(cert), _pem_key(key))
        self.issued, self.expires = now, cert.not_valid_after_utc.timestamp()

    def refresh(self, ctx: ssl.SSLContext, now: float) -> bool:
        if not renewal_due(now, self.issued, self.expires):
            return False
        try:
            self.load(ctx, now)
        except (OSError, ssl.SSLError) as exc:  # keep the one it has; try at the next handshake
            if not self.troubled:
                log.warning(
                    "renewing the certificate of %r failed (%s); the current one is kept "
                    "until %s and renewal is tried again at each new link",
                    self.name,
                    exc,
                    _utc(self.expires).isoformat(),
                )
            self.troubled = True
            return False
        self.troubled = False
        log.debug("renewed the certificate of %r until %s", self.name, _utc(self.expires))
        return True


#: What identifies a version of the files: device, inode, size and mtime of each.
_Stamp = tuple[tuple[int, int, int, int], ...]


class _Reloaded:
    """Certificate files, read again when they change (cert-manager, Vault and such rotate them).

    Before each new handshake the three files are stat'ed (three system
    calls, microseconds, against a handshake's hundreds); a new device,
    inode, size or modification time of any of them reloads them. A pair
    that does not match (the key written, its certificate not yet) is not
    loaded: the current one stays until the files change again.
    """

    __slots__ = ("files", "refused", "stamp")

    def __init__(self, files: TLSFiles, stamp: _Stamp) -> None:
        self.files = files
        self.stamp = stamp
        #: The version of the files that failed to load, said once.
        self.refused: _Stamp | str | None = None

    @staticmethod
    def stamp_of(files: TLSFiles) -> _Stamp:
        """Raises ``OSError`` when a file is missing."""
        stamps = []
        for path in files:
            st = os.stat(path)
            stamps.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(stamps)

    def refresh(self, ctx: ssl.SSLContext, now: float) -> bool:
        try:
            stamp = self.stamp_of(self.files)
        except OSError as exc:  # mid-rotation, say: keep what is loaded
            self._refused(str(exc), exc)
            return False
        if stamp in (self.stamp, self.refused):
            return False
        try:
            ca, cert, key = (_read(path) for path in self.files)
            # A new CA joins those trusted; one that left the file stays
            # trusted until the process restarts (a context cannot forget one).
            ctx.load_verify_locations(cadata=ca.decode("ascii", "replace"))
            _load_pair(ctx, cert, key)
        except (OSError, ssl.SSLError) as exc:
            self._refused(stamp, exc)
            return False
        self.stamp, self.refused = stamp, None
        log.info("reloaded the TLS files %s, %s", self.files.cert, self.files.key)
        return True

    def _refused(self, version: _Stamp | str, exc: BaseException) -> None:
        if version != self.refused:
            log.warning(
                "reloading the TLS files %s, %s failed (%s); the pair loaded before "
                "is kept until they change again",
                self.files.cert,
                self.files.key,
                exc,
            )
        self.refused = version


def _read(path: str | Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@dataclass(frozen=True, slots=True)
class TLS:
    """The TLS context of one side of a component's links.

    Certificates that may change are kept current before each new handshake
    (:meth:`refresh`; links already made keep theirs): one rooted in a
    secret is renewed after two thirds of its lifetime, files are read
    again when they change. A context you built is yours to keep current.

    Attributes:
        context: The ``ssl.SSLContext`` its links use.
        server: Whether it is the listening side's context.
    """

    context: ssl.SSLContext
    server: bool
    _source: _Renewed | _Reloaded | None = field(default=None, repr=False, compare=False)

    @property
    def checks_names(self) -> bool:
        """Whether a connecting side checks the peer's announced name."""
        return not self.server and self.context.check_hostname

    @property
    def expires(self) -> float | None:
        """When the certificate this side presents ends (POSIX seconds), for one rooted in a secret.

        ``None`` for files and contexts: ``coterie doctor`` reads theirs.
        """
        return self._source.expires if isinstance(self._source, _Renewed) else None

    def refresh(self, now: float | None = None) -> bool:
        """Renew or reload this side's certificate if it is time; called before each new handshake.

        Args:
            now: The time (POSIX seconds); the current time by default.

        Returns:
            Whether the next handshakes present another certificate.
        """
        if self._source is None:
            return False
        return self._source.refresh(self.context, time.time() if now is None else now)

    @classmethod
    def from_files(cls, *, ca: str | Path, cert: str | Path, key: str | Path, server: bool) -> TLS:
        """Mutual TLS from PEM files: the CA that signs every peer, and this service's pair.

        The files are read again when they change (:meth:`refresh`).

        Raises:
            OSError: When a file cannot be read.
            ssl.SSLError: When they do not form a valid pair or CA.
        """
        files = TLSFiles(ca, cert, key)
        stamp = _Reloaded.stamp_of(files)  # before reading: a change meanwhile reloads
        ctx = _context(server)
        ctx.load_verify_locations(cafile=str(ca))
        ctx.load_cert_chain(str(cert), str(key))
        return cls(ctx, server, _Reloaded(files, stamp))

    @classmethod
    def from_secret(
        cls,
        secret: str | bytes,
        name: str,
        *,
        server: bool,
        lifetime: float | None = None,
    ) -> TLS:
        """Mutual TLS rooted in a shared secret (see the module doc).

        Args:
            secret: The shared secret.
            name: The service's name (its certificate's DNS name comes from it).
            server: Whether this is the listening side.
            lifetime: Seconds each certificate is valid, renewed after two
                thirds of it; :data:`SECRET_CERT_LIFETIME` (two days) by default
                (``COTERIE_LINK_CERT_LIFETIME`` for a component).

        Raises:
            ValueError: For an empty secret, or a lifetime under a second.
        """
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        raw = secret.encode() if isinstance(secret, str) else bytes(secret)
        if not raw:
            raise ValueError("a link secret must not be empty")
        if lifetime is None:
            lifetime = SECRET_CERT_LIFETIME
        if not lifetime >= 1:
            raise ValueError(f"a certificate lifetime is at least 1 second, got {lifetime!r}")
        seed = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"coterie link secret", info=b"mesh CA"
        ).derive(raw)
        ca_key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        ca_cert = _ca_certificate(ca_key, _CA_NAME)
        ctx = _context(server)
        ctx.load_verify_locations(cadata=_pem_cert(ca_cert).decode())
        source = _Renewed(ca_key, ca_cert, name, lifetime)
        source.load(ctx, time.time())
        return cls(ctx, server, source)

    @classmethod
    def from_context(cls, context: ssl.SSLContext) -> TLS:
        """Use an ``ssl.SSLContext`` you built; its purpose decides the side."""
        return cls(context, context.protocol == ssl.PROTOCOL_TLS_SERVER)


def resolve_tls(
    tls: ssl.SSLContext | TLSFiles | None,
    secret: str | None,
    name: str,
    *,
    server: bool,
    lifetime: float | None = None,
) -> TLS | None:
    """A component's TLS from what it was given: a context, PEM files, or a link secret.

    Args:
        tls: An ``ssl.SSLContext`` (its purpose decides the side), a
            :class:`TLSFiles`, or ``None``.
        secret: A shared secret to root the mesh's CA in, when ``tls`` is ``None``.
        name: The component's service name (its certificate's, from a secret).
        server: Whether it listens (the TLS server side).
        lifetime: Seconds a secret-rooted certificate lives (default
            :data:`SECRET_CERT_LIFETIME`).

    Returns:
        The TLS to run links with, or ``None`` for plaintext.

    Raises:
        TypeError: ``tls`` is neither a context nor files.
    """
    if isinstance(tls, ssl.SSLContext):
        return TLS.from_context(tls)
    if isinstance(tls, TLSFiles):
        return TLS.from_files(ca=tls.ca, cert=tls.cert, key=tls.key, server=server)
    if tls is not None:
        raise TypeError(f"tls must be an ssl.SSLContext or TLSFiles, got {type(tls).__name__}")
    if secret is not None:
        return TLS.from_secret(secret, name, server=server, lifetime=lifetime)
    return None
