"""``coterie call``, ``publish``, ``listen``, ``services`` and ``bench`` against Python peers.

Each test runs the real command in a subprocess (tests/cli/support.py) on
the test's own discovery port, in host scope, next to real components in
this process, and checks the exact output and the exit code. The same
commands against Node cote peers are in test_node_commands.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from coterie import Monitor, Publisher, Requester, RequestTimeoutError, Responder, Subscriber
from coterie.cli import build_parser, main
from coterie.tls import TLSFiles
from tests.cli.support import coterie, discovery_flags, request_ids_hidden, start_coterie
from tests.helpers import MS, DiscoveryFactory

CARD = {"cardno": "4111"}


def validation(
    disc: DiscoveryFactory, name: str = "validation service", **kwargs: Any
) -> Responder:
    """A responder of ``validate`` in namespace ``payment``: ``bad`` card numbers fail."""
    responder = Responder(name=name, namespace="payment", discovery=disc(), **kwargs)

    @responder.on("validate")
    def validate(req: dict[str, Any]) -> dict[str, Any]:
        if req.get("cardno") == "bad":
            raise KeyError("cardno")
        return {"valid": True, "cardno": req.get("cardno"), "by": name}

    return responder


# -- call ---------------------------------------------------------------------------


async def test_call_prints_the_answer_as_one_json_line(
    disc: DiscoveryFactory, disc_port: int
) -> None:
    async with validation(disc):
        run = await coterie(
            "call", "validate", json.dumps(CARD), "--namespace", "payment",
            *discovery_flags(disc_port),
        )  # fmt: skip
    assert (run.code, run.err) == (0, ""), run
    assert run.out == '{"valid": true, "cardno": "4111", "by": "validation service"}\n'


async def test_call_reads_the_request_from_stdin(disc: DiscoveryFactory, disc_port: int) -> None:
    async with validation(disc):
        run = await coterie(
            "call", "validate", "-", "--namespace", "payment", *discovery_flags(disc_port),
            stdin='{"cardno": "5500"}\n',
        )  # fmt: skip
    assert run.code == 0, run
    assert json.loads(run.out) == {"valid": True, "cardno": "5500", "by": "validation service"}


async def test_a_remote_error_goes_to_stderr_with_exit_1(
    disc: DiscoveryFactory, disc_port: int
) -> None:
    async with validation(disc):
        run = await coterie(
            "call", "validate", '{"cardno": "bad"}', "--namespace", "payment",
            *discovery_flags(disc_port),
        )  # fmt: skip
    assert (run.code, run.out) == (1, ""), run
    assert run.err == "coterie call: the responder failed: KeyError: 'cardno'\n"


async def api_reason(disc: DiscoveryFactory, request: dict[str, Any], **kwargs: Any) -> str:
    """What an API caller configured like the command is told when nothing answers."""
    async with Requester("coterie call", discovery=disc(), timeout=300 * MS, **kwargs) as req:
        with pytest.raises(RequestTimeoutError) as caught:
            await req.send(request)
    return request_ids_hidden(str(caught.value))


@pytest.mark.parametrize(
    ("request_type", "flags", "kwargs", "why"),
    [
        ("valdiate", ["--namespace", "payment"], {"namespace": "payment"},
         "no responder serves 'valdiate'"),
        ("validate", ["--namespace", "payments"], {"namespace": "payments"},
         "a responder named 'validation service' is on the mesh in namespace 'payment';"
         " this requester is in 'payments'"),
    ],
    ids=["type-typo", "namespace-typo"],
)  # fmt: skip
async def test_a_timeout_exits_124_with_the_reason_the_api_gives(
    disc: DiscoveryFactory,
    disc_port: int,
    request_type: str,
    flags: list[str],
    kwargs: dict[str, Any],
    why: str,
) -> None:
    async with validation(disc):
        run = await coterie(
            "call", request_type, json.dumps(CARD), "--timeout", str(300 * MS), *flags,
            *discovery_flags(disc_port),
        )  # fmt: skip
        expected = await api_reason(disc, {"type": request_type, **CARD}, **kwargs)
    assert (run.code, run.out) == (124, ""), run
    assert why in expected
    assert request_ids_hidden(run.err) == f"coterie call: {expected}\n"


async def test_a_tls_mismatch_is_named_and_the_link_secret_variable_fixes_it(
    disc: DiscoveryFactory, disc_port: int
) -> None:
    async with validation(disc, secret="s3cret"):
        plain = await coterie(
            "call", "validate", "--namespace", "payment", "--timeout", str(300 * MS),
            *discovery_flags(disc_port),
        )  # fmt: skip
        secret = await coterie(
            "call", "validate", "--namespace", "payment", *discovery_flags(disc_port),
            env={"COTERIE_LINK_SECRET": "s3cret"},
        )  # fmt: skip
    assert plain.code == 124, plain
    assert plain.err.endswith(
        "a responder named 'validation service' is on the mesh with mutual TLS on its links;"
        " this requester is plaintext (give it tls= or secret=)\n"
    ), plain
    assert (secret.code, secret.out) == (0, '{"valid": true, "cardno": null, "by": '
                                            '"validation service"}\n'), secret  # fmt: skip


async def test_tls_files_by_flag_and_a_name_to_match_the_certificate(
    disc: DiscoveryFactory, disc_port: int, tmp_path: Path
) -> None:
    for argv in (["init"], ["issue", "validation service"], ["issue", "ops"]):
        assert main(["-q", "certs", "--dir", str(tmp_path), *argv]) == 0
    service = TLSFiles(tmp_path / "ca.crt", tmp_path / "validation-service.crt",
                       tmp_path / "validation-service.key")  # fmt: skip
    ops = ["--tls-ca", str(tmp_path / "ca.crt"), "--tls-cert", str(tmp_path / "ops.crt"),
           "--tls-key", str(tmp_path / "ops.key")]  # fmt: skip
    async with validation(disc, tls=service):
        run = await coterie(
            "call", "validate", json.dumps(CARD), "--namespace", "payment", "--name", "ops",
            *ops, *discovery_flags(disc_port),
        )  # fmt: skip
    assert (run.code, run.err) == (0, ""), run
    assert json.loads(run.out)["by"] == "validation service"
    half = await coterie("call", "validate", *ops[:2], *discovery_flags(disc_port))
    assert half.code == 2, half
    assert half.err.splitlines()[-1] == (
        "coterie call: error: --tls-ca, --tls-cert and --tls-key go together"
    )


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["{cardno: 4111}"], None,
         "coterie call: error: argument JSON is not JSON (Expecting property name enclosed in"
         " double quotes: line 1 column 2 (char 1)): '{cardno: 4111}'; write JSON, such as"
         """ '{"cardno": "4111"}'"""),
        (["-"], "4111x", "coterie call: error: standard input is not JSON (Extra data: line 1"
         """ column 5 (char 4)): '4111x'; write JSON, such as '{"cardno": "4111"}'"""),
        (["[1]"], None, "coterie call: error: the request must be a JSON object of fields, got"
         """ list [1]: write it as '{"field": ...}'"""),
        (['{"type": "other"}'], None,
         "coterie call: error: the JSON's type 'other' differs from TYPE 'validate'"),
        (["{}", "--timeout", "0"], None,
         "coterie call: error: --timeout must be positive seconds, got 0"),
    ],
    ids=["not-json", "stdin-not-json", "not-an-object", "other-type", "zero-timeout"],
)  # fmt: skip
async def test_bad_input_is_a_usage_error_with_exit_2(
    disc_port: int, argv: list[str], stdin: str | None, message: str
) -> None:
    run = await coterie(
        "call", "validate", *argv, *discovery_flags(disc_port), stdin=stdin, timeout=5_000 * MS
    )
    assert (run.code, run.out) == (2, ""), run
    assert run.err.startswith("usage: coterie call ")
    assert run.err.splitlines()[-1] == message


async def test_call_all_asks_every_instance_once(disc: DiscoveryFactory, disc_port: int) -> None:
    a, b = validation(disc, "validation A"), validation(disc, "validation B")
    async with a, b:
        run = await coterie(
            "call", "validate", json.dumps(CARD), "--all", "--namespace", "payment",
            *discovery_flags(disc_port),
        )  # fmt: skip
    assert (run.code, run.err) == (0, ""), run
    lines = [json.loads(line) for line in run.out.splitlines()]
    assert [(x["name"], x["id"], x["address"]) for x in lines] == [
        ("validation A", a.id, f"127.0.0.1:{a.port}"),
        ("validation B", b.id, f"127.0.0.1:{b.port}"),
    ]
    assert [x["answer"] for x in lines] == [
        {"valid": True, "cardno": "4111", "by": "validation A"},
        {"valid": True, "cardno": "4111", "by": "validation B"},
    ]
    assert a.stats().handled == 1 and b.stats().handled == 1


async def test_call_all_exits_1_when_an_instance_fails(
    disc: DiscoveryFactory, disc_port: int
) -> None:
    async with validation(disc, "validation A"), validation(disc, "validation B"):
        run = await coterie(
            "call", "validate", '{"cardno": "bad"}', "--all", "--namespace", "payment",
            *discovery_flags(disc_port),
        )  # fmt: skip
    assert run.code == 1, run
    assert [json.loads(line)["error"] for line in run.out.splitlines()] == [
        {"message": "'cardno'", "name": "KeyError"}
    ] * 2


# -- publish and listen --------------------------------------------------------------


async def test_publish_sends_the_event_to_the_subscribers(
    disc: DiscoveryFactory, disc_port: int
) -> None:
    got: list[Any] = []
    arrived = asyncio.Event()
    subscriber = Subscriber("audit", namespace="payment", discovery=disc())
    subscriber.on("payment.done", lambda data: (got.append(data), arrived.set()))
    async with subscriber:
        run = await coterie(
            "publish", "payment.done", '{"amount": 5}', "--namespace", "payment",
            *discovery_flags(disc_port), quiet=False,
        )  # fmt: skip
        await asyncio.wait_for(arrived.wait(), 2_000 * MS)
    assert run.code == 0, run
    assert run.err == "coterie publish: 'payment.done' went to 1 subscriber(s)\n"
    assert got == [{"amount": 5}]


async def test_publish_with_no_subscriber_says_so_and_exits_1(disc_port: int) -> None:
    run = await coterie(
        "publish", "payment.done", "1", "--wait", str(200 * MS), *discovery_flags(disc_port)
    )
    assert run.code == 1, run
    assert run.err.splitlines() == [
        "coterie publish: 'payment.done' went to 0 subscriber(s)",
        f"coterie publish: fewer than 1 subscriber(s) linked within {200 * MS:g} s: check that"
        " they run with the same namespace, key, environment, TLS and discovery scope"
        " (coterie doctor shows who is on the mesh)",
    ]


async def test_publish_bad_data_is_a_usage_error(disc_port: int) -> None:
    run = await coterie("publish", "t", "yes please", *discovery_flags(disc_port))
    assert run.code == 2, run
    assert run.err.splitlines()[-1].startswith(
        "coterie publish: error: argument DATA is not JSON (Expecting value"
    )


async def test_listen_writes_one_json_line_per_matching_event(
    disc: DiscoveryFactory, disc_port: int
) -> None:
    proc = await start_coterie(
        "listen", "payment.*", "--count", "2", "--namespace", "payment",
        *discovery_flags(disc_port),
    )  # fmt: skip
    assert proc.stdout is not None
    async with Publisher("payments", namespace="payment", discovery=disc()) as pub:
        await pub.wait_subscribers(1, timeout=5_000 * MS)
        await pub.publish("payment.done", {"amount": 5})
        first = await asyncio.wait_for(proc.stdout.readline(), 5_000 * MS)  # flushed at once
        await pub.publish("refund.done", {"amount": 1})  # not matched: never written
        await pub.publish("payment.failed", "no funds")
        rest, err = await asyncio.wait_for(proc.communicate(), 5_000 * MS)
    assert proc.returncode == 0, err
    assert first + rest == (
        b'{"topic": "payment.done", "data": {"amount": 5}}\n'
        b'{"topic": "payment.failed", "data": "no funds"}\n'
    )


async def test_publish_reaches_listen(disc_port: int) -> None:
    listen = await start_coterie("listen", "--count", "1", *discovery_flags(disc_port))
    assert listen.stdout is not None
    # A topic with "::": listen takes every event, not one EventEmitter2 segment.
    run = await coterie("publish", "orders::created", '"world"', *discovery_flags(disc_port))
    out, err = await asyncio.wait_for(listen.communicate(), 5_000 * MS)
    assert run.code == 0, run
    assert out == b'{"topic": "orders::created", "data": "world"}\n', err
    assert listen.returncode == 0


async def test_listen_ends_on_its_duration_and_on_ctrl_c(
    disc: DiscoveryFactory, disc_port: int
) -> None:
    quiet = await coterie("listen", "--duration", str(300 * MS), *discovery_flags(disc_port))
    assert (quiet.code, quiet.out) == (0, ""), quiet
    async with Monitor("watch", discovery=disc()) as monitor:
        proc = await start_coterie("listen", *discovery_flags(disc_port))
        await monitor.wait_until(  # it is on the mesh: Ctrl-C now is the user's
            lambda snap: any(n.name == "coterie listen" for n in snap.nodes.values()),
            timeout=5_000 * MS,
        )
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 5_000 * MS)
    assert (proc.returncode, out) == (0, b""), err


# -- services -------------------------------------------------------------------------


async def test_services_lists_each_responder_as_json(
    disc: DiscoveryFactory, disc_port: int
) -> None:
    vault = Responder("vault", key="cards", secret="s3cret", discovery=disc())
    vault.on("store", lambda req: True)
    vault.on("fetch", lambda req: True)
    client, news = Requester("client", discovery=disc()), Publisher("news", discovery=disc())
    async with validation(disc), vault, client, news:
        run = await coterie("services", "--json", "--listen", str(500 * MS),
                            *discovery_flags(disc_port))  # fmt: skip
        typed = await coterie("services", "--json", "--type", "fetch", "--listen",
                              str(500 * MS), *discovery_flags(disc_port))  # fmt: skip
    assert run.code == 0, run
    assert json.loads(run.out) == [
        {"name": "validation service", "id": run_id(run.out, 0), "types": ["validate"],
         "namespace": "payment", "key": "$$", "address": "127.0.0.1", "port": port_of(run.out, 0),
         "tls": False},
        {"name": "vault", "id": vault.id, "types": ["store", "fetch"], "namespace": None,
         "key": "$$cards", "address": "127.0.0.1", "port": vault.port, "tls": True},
    ]  # fmt: skip
    assert [r["name"] for r in json.loads(typed.out)] == ["vault"]


def run_id(out: str, index: int) -> Any:
    return json.loads(out)[index]["id"]


def port_of(out: str, index: int) -> Any:
    return json.loads(out)[index]["port"]


async def test_services_prints_a_table(disc: DiscoveryFactory, disc_port: int) -> None:
    responder = validation(disc)
    async with responder:
        run = await coterie("services", "--listen", str(500 * MS), *discovery_flags(disc_port))
    assert run.code == 0, run
    lines = [line.rstrip() for line in run.out.splitlines()]
    assert lines[0] == f"coterie services: 1 responder(s) heard in {500 * MS:g} s"
    assert re.split(r"\s*[┃│]\s*", lines[2].strip("┃ ")) == [
        "Name", "Types", "Namespace", "Key", "Address", "TLS"
    ]  # fmt: skip
    assert re.split(r"\s*│\s*", lines[4].strip("│ ")) == [
        "validation service", "validate", "payment", "$$", f"127.0.0.1:{responder.port}", "no"
    ]  # fmt: skip


# -- bench ------------------------------------------------------------------------------


async def test_bench_reports_rate_and_percentiles(disc: DiscoveryFactory, disc_port: int) -> None:
    responder = validation(disc)
    async with responder:
        text = await coterie(
            "bench", "validate", json.dumps(CARD), "-c", "10", "-n", "300",
            "--namespace", "payment", *discovery_flags(disc_port), quiet=False,
        )  # fmt: skip
        figures = await coterie(
            "bench", "validate", "-c", "4", "-n", "100", "--json", "--namespace", "payment",
            *discovery_flags(disc_port),
        )  # fmt: skip
    assert text.code == 0, text
    assert re.fullmatch(
        r"300 requests, 0 errors in \d+\.\d\d s: \d+ req/s, p50 \d+\.\d\d ms, p99 \d+\.\d\d ms\n",
        text.out,
    ), text
    assert "coterie bench" in text.err and "300/300" in text.err  # the progress bar
    assert figures.code == 0 and figures.err == "", figures
    doc = json.loads(figures.out)
    assert (doc["requests"], doc["errors"]) == (100, 0)
    assert 0 < doc["p50_ms"] <= doc["p99_ms"]
    assert doc["rps"] == pytest.approx(100 / doc["seconds"], rel=0.01)
    assert responder.stats().handled == 1 + 300 + 1 + 100  # warm-ups included


async def test_bench_counts_error_replies(disc: DiscoveryFactory, disc_port: int) -> None:
    responder = Responder("flaky", discovery=disc())
    calls = 0

    @responder.on("work")
    def work(req: dict[str, Any]) -> int:
        nonlocal calls
        calls += 1
        if calls % 2 == 0:
            raise ValueError("every second one fails")
        return calls

    async with responder:
        run = await coterie("bench", "work", "-c", "1", "-n", "10", "--json",
                            *discovery_flags(disc_port))  # fmt: skip
    assert run.code == 1, run
    assert json.loads(run.out)["errors"] == 5
    assert run.err == (
        "coterie bench: 5 request(s) failed; the first: ValueError: every second one fails\n"
    )


# -- -q and -v anywhere ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "quiet", "verbose"),
    [
        (["call", "t"], False, False),
        (["-q", "call", "t"], True, False),
        (["call", "t", "-q"], True, False),
        (["call", "-v", "t"], False, True),
        (["-v", "doctor"], False, True),
        (["doctor", "--verbose"], False, True),
        (["certs", "-q", "init"], True, False),
        (["certs", "init", "-v"], False, True),
        (["-q", "certs", "issue", "x", "-v"], True, True),
        (["monitor", "--once", "-v"], False, True),
    ],
)
def test_quiet_and_verbose_go_before_or_after_the_subcommand(
    argv: list[str], quiet: bool, verbose: bool
) -> None:
    args = build_parser().parse_args(argv)
    assert (args.quiet, args.verbose) == (quiet, verbose)
