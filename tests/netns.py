"""Private network namespace for the test session.

Discovery traffic must never reach the LAN from a test run. Real Node cote
always broadcasts to 255.255.255.255, so tests that run Node peers need a
network namespace of their own. When the test process runs as root on Linux,
``enter_private_netns`` moves the whole (still single-threaded) pytest process
into a fresh namespace with only loopback up and the limited broadcast address
routed to it. Every socket opened afterwards, and every child process, lives
there. Without root the session stays in the host namespace; the tests then
use host scope (127.255.255.255) and the Node tests skip with a reason.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import sys

CLONE_NEWNET = 0x40000000

#: Why the private namespace could not be made, or ``None`` once inside one.
reason_unavailable: str | None = "not attempted"


def enter_private_netns() -> bool:
    """Move this process into a new network namespace with loopback up.

    Returns:
        True when the process is now inside a private namespace.
    """
    global reason_unavailable
    if os.environ.get("COTERIE_TEST_NETNS") == "0":
        reason_unavailable = "disabled by COTERIE_TEST_NETNS=0"
        return False
    if not sys.platform.startswith("linux"):
        reason_unavailable = "network namespaces need Linux"
        return False
    if os.geteuid() != 0:
        reason_unavailable = "creating a network namespace needs root"
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        reason_unavailable = f"unshare(CLONE_NEWNET) failed: {os.strerror(err)}"
        return False
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "route", "add", "broadcast", "255.255.255.255", "dev", "lo"],
        # Multicast discovery tests send to a group; keep it on loopback too.
        ["ip", "route", "add", "224.0.0.0/4", "dev", "lo"],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            reason_unavailable = f"{' '.join(cmd)} failed: {done.stderr.strip()}"
            return False
    reason_unavailable = None
    return True
