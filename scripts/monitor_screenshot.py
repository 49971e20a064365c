"""Take docs/monitor.png: the web monitor showing the demo's mesh.

Everything stays on this host: loopback addresses, host-scope discovery
(COTE_BROADCAST_ADDRESS=127.255.255.255) on a discovery port of its own, and
spare TCP ports, so it runs next to anything else. It starts:

1. the demo without its tour (``python -m examples.payment.demo --no-tour``):
   the payment service, two validation services on the mesh, and the nginx
   half (two announced HTTP validators and ``coterie nginx``; without nginx,
   the mesh half only);
2. ``coterie monitor --web 127.0.0.1:0`` on the same discovery port and in
   the demo's cote environment (components report only to monitors of theirs);

pays on the mesh payment service every 50 ms, waits until the page's view
shows the payment service linked to every validator with its request rate,
takes ``chromium --headless=new --screenshot`` of the page, and stops what
it started (SIGINT, then SIGKILL of its process group).

Usage, from the repository root::

    .venv/bin/python scripts/monitor_screenshot.py [--out docs/monitor.png]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOST_SCOPE = "127.255.255.255"
#: The demo's cote environment, which the monitor joins to get its status reports.
ENVIRONMENT = "screenshot"


def spare_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port the kernel calls free on loopback now."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group, output to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C ``proc``, give it 15 s, then kill whatever is left of its group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def wait_for_url(log: Path, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The page's address, from ``coterie monitor``'s "serving" line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"coterie monitor exited:\n{log.read_text()}")
        for line in log.read_text().splitlines():
            if line.startswith("coterie monitor: serving "):
                return line.split()[3]
        time.sleep(0.1)
    raise TimeoutError(f"coterie monitor did not start in {timeout} s")


def pay(port: int, paying: threading.Event) -> None:
    """Pay on the mesh payment service every 50 ms while ``paying`` is set."""
    while paying.is_set():
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/pay/4111111111111111", timeout=5)
        time.sleep(0.05)


def wait_for_mesh(url: str, validators: int, timeout: float) -> dict[str, Any]:
    """Until the payment service reports links to every mesh validator."""
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "view.json", timeout=5) as resp:
            view = json.load(resp)
        roles = {n["id"]: n["role"] for n in view["nodes"]}
        responders = {i for i, r in roles.items() if r == "responder"}
        payment = [n["id"] for n in view["nodes"] if n["name"] == "payment service"]
        linked = {e["to"] for e in view["edges"] if e["from"] in payment and e["rate"]}
        if payment and len(responders) == validators and responders <= linked:
            return view  # every link with its (non-zero) request rate
        time.sleep(0.2)
    raise TimeoutError(f"the mesh did not settle in {timeout} s; last view: {view}")


def main() -> int:
    """Start, wait, shoot, stop."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "monitor.png"), help="PNG to write")
    parser.add_argument("--size", default="1400,600", help="window WIDTH,HEIGHT (1400,600)")
    parser.add_argument("--validators", type=int, default=2, help="validators of each kind (2)")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("monitor_screenshot: needs chromium (scripts/system-deps.sh installs it)")
    # Status every 0.5 s: the edges show their rates within a second.
    env = {**os.environ, "COTE_BROADCAST_ADDRESS": HOST_SCOPE, "COTE_STATUS_INTERVAL": "500"}
    disc = str(spare_port(socket.SOCK_DGRAM))
    work = Path(tempfile.mkdtemp(prefix="coterie-screenshot-"))
    procs: list[subprocess.Popen[bytes]] = []
    paying = threading.Event()
    paying.set()
    try:
        demo = [sys.executable, "-m", "examples.payment.demo", "--no-tour"]
        demo += ["--discovery-port", disc, "--validators", str(args.validators)]
        mesh_port = spare_port()
        demo += ["--mesh-port", str(mesh_port), "--nginx-payment-port", str(spare_port())]
        demo += ["--nginx-port", str(spare_port()), "--environment", ENVIRONMENT]
        procs.append(start(demo, work / "demo.log", env))
        monitor = [sys.executable, "-m", "coterie", "-q", "monitor", "--web", "127.0.0.1:0"]
        monitor += ["--discovery-port", disc, "--hello-interval", "250"]
        monitor += ["--environment", ENVIRONMENT]  # the demo's components report to it
        procs.append(start(monitor, work / "monitor.log", env))
        url = wait_for_url(work / "monitor.log", procs[-1], 30)
        payer = threading.Thread(target=pay, args=(mesh_port, paying), daemon=True)
        payer.start()
        view = wait_for_mesh(url, args.validators, 60)
        print(f"monitor_screenshot: {view['title']} at {url}")
        subprocess.run(
            [
                chromium,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                f"--user-data-dir={work / 'chromium'}",
                f"--window-size={args.size}",
                f"--screenshot={Path(args.out).resolve()}",
                url,
            ],
            check=True,
            timeout=60,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        print(f"monitor_screenshot: wrote {args.out}")
    finally:
        paying.clear()
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
