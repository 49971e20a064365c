"""Status reports to monitors: the shape, what a monitor keeps, counts and rates."""

from __future__ import annotations

from typing import Any

import pytest

from coterie.protocol.framing import FrameDecoder
from coterie.protocol.status import (
    DEFAULT_MAX_EDGES,
    MAX_ID_LENGTH,
    LinkRate,
    Status,
    counts,
    decode_status,
    encode_status,
    rates,
    reports_for,
    status_report,
    targets,
)

ID = "3f1c" * 9  # 36 characters, as cote's ids


def test_a_report_is_cotes_shape_with_traffic_only_when_counted() -> None:
    assert status_report(ID, ["a"], None) == {"id": ID, "nodes": ["a"]}
    traffic = {"a": {"requests": 2, "errors": 0}}
    assert status_report(ID, ["a"], traffic) == {"id": ID, "nodes": ["a"], "traffic": traffic}


def test_a_report_is_framed_like_a_publish_and_reads_back() -> None:
    report = status_report(ID, ["a", "b"], {"a": {"events": 3}})
    frame = encode_status(report)
    (args,) = FrameDecoder().feed(frame)
    assert args == ["status", report]
    assert decode_status(args) == Status(ID, ["a", "b"], {"a": {"events": 3}})


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["status"],
        ["update", {"id": ID, "nodes": []}],
        ["status", "text"],
        ["status", {"id": 5, "nodes": []}],
        ["status", {"id": ID, "nodes": "a"}],
        ["status", {"nodes": []}],
    ],
)
def test_anything_else_is_no_status(args: list[Any]) -> None:
    assert decode_status(args) is None


def test_cotes_report_has_no_traffic() -> None:
    assert decode_status(["status", {"id": ID, "nodes": [None]}]) == Status(ID, [None], None)


def test_a_link_reports_for_the_first_id_it_names_only() -> None:
    assert reports_for(None, ID)
    assert not reports_for(None, "x" * (MAX_ID_LENGTH + 1))  # no such id
    assert reports_for(ID, ID)
    assert not reports_for(ID, "someone else")


def test_targets_keep_named_ids_once_sorted_and_capped() -> None:
    # cote reports null for a link it cannot name.
    named = ["b", None, "a", "b", 7, "x" * (MAX_ID_LENGTH + 1), "c"]
    assert targets(named, DEFAULT_MAX_EDGES) == (("a", "b", "c"), 3)
    assert targets(named, 2) == (("a", "b"), 3)  # 3 named, 2 kept
    assert targets([], 0) == ((), 0)


def test_counts_read_requests_and_errors_or_events_of_kept_targets() -> None:
    traffic = {
        "a": {"requests": 5, "errors": 1},
        "b": {"events": 9},
        "c": {"requests": -1, "errors": 0},  # not a count
        "d": {"requests": True, "errors": 0},  # a bool is no count
        "e": "junk",
        "f": {"requests": 1, "errors": 0},  # not a kept target
    }
    assert counts(traffic, ("a", "b", "c", "d", "e", "z")) == {"a": (5, 1), "b": (9, 0)}
    assert counts(None, ("a",)) is None  # cote's report
    assert counts([], ("a",)) is None


def test_rates_come_from_two_reports_and_skip_new_links() -> None:
    before = (10.0, {"a": (5, 1), "b": (9, 0), "c": (100, 0)})
    now = {"a": (25, 3), "b": (9, 0), "c": (4, 0), "d": (1, 0)}
    assert rates(before, 12.0, now) == {"a": LinkRate(10.0, 1.0), "b": LinkRate(0.0, 0.0)}
    assert rates(None, 12.0, now) == {}  # the first report: no rate yet
    assert rates(before, 10.0, now) == {}  # no time passed
