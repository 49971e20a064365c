"""The browser helper cleans up after itself: nothing of chromium's stays in the temp dir."""

from __future__ import annotations

import glob
import os

import pytest

from tests.web.chromium import Browser, chromium_path

pytestmark = pytest.mark.skipif(
    chromium_path() is None, reason="chromium is not installed (scripts/system-deps.sh)"
)


async def test_chromium_keeps_its_temporary_files_in_its_own_directory() -> None:
    async with Browser() as browser:
        folder = browser._dir
        assert await browser.evaluate("1 + 1") == 2
        # Chromium made its org.chromium.Chromium.* folders here, not in /tmp,
        # where a killed chromium would leave them.
        assert glob.glob(os.path.join(folder, "org.chromium.Chromium.*"))
    assert glob.glob(folder) == []  # removed
