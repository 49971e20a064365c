"""Fuzz targets for every input decoder, as ordinary pytest tests (hypothesis).

One file per input an attacker reaches:

- ``test_fuzz_packets.py``: discovery datagrams (``PacketCodec.decode``,
  plain and keyed) and the node table they feed;
- ``test_fuzz_framing.py``: AMP frames (``FrameDecoder.feed``) cut anywhere;
- ``test_fuzz_link.py``: a link's ``data_received`` (through a fake
  transport, no sockets), and the TLS server handshake in front of it;
- ``test_fuzz_sockend.py``: the Sockend's socket.io event path
  (``Sockend.handle``) and what it relays.

Each target runs a small number of examples in CI (the whole set takes a
few seconds). ``COTERIE_FUZZ_EXAMPLES=N`` runs N examples per target
instead (``make fuzz`` runs 20,000); see docs/security.md, "Fuzzing".
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = ["EXAMPLES_VARIABLE", "exact_scalars", "fuzz_settings", "json_trees"]

#: The environment variable that sets the number of examples of every target.
EXAMPLES_VARIABLE = "COTERIE_FUZZ_EXAMPLES"


def _examples(ci: int) -> int:
    value = os.environ.get(EXAMPLES_VARIABLE, "").strip()
    if not value:
        return ci
    try:
        examples = int(value.replace("_", ""))
    except ValueError:
        raise ValueError(f"{EXAMPLES_VARIABLE} must be a whole number, got {value!r}") from None
    if examples <= 0:
        raise ValueError(f"{EXAMPLES_VARIABLE} must be positive, got {examples}")
    return examples


def fuzz_settings(ci: int) -> settings:
    """Hypothesis settings for one fuzz target: ``ci`` examples, or ``COTERIE_FUZZ_EXAMPLES``.

    No deadline and no health check about slow or large data: a fuzz target
    judges what the code does with odd input, not how fast examples come. A
    function-scoped fixture is shared by all the examples of a test on
    purpose (the Sockend target feeds one running gateway, as clients do).
    """
    return settings(
        max_examples=_examples(ci),
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
    )


def exact_scalars(max_int: int = 2**64 - 1) -> st.SearchStrategy[Any]:
    """JSON scalars that orjson writes and reads back unchanged (integers up to ``max_int``)."""
    return (
        st.none()
        | st.booleans()
        | st.integers(-(2**63), max_int)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
    )


def json_trees(
    scalars: st.SearchStrategy[Any], *, width: int, key_size: int, leaves: int
) -> st.SearchStrategy[Any]:
    """``scalars`` in lists and objects of ``width`` items at most, ``leaves`` scalars in all."""
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=width)
            | st.dictionaries(st.text(max_size=key_size), inner, max_size=width)
        ),
        max_leaves=leaves,
    )
