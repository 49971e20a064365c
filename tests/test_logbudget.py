"""Log lines a peer can trigger go out within the one token bucket, and say what was left out."""

from __future__ import annotations

import logging

import pytest

from coterie._logbudget import LogBudget


def test_lines_over_budget_are_counted_and_said_with_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    log = logging.getLogger("coterie.test.logbudget")
    budget = LogBudget(log, per_second=1.0, burst=2, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger=log.name)
    written = [budget.warning("line %d", i) for i in range(5)]
    assert written == [True, True, False, False, False] and budget.suppressed == 3
    now[0] = 1.0
    assert budget.error("late %s", "one")
    assert [r.getMessage() for r in caplog.records] == [
        "line 0",
        "line 1",
        "late one (3 more like it left out of the log)",
    ]
    assert budget.suppressed == 0


def test_a_disabled_level_spends_nothing() -> None:
    log = logging.getLogger("coterie.test.logbudget.quiet")
    log.setLevel(logging.ERROR)
    budget = LogBudget(log, burst=1, clock=lambda: 0.0)
    assert not budget.warning("off")
    assert budget.suppressed == 0
    assert budget.error("on")  # the one token was not spent by the disabled line
