"""What both apps share: the module-level requester and the view's work.

The discovery options come from ``COTERIE_TEST_DISCOVERY`` (JSON of
:class:`coterie.DiscoveryOptions` fields), set by the test.
"""

from __future__ import annotations

import json
import os
from typing import Any

import coterie.sync
from coterie import DiscoveryOptions


def requester() -> coterie.sync.Requester:
    """The app's one requester, made at import (before gunicorn forks)."""
    options = DiscoveryOptions(**json.loads(os.environ["COTERIE_TEST_DISCOVERY"]))
    return coterie.sync.Requester("web", discovery=options, timeout=10.0)


def validate(requester: coterie.sync.Requester, cardno: str) -> dict[str, Any]:
    """Ask the Python responder and the Node one; say which worker asked."""
    return {
        "python": requester.send({"type": "validate-py", "cardno": cardno}),
        "node": requester.send({"type": "validate-node", "cardno": cardno}),
        "worker": os.getpid(),
    }
