"""coterie certs: a CA and service certificates that mutual TLS accepts."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from coterie.cli import main


def certs(tmp: Path, *argv: str) -> int:
    return main(["certs", "--dir", str(tmp), *argv])


def test_init_then_issue_writes_a_chain_openssl_verifies(tmp_path: Path) -> None:
    assert certs(tmp_path, "init") == 0
    assert certs(tmp_path, "issue", "Payment Service") == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "payment-service.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["payment-service"]
    for key in ("ca.key", "payment-service.key"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"),
         str(tmp_path / "payment-service.crt")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0 and ": OK" in verify.stdout


def test_errors_are_one_line_and_non_zero(tmp_path: Path, capsys: object) -> None:
    assert certs(tmp_path, "issue", "x") == 1  # no CA yet
    assert certs(tmp_path, "init") == 0
    assert certs(tmp_path, "init") == 1  # never overwrite a CA
    assert certs(tmp_path, "issue", "x", "--days", "0") == 2
    proc = subprocess.run(
        [sys.executable, "-m", "coterie", "certs", "--dir", str(tmp_path / "none"), "issue", "x"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"coterie certs: no CA in {tmp_path / 'none'}/: run "
        f"`coterie certs init --dir {tmp_path / 'none'}` first"
    ]


def test_dir_goes_after_the_action_too_and_a_second_init_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "x"
    assert main(["certs", "init", "--dir", str(ca)]) == 0  # as users type it
    assert (ca / "ca.key").exists() and (ca / "ca.crt").exists()
    assert not Path("certs").exists() or Path("certs").resolve() != ca
    assert main(["certs", "issue", "payment service", "--dir", str(ca)]) == 0
    assert (ca / "payment-service.crt").exists()
    assert main(["certs", "--dir", str(ca), "issue", "rates"]) == 0  # before it, as before
    assert (ca / "rates.crt").exists()
    before = (ca / "ca.key").read_bytes()
    capsys.readouterr()
    assert main(["certs", "init", "--dir", str(ca)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"coterie certs: a CA already exists in {ca}/ (ca.key, ca.crt) and is kept; "
        f"issue certificates from it with `coterie certs issue NAME --dir {ca}`, "
        "or make a new CA in another directory with `coterie certs init --dir OTHER` "
        "(services trust one CA: reissue every certificate from the new one)"
    ]
    assert (ca / "ca.key").read_bytes() == before


def test_keys_are_private_from_their_creation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A key written with the umask's mode and chmodded after is readable by
    # others for a moment: no chmod may be what makes it private.
    def no_chmod(*args: object, **kwargs: object) -> None:
        raise AssertionError("a key file was made private after its creation")

    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(Path, "chmod", no_chmod)
    old = os.umask(0o022)
    try:
        assert certs(tmp_path, "init") == 0
        assert certs(tmp_path, "issue", "payment") == 0
        assert certs(tmp_path, "issue", "payment", "--force") == 0
    finally:
        os.umask(old)
    for key in ("ca.key", "payment.key"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "payment.crt").stat().st_mode) == 0o644


def test_a_key_is_never_written_through_a_planted_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stolen = tmp_path / "stolen"
    (tmp_path / "ca.key").symlink_to(stolen)  # dangling: exists() says no
    assert certs(tmp_path, "init") == 1
    assert not stolen.exists()
    assert "File exists" in capsys.readouterr().err


def test_issue_keeps_an_existing_pair_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert certs(tmp_path, "init") == 0
    assert certs(tmp_path, "issue", "payment service") == 0
    key, cert = tmp_path / "payment-service.key", tmp_path / "payment-service.crt"
    before = key.read_bytes(), cert.read_bytes()
    capsys.readouterr()
    assert certs(tmp_path, "issue", "payment service") == 1
    assert capsys.readouterr().err.splitlines() == [
        f"coterie certs: {key} and {cert} already exist and are kept; replace them with "
        f"`coterie certs issue 'payment service' --dir {tmp_path} --force`"
    ]
    assert (key.read_bytes(), cert.read_bytes()) == before
    assert certs(tmp_path, "issue", "payment service", "--force") == 0
    assert key.read_bytes() != before[0] and cert.read_bytes() != before[1]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ca.crt",
        "ca.key",
        "payment-service.crt",
        "payment-service.key",
    ]
