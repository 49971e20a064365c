"""coterie certs: a CA and service certificates that mutual TLS accepts."""

from __future__ import annotations

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
