"""Deprecated alias of :mod:`coterie.gateways.hostscope`; importing it warns.

The module was renamed so that "options" means one thing,
:mod:`coterie.discovery.options`. This alias goes in a later release.
"""

from __future__ import annotations

import warnings

from coterie.gateways.hostscope import (
    HOST_SCOPE,
    add_discovery_arguments,
    discovery_options,
    discovery_options_from_args,
)

__all__ = [
    "HOST_SCOPE",
    "add_discovery_arguments",
    "discovery_options",
    "discovery_options_from_args",
]

warnings.warn(
    "coterie.gateways.options is now coterie.gateways.hostscope; import from there",
    DeprecationWarning,
    stacklevel=2,
)
