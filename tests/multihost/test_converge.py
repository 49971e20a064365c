"""Convergence in CI, small: three responders on three hosts, one requester.

The full measurement (30 responders, cote's default timings, idle CPU, Node
cote alongside) is ``python -m tests.multihost.converge``; its figures are in
``docs/deploy.md``.
"""

from __future__ import annotations

from tests.bed import Bed
from tests.multihost.converge import measure

FAST = {"hello": 200, "check": 400, "node_timeout": 1500, "master_timeout": 2000}


async def test_a_coterie_requester_links_to_every_responder_at_once(bed: Bed) -> None:
    hosts = bed.on("a")
    result = await measure(bed, "python", responders=3, hosts=hosts, requester_host=hosts[0],
                           timings=FAST, settle=0.3, cpu_window=None)  # fmt: skip
    # Fast contact: every responder answers the newcomer's first hello at once.
    assert result["join_from_ready_s"] < 1.0, result
    assert result["cold_after_last_ready_s"] < 1.0, result


async def test_a_node_cote_requester_finds_them_within_a_hello_interval(bed: Bed) -> None:
    hosts = bed.on("a")
    result = await measure(bed, "node", responders=3, hosts=hosts, requester_host=hosts[0],
                           timings=FAST, settle=0.3, cpu_window=None, cold=False)  # fmt: skip
    assert result["join_from_ready_s"] < 3 * FAST["hello"] / 1000, result
