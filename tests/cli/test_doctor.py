"""``coterie doctor``: a healthy mesh, each broken one, and the TLS file checks.

The mesh cases run the real command in a subprocess against real components
on this test's discovery port (host scope, inside the tests' namespace).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from coterie import Responder
from coterie.cli import main
from coterie.cli.doctor import check_discovery, check_ports, check_tls
from coterie.discovery.options import DiscoverySettings
from coterie.tls import TLSFiles
from tests import netns
from tests.helpers import HOST_SCOPE, MS, DiscoveryFactory, free_port

LISTEN = 600 * MS


async def doctor(disc_port: int, *args: str) -> tuple[int, dict[str, Any]]:
    env = {**os.environ, "COTE_BROADCAST_ADDRESS": HOST_SCOPE}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coterie", "-q", "doctor", "--json",
        "--discovery-port", str(disc_port), "--hello-interval", "100",
        "--listen", str(LISTEN), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    async with asyncio.timeout(20_000 * MS):
        out, err = await proc.communicate()
    assert proc.returncode is not None, err
    return proc.returncode, json.loads(out)


def messages(report: dict[str, Any], level: str) -> list[str]:
    return [f["message"] for f in report["findings"] if f["level"] == level]


async def test_a_healthy_mesh_passes(disc: DiscoveryFactory, disc_port: int) -> None:
    async with Responder(name="validation service", namespace="payment", discovery=disc()):
        code, report = await doctor(disc_port, "--namespace", "payment")
    assert code == 0 and report["ok"] is True
    assert "responder 'validation service' would pair" in messages(report, "ok")
    assert not messages(report, "error") and not messages(report, "warning")


async def test_a_namespace_typo_is_named(disc: DiscoveryFactory, disc_port: int) -> None:
    async with Responder(name="validation service", namespace="payment", discovery=disc()):
        code, report = await doctor(disc_port, "--namespace", "payments")
    assert code == 1
    assert messages(report, "warning") == [
        "a responder named 'validation service' is on the mesh in namespace 'payment';"
        " this requester is in 'payments'"
    ]
    assert messages(report, "error") == ["no responder would pair with this requester"]


@pytest.mark.parametrize(
    ("theirs", "flags", "why"),
    [
        ({"key": "cards"}, ["--key", "card"], "with key 'cards'; this requester has key 'card'"),
        (
            {"environment": "prod"},
            ["--environment", "staging"],
            "in environment 'prod'; this requester is in 'staging'",
        ),
    ],
)
async def test_a_key_or_environment_mismatch_is_named(
    disc: DiscoveryFactory, disc_port: int, theirs: dict[str, Any], flags: list[str], why: str
) -> None:
    async with Responder(name="validation service", discovery=disc(), **theirs):
        code, report = await doctor(disc_port, *flags)
    assert code == 1
    assert messages(report, "warning") == [
        f"a responder named 'validation service' is on the mesh {why}"
    ]


async def test_a_tls_mismatch_is_named(disc: DiscoveryFactory, disc_port: int) -> None:
    async with Responder(name="vault", secret="s3cret", discovery=disc()):
        code, report = await doctor(disc_port)
    assert code == 1
    assert messages(report, "warning") == [
        "a responder named 'vault' is on the mesh with mutual TLS on its links;"
        " this requester is plaintext (give it tls= or secret=)"
    ]


async def test_a_type_nobody_serves(disc: DiscoveryFactory, disc_port: int) -> None:
    responder = Responder(name="validation service", discovery=disc())
    responder.on("validate", lambda req: True)
    async with responder:
        code, report = await doctor(disc_port, "--type", "valdiate")
    assert code == 1
    assert messages(report, "warning") == [
        "responder 'validation service' pairs but does not serve 'valdiate' (it serves 'validate')"
    ]
    assert messages(report, "error") == [
        "no responder would pair with this requester for 'valdiate'"
    ]


async def test_a_pattern_handler_serves_its_family(disc: DiscoveryFactory, disc_port: int) -> None:
    responder = Responder(name="orders service", discovery=disc())
    responder.on("orders::*", lambda req: True)
    async with responder:
        served_code, served = await doctor(disc_port, "--type", "orders::new")
        code, report = await doctor(disc_port, "--type", "billing")
    assert served_code == 0 and messages(served, "warning") == []
    assert code == 1
    assert messages(report, "warning") == [
        "responder 'orders service' pairs but does not serve 'billing' (it serves 'orders::*')"
    ]


async def test_an_empty_mesh_is_an_error(disc_port: int) -> None:
    code, report = await doctor(disc_port)
    assert code == 1
    (error,) = messages(report, "error")
    assert error.startswith("no node heard within ") and f"port {disc_port}" in error


@pytest.mark.skipif(netns.reason_unavailable is not None, reason="needs the tests' namespace")
def test_no_route_for_hellos_names_the_fix() -> None:
    # The tests' namespace has loopback only: 198.18.0.0/15 has no route. The
    # check connects a UDP socket, which sends nothing.
    (finding,) = check_discovery(DiscoverySettings(broadcast="198.18.255.255", port=9))
    assert finding.level == "error"
    assert "hellos cannot be sent (no route)" in finding.message
    assert "COTE_BROADCAST_ADDRESS=127.255.255.255" in finding.message


def test_host_scope_can_send() -> None:
    (finding,) = check_discovery(DiscoverySettings(broadcast=HOST_SCOPE, port=9))
    assert finding.level == "ok" and "host (this machine only)" in finding.message


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    assert main(["certs", "--dir", str(tmp_path), "init"]) == 0
    assert main(["certs", "--dir", str(tmp_path), "issue", "payment"]) == 0
    assert main(["certs", "--dir", str(tmp_path), "issue", "other"]) == 0
    return tmp_path


def test_good_tls_files_say_what_they_are_valid_for(pki: Path) -> None:
    files = TLSFiles(pki / "ca.crt", pki / "payment.crt", pki / "payment.key")
    (finding,) = check_tls(files)
    assert finding.level == "ok"
    assert finding.message.startswith(f"{pki / 'payment.crt'} is valid for payment until ")


def test_a_key_of_another_certificate_is_an_error(pki: Path) -> None:
    files = TLSFiles(pki / "ca.crt", pki / "payment.crt", pki / "other.key")
    found = check_tls(files)
    assert [f.level for f in found] == ["error", "ok"]
    assert f"is not the key of {pki / 'payment.crt'}" in found[0].message


def test_a_certificate_of_another_ca_is_an_error(pki: Path, tmp_path_factory: Any) -> None:
    other = tmp_path_factory.mktemp("other-ca")
    assert main(["certs", "--dir", str(other), "init"]) == 0
    files = TLSFiles(other / "ca.crt", pki / "payment.crt", pki / "payment.key")
    found = check_tls(files)
    assert found[0].level == "error" and "is not signed by the CA" in found[0].message


def test_an_expired_certificate_is_an_error(pki: Path) -> None:
    files = TLSFiles(pki / "ca.crt", pki / "payment.crt", pki / "payment.key")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=4000)
    (finding,) = check_tls(files, now=later)
    assert finding.level == "error" and "expired on" in finding.message


def test_a_certificate_near_its_end_is_a_warning_that_says_what_to_do(pki: Path) -> None:
    files = TLSFiles(pki / "ca.crt", pki / "payment.crt", pki / "payment.key")
    end = x509.load_pem_x509_certificate(Path(files.cert).read_bytes()).not_valid_after_utc
    (finding,) = check_tls(files, now=end - dt.timedelta(days=10) + dt.timedelta(hours=1))
    assert finding.level == "warning"
    assert finding.message.startswith(f"{pki / 'payment.crt'} is valid for payment until ")
    assert finding.message.endswith(
        "(9 days): it is near its end; replace the files before then "
        "(running components load them at their next handshake)"
    )
    (later,) = check_tls(files, now=end - dt.timedelta(hours=11, minutes=30))
    assert later.level == "warning" and "(11 hours)" in later.message
    (fine,) = check_tls(files, now=end - dt.timedelta(days=40) + dt.timedelta(hours=1))
    assert fine.level == "ok" and fine.message.endswith("(39 days)")


def test_unreadable_tls_files_are_an_error(tmp_path: Path) -> None:
    (finding,) = check_tls(TLSFiles(tmp_path / "no.crt", tmp_path / "no.crt", tmp_path / "no"))
    assert finding.level == "error" and "cannot be read" in finding.message


def test_a_taken_port_is_an_error_and_a_free_one_is_fine() -> None:
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        free = free_port()
        found = check_ports(
            DiscoverySettings(address="127.0.0.1", port=free_port(socket.SOCK_DGRAM)), [taken, free]
        )
    assert [f.level for f in found] == ["ok", "error", "ok"]
    assert found[1].message == (
        f"port {taken}/tcp is taken (Address already in use); stop what holds it "
        "or give the service another port"
    )
