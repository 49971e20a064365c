"""The host-scope options keep their old module name as a deprecated alias."""

from __future__ import annotations

import importlib
import sys

import pytest

from coterie.gateways import hostscope


def test_the_old_module_name_warns_and_gives_the_same_names() -> None:
    sys.modules.pop("coterie.gateways.options", None)
    with pytest.warns(DeprecationWarning, match=r"coterie\.gateways\.hostscope"):
        old = importlib.import_module("coterie.gateways.options")
    for name in old.__all__:
        assert getattr(old, name) is getattr(hostscope, name)
    assert old.__all__ == hostscope.__all__


def test_host_scope_is_the_loopback_broadcast_unless_the_environment_chooses() -> None:
    assert hostscope.discovery_options(environ={}).broadcast == hostscope.HOST_SCOPE
