"""Card checks: Luhn and the reasons a card number is refused (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from examples.payment.apps import verdict
from examples.payment.cards import MAX_DIGITS, check_card, luhn_valid


@pytest.mark.parametrize(
    "number",
    ["4111111111111111", "5555555555554444", "378282246310005", "79927398713", "0"],
)
def test_known_valid_numbers_pass_luhn(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4111111111111112", "79927398710", "123456", "1"])
def test_known_invalid_numbers_fail_luhn(number: str) -> None:
    assert not luhn_valid(number)


@pytest.mark.parametrize("bad", ["", "12a4", "\uff11\uff12\uff13", "-1"])
def test_luhn_refuses_non_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="ASCII digits"):
        luhn_valid(bad)


def _check_digit(body: str) -> str:
    for digit in "0123456789":
        if luhn_valid(body + digit):
            return digit
    raise AssertionError("no check digit")


@given(st.text(alphabet="0123456789", min_size=7, max_size=18))
def test_exactly_one_check_digit_makes_a_number_valid(body: str) -> None:
    valid = [d for d in "0123456789" if luhn_valid(body + d)]
    assert len(valid) == 1
    assert check_card(body + valid[0]) is None


@given(st.text(alphabet="0123456789", min_size=7, max_size=18), st.data())
def test_any_single_digit_change_is_caught(body: str, data: st.DataObject) -> None:
    number = body + _check_digit(body)
    index = data.draw(st.integers(0, len(number) - 1))
    new = data.draw(st.sampled_from([d for d in "0123456789" if d != number[index]]))
    assert check_card(number[:index] + new + number[index + 1 :]) == "failed the Luhn check"


@pytest.mark.parametrize(
    ("cardno", "reason"),
    [
        ("", "empty card number"),
        ("   ", "empty card number"),
        ("4111abcd", "not a card number: 'a' is not a digit"),
        ("4111 1111 1111 111x", "not a card number: 'x' is not a digit"),
        ("٤١١١١١١١١١١١١١١١", "not a card number: '٤' is not a digit"),
        ("4" * 40, f"too long (40 digits, at most {MAX_DIGITS})"),
        ("123456", "too short (6 digits, at least 8)"),
        ("4111111111111112", "failed the Luhn check"),
    ],
)
def test_refusals_say_why(cardno: str, reason: str) -> None:
    assert check_card(cardno) == reason


def test_spaces_and_dashes_between_groups_are_allowed() -> None:
    assert check_card("4111 1111 1111 1111") is None
    assert check_card("4111-1111-1111-1111") is None
    assert check_card(" 4111 1111-1111 1111 ") is None  # spaces around are ignored


@pytest.mark.parametrize(
    "cardno",
    [
        "-4111111111111111",
        "4111111111111111-",
        "4111--1111-1111-1111",
        "4111 -1111 1111 1111",
        "- 4111111111111111",
        "---",
        "-",
    ],
)
def test_a_dash_or_space_not_between_two_digits_is_refused(cardno: str) -> None:
    reason = "not a card number: a space or dash may only stand between two digits"
    assert check_card(cardno) == reason


def test_verdict_signs_and_handles_non_strings() -> None:
    assert verdict("4111111111111111", "v1") == {"valid": True, "reason": None, "by": "v1"}
    assert verdict(4111, "v2") == {
        "valid": False,
        "reason": "card number must be a string",
        "by": "v2",
    }
