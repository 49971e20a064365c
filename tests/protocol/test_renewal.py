"""When a certificate is renewed and how close it is to its end, with time as an argument."""

from __future__ import annotations

import pytest

from coterie.protocol.renewal import (
    RENEW_AT,
    WARN_BEFORE,
    renewal_due,
    renewal_time,
    validity,
)

DAY = 86_400.0


def test_a_certificate_is_renewed_after_two_thirds_of_its_life() -> None:
    issued, expires = 1_000.0, 1_000.0 + 2 * DAY  # the secret's two-day certificate
    assert pytest.approx(2 / 3) == RENEW_AT
    assert renewal_time(issued, expires) == pytest.approx(issued + 32 * 3_600)
    assert not renewal_due(issued, issued, expires)
    assert not renewal_due(issued + 32 * 3_600 - 1, issued, expires)
    assert renewal_due(issued + 32 * 3_600, issued, expires)
    assert renewal_due(expires + DAY, issued, expires)  # woke up long after: at once


def test_a_short_lifetime_renews_as_often() -> None:
    issued = 50.0
    points = []
    for _ in range(3):
        expires = issued + 3.0
        points.append(renewal_time(issued, expires))
        issued = points[-1]
    assert points == pytest.approx([52.0, 54.0, 56.0])


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (-1.0, "not yet valid"),
        (0.0, "valid"),
        (366 * DAY, "valid"),
        (397 * DAY - WARN_BEFORE - 1, "valid"),
        (397 * DAY - WARN_BEFORE + 1, "near expiry"),
        (397 * DAY - 1, "near expiry"),
        (397 * DAY, "expired"),
    ],
)
def test_validity_of_a_long_lived_certificate(now: float, expected: str) -> None:
    assert validity(now, 0.0, 397 * DAY) == expected


def test_a_short_lived_certificate_is_near_its_end_in_its_last_third() -> None:
    # A one-day certificate (Vault, say) is renewed after 16 h: past that it is late.
    assert validity(15 * 3_600, 0.0, DAY) == "valid"
    assert validity(17 * 3_600, 0.0, DAY) == "near expiry"
