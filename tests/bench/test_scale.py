"""The scale harness (``python -m bench scale``): its layout, and a small run end to end.

No timing assertions: this proves the harness measures (every requester
linked, CPU, memory and discovery messages read, both restarts done); the
figures themselves are in docs/scale.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from bench.scale import SERVICE, layout

from tests import netns

ROOT = Path(__file__).resolve().parents[2]


def test_layout_spreads_services_of_five_and_five() -> None:
    per = layout(40, 3)
    assert [len(p) for p in per] == [14, 13, 13]
    nodes = [c for p in per for c in p]
    assert Counter(c["role"] for c in nodes) == {"rep": 20, "req": 20}
    by_ns = Counter((c["namespace"], c["role"]) for c in nodes)
    assert set(by_ns.values()) == {SERVICE // 2}
    assert {c["expect"] for c in nodes} == {SERVICE // 2}
    # A service's nodes live in several processes, so its links cross them.
    assert len({i for i, p in enumerate(per) for c in p if c["namespace"] == "svc0"}) == 3


@pytest.mark.timeout(240)
@pytest.mark.skipif(netns.reason_unavailable is not None, reason=str(netns.reason_unavailable))
def test_a_small_scale_run_measures_every_back_end(tmp_path: Path) -> None:
    backends = ["broadcast", "redis-group"]
    if shutil.which("etcd"):
        backends.append("etcd")
    out = tmp_path / "rows.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "scale", "--smoke", "--nodes", "20", "--procs", "2",
         "--backends", ",".join(backends), "--json", str(out)],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=230, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["backend"] for r in rows] == backends
    for row in rows:
        assert row["converge_s"] is not None and row["converge_s"] >= 0, row
        assert row["cpu_proc_pct"] > 0 and row["rss_proc_mib"] > 10, row
        assert row["idle_msgs_sent_s"] > 0, row  # hellos, publishes or keep-alives
        for label in ("whole", "half"):
            assert row[f"{label}_relinked_s"] is not None, row
            assert isinstance(row[f"{label}_healthy_removed"], int), row
    assert "| broadcast | 20 | 2 |" in done.stdout
