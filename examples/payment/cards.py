"""Card-number checks for the payment example (pure functions).

Design: :func:`check_card` answers with a reason when a card number is
refused and ``None`` when it passes, so callers can say *why* in one line.
The Luhn checksum is done by :func:`luhn_valid` on digits only. No I/O, no
state: both are unit tested as pure functions.
"""

from __future__ import annotations

__all__ = ["MAX_DIGITS", "MIN_DIGITS", "check_card", "luhn_valid"]

#: Payment card numbers (ISO/IEC 7812) have 8 to 19 digits.
MIN_DIGITS = 8
MAX_DIGITS = 19

#: How much of a refused input a reason quotes back.
_QUOTE = 24


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

    Spaces and dashes between digit groups are allowed (``4111 1111 1111
    1111``); anything else must be a digit.

    Args:
        cardno: The card number as the user typed it.

    Returns:
        ``None`` for a valid number, else a short reason such as
        ``"failed the Luhn check"`` or ``"too long (20 digits, at most 19)"``.
    """
    if not cardno.strip():
        return "empty card number"
    digits = cardno.replace(" ", "").replace("-", "")
    if not (digits.isascii() and digits.isdigit()):
        bad = next(c for c in digits if not (c.isascii() and c.isdigit()))
        return f"not a card number: {bad!r} is not a digit"
    if len(digits) > MAX_DIGITS:
        return f"too long ({len(digits)} digits, at most {MAX_DIGITS})"
    if len(digits) < MIN_DIGITS:
        return f"too short ({len(digits)} digits, at least {MIN_DIGITS})"
    if not luhn_valid(digits):
        return "failed the Luhn check"
    return None
