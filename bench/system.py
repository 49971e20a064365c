"""Where the bench runs: the private network namespace, Node, the machine.

Design: real Node cote broadcasts discovery to 255.255.255.255, so it may
only run inside a private network namespace. When the bench runs as root,
:func:`enter_private_netns` moves the still single-threaded driver into a
fresh namespace (``unshare(CLONE_NEWNET)`` through ctypes), brings loopback up
and routes the limited broadcast address to it; every worker the driver
spawns inherits that namespace, so coterie and cote are measured under the
same conditions. A process that already sees only ``lo`` is taken to be in a
private namespace (as under the test suite). Without root, only coterie runs,
in host scope, and the report says why Node was skipped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.proc import ROOT

CLONE_NEWNET = 0x40000000
COTE_VERSION = "1.2.0"
INTEROP = ROOT / "interop"


def _interfaces() -> list[str]:
    try:
        return sorted(os.listdir("/sys/class/net"))
    except OSError:
        return []


def _loopback_setup() -> str | None:
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "route", "add", "broadcast", "255.255.255.255", "dev", "lo"],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 and "File exists" not in done.stderr:
            return f"{' '.join(cmd)} failed: {done.stderr.strip()}"
    return None


def enter_private_netns() -> tuple[bool, str]:
    """Make sure this process runs in a private network namespace.

    Returns:
        ``(True, how)`` inside one, or ``(False, why not)``.
    """
    if not sys.platform.startswith("linux"):
        return False, "network namespaces need Linux"
    if _interfaces() == ["lo"]:
        if os.geteuid() == 0:
            problem = _loopback_setup()
            if problem:
                return False, problem
        return True, "already in a private network namespace (only lo)"
    if os.environ.get("COTERIE_BENCH_NETNS") == "0":
        return False, "disabled by COTERIE_BENCH_NETNS=0"
    if os.geteuid() != 0:
        return False, "creating a private network namespace needs root"
    if shutil.which("ip") is None:
        return False, "the ip command (iproute2) is missing"
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        return False, f"unshare(CLONE_NEWNET) failed: {os.strerror(err)}"
    problem = _loopback_setup()
    if problem:
        return False, problem
    return True, "private network namespace made by the bench"


def cote_version() -> str | None:
    """The installed cote version under interop/, or None."""
    try:
        data = json.loads((INTEROP / "node_modules" / "cote" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return str(data.get("version"))


def ensure_node(install: bool = True) -> tuple[bool, str]:
    """Check Node and the pinned cote; ``npm ci`` it when missing.

    Must run before entering the namespace (npm needs the registry).

    Returns:
        ``(True, versions)`` when usable, else ``(False, why not)``.
    """
    node = shutil.which("node")
    if node is None:
        return False, "node is not installed (scripts/system-deps.sh installs it)"
    if cote_version() is None and install and shutil.which("npm"):
        print("bench: installing the Node reference (npm ci in interop/) ...", flush=True)
        subprocess.run(
            ["npm", "ci", "--prefix", str(INTEROP), "--no-audit", "--no-fund", "--loglevel=error"],
            check=False,
            timeout=300,
        )
    version = cote_version()
    if version is None:
        return False, "cote is not installed under interop/ (run: npm ci --prefix interop)"
    if version != COTE_VERSION:
        return False, f"interop/ has cote {version}, the bench compares against {COTE_VERSION}"
    return True, version


def _run(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "n/a"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def coterie_source() -> str:
    """Which coterie the workers import: its git commit, and whether its tree is modified.

    The workers import coterie as the driver does (``PYTHONPATH`` first), so a
    run can measure another checkout, e.g. an older commit in a worktree.
    """
    import coterie

    src = Path(coterie.__file__).resolve().parent
    if shutil.which("git") is None:
        return str(src)
    commit = _run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"])
    if not commit or " " in commit:
        return "not in a git checkout"
    dirty = _run(["git", "-C", str(src), "status", "--porcelain", "--", "."])
    return f"{commit}" + (" (with uncommitted changes)" if dirty else "")


def coterie_path() -> str:
    """Where the coterie package the workers import lives."""
    import coterie

    return str(Path(coterie.__file__).resolve().parent)


def _build() -> str:
    """Compiled or pure Python (``coterie._native``; trees before it are pure)."""
    try:
        from coterie import _native
    except ImportError:
        return "pure Python"
    return _native.describe()


def conditions() -> dict[str, Any]:
    """The machine and the versions, for the report."""
    import coterie

    try:
        from importlib.metadata import PackageNotFoundError, version

        loop = f"uvloop {version('uvloop')}"
    except (ImportError, PackageNotFoundError):
        loop = "asyncio (uvloop not installed)"
    try:
        import orjson

        orjson_version = orjson.__version__
    except ImportError:
        orjson_version = "not installed"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{_cpu_model()}, {os.cpu_count()} CPUs, {_mem_total()} RAM",
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "coterie": f"{coterie.__version__}, commit {coterie_source()}",
        "coterie build": _build(),
        "event loop": loop,
        "orjson": orjson_version,
        "node": _run(["node", "--version"]) if shutil.which("node") else "not installed",
        "cote": cote_version() or "not installed",
        "nginx": _run(["nginx", "-v"]) if shutil.which("nginx") else "not installed",
        "wrk": _run(["wrk", "--version"]).split(" Copyright")[0]
        if shutil.which("wrk")
        else "not installed",
    }


def load_average() -> float:
    """The 1-minute load average (0 where unknown)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def rss_kib(pid: int) -> int | None:
    """Resident set size of a process, from /proc, in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time a process has used so far, from /proc, in seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
