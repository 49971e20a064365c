"""The smoke bench runs every scenario end to end and reports a number for each.

Runs ``python -m bench --smoke`` as a user would (a separate process, real
workers, real Node cote when the session is in a private network namespace,
and the bare uvloop echo beside them), then checks the printed table and the
JSON report. No timing assertions: CI
machines are noisy; this only proves the bench works.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import netns

ROOT = Path(__file__).resolve().parents[2]

ROWS = {
    "rr_c1": "req/resp throughput, 1 in flight",
    "rr_c10": "req/resp throughput, 10 in flight",
    "rr_c100": "req/resp throughput, 100 in flight",
    "rr_c100_echo": "req/resp throughput, 100 in flight, vs bare echo",
    "lat_p50": "sequential latency p50",
    "lat_p50_echo": "sequential latency p50, vs bare echo",
    "lat_p99": "sequential latency p99",
    "rr_c100_metrics": "req/resp throughput, 100 in flight, metrics on",
    "async_c100": "async def handler, 100 in flight",
    "typed_c100": "typed handler (msgspec), 100 in flight",
    "async_spread": "async def handler, slowest round / median",
    "peer_zmq_c100": "req/resp throughput, 100 in flight, vs pyzmq",
    "peer_zmq_p50": "sequential latency p50, vs pyzmq",
    "peer_grpc_c100": "req/resp throughput, 100 in flight, vs grpc.aio",
    "peer_grpc_p50": "sequential latency p50, vs grpc.aio",
    "sync_t16": "coterie.sync from 16 threads, vs asyncio at 100 in flight",
    "sync_p50": "coterie.sync sequential latency p50, vs asyncio",
    "sync_grpc_t16": "coterie.sync from 16 threads, vs grpc's sync stub",
    "contact": "time to first contact (component start -> first reply)",
    "contact_proc": "time to first contact incl. process start",
    "failover_lost": "failover: requests lost",
    "failover_stall": "failover: longest stall",
    "pubsub": "pub/sub events per second",
    "rss_responder": "idle RSS, responder",
    "rss_requester": "idle RSS, requester",
    "rss_publisher": "idle RSS, publisher",
    "rss_subscriber": "idle RSS, subscriber",
    "http_pay": "HTTP GET /pay/<cardno> throughput (mesh vs nginx)",
    "http_pay_p50": "HTTP GET /pay/<cardno> latency p50 (mesh vs nginx)",
}

NODE_READY = (
    netns.reason_unavailable is None
    and shutil.which("node") is not None
    and (ROOT / "interop" / "node_modules" / "cote" / "package.json").exists()
)
HTTP_READY = shutil.which("wrk") is not None and (
    shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()
)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not math.isnan(value) and value >= 0


@pytest.mark.timeout(180)
def test_smoke_bench_reports_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    env = dict(os.environ, COTE_BROADCAST_ADDRESS="127.255.255.255")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--no-docs", "--json", str(out), "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["failed"] == []
    rows = {row["key"]: row for row in report["rows"]}
    assert set(rows) == set(ROWS)

    for key, label in ROWS.items():
        row = rows[key]
        assert row["label"].startswith(label)
        assert label[:40] in done.stdout  # the printed table has the row
        if key.startswith("http") and not HTTP_READY:
            continue
        assert _number(row["coterie"]), (key, row)
        if key.startswith("http"):
            assert _number(row["reference_value"]), (key, row)  # nginx ran
        elif key.startswith(("peer_", "sync_")):
            # pyzmq, grpc.aio, grpc's sync stub or the asyncio requester ran
            assert _number(row["reference_value"]), (key, row)
            assert row["ratio"] is not None
        elif key in ("async_c100", "typed_c100"):
            assert _number(row["reference_value"]), (key, row)  # the plain handler ran
        elif key == "async_spread":
            assert 0 < row["coterie"] <= 1, (key, row)
        elif key.endswith("_echo"):
            assert row["reference"] == "echo"
            assert _number(row["reference_value"]), (key, row)  # the echo ran
            assert row["ratio"] is not None
        elif NODE_READY:
            assert _number(row["reference_value"]), (key, row)  # real cote ran
            assert row["ratio"] is not None
        else:
            assert any("Node cote skipped" in note for note in report["notes"])

    # Samples are real measurements, not placeholders.
    assert rows["rr_c100"]["coterie"] > 0
    # The echo is compared with coterie's own samples of the same run.
    assert rows["rr_c100_echo"]["samples"]["coterie"] == rows["rr_c100"]["samples"]["coterie"]
    assert rows["rr_c100_echo"]["reference_value"] > 0
    assert "byte messages" in rows["rr_c100_echo"]["note"]
    assert rows["contact"]["coterie"] > 0
    assert 0 < rows["rss_responder"]["coterie"] < 1024
    assert rows["failover_lost"]["samples"]["coterie"] == [0.0] or isinstance(
        rows["failover_lost"]["coterie"], float
    )
