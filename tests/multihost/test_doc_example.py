"""docs/testbed.md's example test runs on the bed as written (tests/test_doc_examples.py)."""

from __future__ import annotations

from typing import Any

from tests.bed import Bed
from tests.multihost.conftest import PeerFactory
from tests.test_doc_examples import FOUND


async def test_the_testbed_example_runs(bed: Bed, peer: PeerFactory) -> None:
    names: dict[str, Any] = {"Bed": Bed, "PeerFactory": PeerFactory}
    exec(FOUND["docs/testbed.md#1"], names)
    await names["test_example"](bed, peer)
