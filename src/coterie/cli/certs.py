"""``coterie certs``: a development CA and per-service certificates for mutual TLS.

Design: a thin shell over :func:`coterie.tls.make_ca` and
:func:`coterie.tls.issue` (both built on ``cryptography``). ``init`` writes
``ca.key`` and ``ca.crt`` into ``--dir`` (``./certs`` by default; the option
goes before or after the action) and refuses to overwrite an existing CA,
saying how to use it or make another; ``issue NAME`` writes ``<dns-name>.key`` and
``<dns-name>.crt`` for service NAME, whose certificate carries the DNS name
:func:`coterie.tls.service_dns_name` derives from it, so it can serve only
as that service; it refuses to replace an existing pair unless given
``--force``. Keys are created with mode 0600 (``os.open`` with ``O_EXCL``:
never readable by others, not even for a moment, and never written through
a link planted at their path); ``--force`` writes a fresh file beside the old
one and renames it over it, so a reader sees the old file or the new one,
never half of one.
Point a component at them
with ``tls=TLSFiles(ca, cert, key)`` or ``COTERIE_TLS_CA`` / ``_CERT`` /
``_KEY``. For production, use your own PKI with the same names.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import tempfile
from pathlib import Path

from coterie.cli._common import Subparsers
from coterie.tls import issue, make_ca, service_dns_name

__all__ = ["register", "run"]

#: What a second ``init`` says: the CA is kept, and what to do instead.
_CA_EXISTS = (
    "coterie certs: a CA already exists in {dir}/ (ca.key, ca.crt) and is kept; "
    "issue certificates from it with `coterie certs issue NAME --dir {quoted}`, "
    "or make a new CA in another directory with `coterie certs init --dir OTHER` "
    "(services trust one CA: reissue every certificate from the new one)"
)

#: What ``issue`` says when the service already has a pair.
_PAIR_EXISTS = (
    "coterie certs: {key} and {cert} already exist and are kept; "
    "replace them with `coterie certs issue {name} --dir {quoted} --force`"
)


def register(subparsers: Subparsers) -> None:
    """Add the ``certs`` subcommand."""
    parser = subparsers.add_parser(
        "certs",
        help="make a development CA and per-service certificates for mutual TLS",
        description=(
            "Make a development CA (`init`) and certificates for services (`issue NAME`); "
            "each certificate carries the service's name, so it cannot act as another service."
        ),
    )
    parser.add_argument(
        "--dir", default=Path("certs"), type=Path, help="where the files go (default ./certs)"
    )
    # --dir also after the action (`coterie certs init --dir x`, as users type
    # it); SUPPRESS keeps an action's parser from resetting one given before.
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument(
        "--dir", default=argparse.SUPPRESS, type=Path, help="where the files go (default ./certs)"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("init", help="make ca.key and ca.crt", parents=[after])
    issue_parser = actions.add_parser(
        "issue", help="make a key and certificate for NAME", parents=[after]
    )
    issue_parser.add_argument(
        "name", help='the service name, as announced (e.g. "payment service")'
    )
    issue_parser.add_argument(
        "--days", type=int, default=397, help="validity in days (default 397)"
    )
    issue_parser.add_argument(
        "--force", action="store_true", help="replace an existing key and certificate for NAME"
    )
    parser.set_defaults(run=run)


def _write(path: Path, data: bytes, *, secret: bool, replace: bool = False) -> None:
    """Write a new file, 0600 from its creation when ``secret``.

    Without ``replace`` an existing ``path`` is an error (``FileExistsError``);
    with it, the data goes to a new file beside it (``mkstemp``: 0600, a name
    of its own) that is renamed over it.
    """
    if replace:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        target = Path(name)
        if not secret:
            os.fchmod(fd, 0o644)
    else:
        mode = 0o600 if secret else 0o644
        target = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if replace:
            os.replace(target, path)
    except BaseException:
        with contextlib.suppress(OSError):
            target.unlink()
        raise


def run(args: argparse.Namespace) -> int:
    """Run ``coterie certs``; returns the exit code."""
    directory: Path = args.dir
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    try:
        if args.action == "init":
            if ca_key.exists() or ca_cert.exists():
                quoted = shlex.quote(str(directory))
                print(_CA_EXISTS.format(dir=directory, quoted=quoted), file=sys.stderr)
                return 1
            directory.mkdir(parents=True, exist_ok=True)
            key, cert = make_ca()
            _write(ca_key, key, secret=True)
            _write(ca_cert, cert, secret=False)
            print(f"wrote {ca_key} and {ca_cert}")
            return 0
        if not ca_key.exists() or not ca_cert.exists():
            print(
                f"coterie certs: no CA in {directory}/: run "
                f"`coterie certs init --dir {shlex.quote(str(directory))}` first",
                file=sys.stderr,
            )
            return 1
        if args.days <= 0:
            print("coterie certs: --days must be positive", file=sys.stderr)
            return 2
        stem = service_dns_name(args.name)
        key_path, cert_path = directory / f"{stem}.key", directory / f"{stem}.crt"
        if not args.force and (key_path.exists() or cert_path.exists()):
            name = shlex.quote(args.name)
            quoted = shlex.quote(str(directory))
            print(
                _PAIR_EXISTS.format(key=key_path, cert=cert_path, name=name, quoted=quoted),
                file=sys.stderr,
            )
            return 1
        key, cert = issue(ca_key.read_bytes(), ca_cert.read_bytes(), args.name, days=args.days)
        _write(key_path, key, secret=True, replace=args.force)
        _write(cert_path, cert, secret=False, replace=args.force)
        print(f"wrote {directory / stem}.key and {directory / stem}.crt (DNS name {stem})")
        return 0
    except (OSError, ValueError) as exc:
        print(f"coterie certs: {exc}", file=sys.stderr)
        return 1
