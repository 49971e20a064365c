"""Card-number checks for the payment example (pure functions).

Design: :func:`check_card` answers with a reason when a card number is
refused and ``None`` when it passes, so callers can say *why* in one line.
The Luhn checksum is done by :func:`luhn_valid` on digits only. No I/O, no
state: both are unit tested as pure functions.
"""

from __future__ import annotations

import re

__all__ = ["MAX_DIGITS", "MIN_DIGITS", "check_card", "luhn_valid"]

#: Payment card numbers (ISO/IEC 7812) have 8 to 19 digits.
MIN_DIGITS = 8
MAX_DIGITS = 19

#: How much of a refused input a reason quotes back.
_QUOTE = 24

_DIGITS = frozenset("0123456789")
_SEPARATORS = frozenset(" -")
#: Digit groups with one space or dash between two groups.
_GROUPED = re.compile(r"[0-9]+(?:[ -][0-9]+)*")


def luhn_valid(digits: str) -> bool:
    """Whether a string of ASCII digits passes the Luhn checksum.

    Args:
        digits: ASCII digits only, at least one.

    Raises:
        ValueError: When ``digits`` is empty or holds anything but 0-9.
    """
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"luhn_valid needs ASCII digits, got {digits[:_QUOTE]!r}")
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def check_card(cardno: str) -> str | None:
    """Why a card number is refused, or ``None`` when it is valid.

    Single spaces or dashes between digit groups are allowed (``4111 1111
    1111 1111``, ``4111-1111-1111-1111``), and spaces around the number are
    ignored; a dash before or after the digits (``-4111111111111111``) or two
    separators in a row are refused. Anything else must be an ASCII digit.

    Args:
        cardno: The card number as the user typed it.

    Returns:
        ``None`` for a valid number, else a short reason such as
        ``"failed the Luhn check"`` or ``"too long (20 digits, at most 19)"``.
    """
    number = cardno.strip(" ")
    if not number.strip():
        return "empty card number"
    bad = next((c for c in number if c not in _SEPARATORS and c not in _DIGITS), None)
    if bad is not None:
        return f"not a card number: {bad!r} is not a digit"
    if not _GROUPED.fullmatch(number):
        return "not a card number: a space or dash may only stand between two digits"
    digits = number.replace(" ", "").replace("-", "")
    if len(digits) > MAX_DIGITS:
        return f"too long ({len(digits)} digits, at most {MAX_DIGITS})"
    if len(digits) < MIN_DIGITS:
        return f"too short ({len(digits)} digits, at least {MIN_DIGITS})"
    if not luhn_valid(digits):
        return "failed the Luhn check"
    return None
