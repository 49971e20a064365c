"""A multi-host test bed: simulated hosts on two segments joined by a router.

Every simulated host is a network namespace (and a mount namespace, for its
own ``/etc/resolv.conf``) held open by one ``sleep`` process. The bed is built
*inside* the private network namespace the test session already lives in
(:mod:`tests.netns`) and refuses to run anywhere else, so nothing it makes
can touch the machine's real network::

    private namespace of the test session (only lo; creates the others)
    ├── switch    bridges seg-a and seg-b, one veth port per host
    ├── router    eth-a 198.18.1.1/24, eth-b 198.18.2.1/24, forwards
    ├── a1 a2 ... eth0 198.18.1.11, .12, ...; default via 198.18.1.1
    └── b1 b2 ... eth0 198.18.2.11, .12, ...; default via 198.18.2.1

Addresses come from 198.18.0.0/15 (RFC 2544, benchmarking). The router
forwards unicast only: broadcasts stay in their segment, as on a real LAN.
Each host's ``/etc/resolv.conf`` names its router (where a test may start
dnsmasq) and the search domain ``bed.test``, so ``getaddrinfo`` in a host
asks the bed's DNS and nothing else.

Faults: :meth:`Host.partition` blackholes a host both ways (routes to and from
it, reverse-path filtering drops what still arrives, so no RST and no
broadcast gets through); :meth:`Host.link_down` takes its switch port down.
Both heal.

Bounded: every command has a timeout, the holders are ``sleep <ttl>`` so the
namespaces vanish by themselves at the latest after ``ttl`` seconds, and
:meth:`Bed.down` kills every process the bed started or that still runs in
one of its namespaces, then checks that none is left.

From pytest, use the ``bed`` fixture of ``tests/multihost/conftest.py``. By
hand (as root)::

    python -m tests.bed up [--hosts N] [--ttl S]   # build it, keep it in the background
    python -m tests.bed status                     # hosts, addresses, holder pids
    python -m tests.bed shell a1                   # a shell on host a1
    python -m tests.bed run a1 -- ip addr          # one command on a1
    python -m tests.bed down                       # tear it down, check no leftovers

``up`` starts a keeper process that makes its own private network namespace
(as the test session does), builds the bed there and waits for ``down`` or
its ttl. The state lives in ``$COTERIE_BED_DIR`` (``/tmp/coterie-bed``).
See ``docs/testbed.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests import netns

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The whole bed lives in this range (RFC 2544 benchmarking addresses).
BED_RANGE = ipaddress.ip_network("198.18.0.0/15")
#: How long a holder lives at most, in seconds, unless told otherwise.
DEFAULT_TTL = 900.0
#: Bound on any one command the bed runs, in seconds.
COMMAND_TIMEOUT = 10.0
#: The hosts' search domain: ``mesh`` resolves as ``mesh.bed.test``, as short
#: Service names do in a Kubernetes pod.
DOMAIN = "bed.test"


class BedError(RuntimeError):
    """The bed cannot be built here, or a command of it failed."""


# -- safety --------------------------------------------------------------------


def _ns_inode(pid: int | str = "self") -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _interfaces() -> list[str]:
    done = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )
    if done.returncode != 0:
        raise BedError(f"ip link show failed: {done.stderr.strip()}")
    return [line.split(":")[1].strip().split("@")[0] for line in done.stdout.splitlines()]


def assert_private_namespace() -> None:
    """Refuse unless this process lives in a private network namespace of its own.

    Three checks, all required: this process made its namespace itself
    (:func:`tests.netns.enter_private_netns` succeeded), that namespace is
    not init's (when ``/proc/1/ns/net`` can be read), and it holds no
    interface but loopback (the real one has the machine's NICs).

    Raises:
        BedError: When any check fails; nothing has been created.
    """
    if netns.reason_unavailable is not None:
        raise BedError(f"not in a private network namespace: {netns.reason_unavailable}")
    mine, init = _ns_inode(), _ns_inode(1)
    if mine is None:
        raise BedError("cannot read /proc/self/ns/net")
    if init is not None and init == mine:
        raise BedError("this is init's network namespace; refusing to build the bed here")
    others = [name for name in _interfaces() if name != "lo"]
    if others:
        raise BedError(
            f"this network namespace has interfaces besides lo ({', '.join(others)}); "
            "refusing to build the bed here"
        )


def _check_host_side() -> None:
    missing = [tool for tool in ("ip", "unshare", "nsenter", "sleep") if shutil.which(tool) is None]
    if missing:
        raise BedError(f"missing {', '.join(missing)} (apt-get install iproute2 util-linux)")


def unavailable_reason() -> str | None:
    """Why the bed cannot be built in this process, or ``None`` when it can."""
    try:
        _check_host_side()
        assert_private_namespace()
    except (BedError, OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    return None


# -- hosts ---------------------------------------------------------------------


def _run(
    argv: Sequence[str], *, input: str | None = None, timeout: float = COMMAND_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise BedError(f"{' '.join(argv)} took more than {timeout} s") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise BedError(f"{' '.join(argv)} failed ({done.returncode}): {detail}\n{input or ''}")
    return done


@dataclass
class Host:
    """One simulated host: a network and mount namespace held by a ``sleep``.

    Attributes:
        name: ``a1``, ``b2``, ``router``, ``switch``.
        pid: The holder process; its namespaces are the host's.
        addresses: The host's addresses, by interface name.
        segment: The segment's letter (``None`` for the router and switch).
        port: The host's veth port on the switch (``None`` for the switch).
    """

    name: str
    pid: int
    addresses: dict[str, str] = field(default_factory=dict)
    segment: str | None = None
    port: str | None = None
    bed: Bed | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """The host's first address (``eth0``'s for a plain host)."""
        if not self.addresses:
            raise BedError(f"{self.name} has no address")
        return next(iter(self.addresses.values()))

    def enter(self, *, cwd: str | os.PathLike[str] | None = REPO_ROOT) -> list[str]:
        """The ``nsenter`` prefix that runs a command in this host."""
        argv = ["nsenter", f"--net=/proc/{self.pid}/ns/net", f"--mount=/proc/{self.pid}/ns/mnt"]
        if cwd is not None:
            argv.append(f"--wd={cwd}")
        return argv

    def command(
        self, argv: Sequence[str], *, cwd: str | os.PathLike[str] | None = REPO_ROOT
    ) -> list[str]:
        """``argv`` wrapped to run in this host."""
        return [*self.enter(cwd=cwd), *argv]

    def run(
        self, *argv: str, input: str | None = None, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in this host and wait for it; raise unless it succeeds."""
        return _run(self.command(argv), input=input, timeout=timeout)

    def ip(self, *lines: str, force: bool = False) -> None:
        """Run ``ip`` commands (one per line, as ``ip -batch`` takes them) in this host.

        Args:
            lines: The commands.
            force: Go on past failing lines (``ip -force``) and never raise for them.
        """
        if not lines:
            return
        argv = ["ip", "-force", "-batch", "-"] if force else ["ip", "-batch", "-"]
        script = "\n".join(lines) + "\n"
        if force:
            subprocess.run(
                self.command(argv),
                input=script,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
            )
        else:
            self.run(*argv, input=script)

    def sysctl(self, **values: str | int) -> None:
        """Set net sysctls in this host: ``ipv4.ip_forward=1`` as ``ipv4__ip_forward=1``."""
        script = "".join(
            f"echo {value} > /proc/sys/net/{key.replace('__', '/')}\n"
            for key, value in values.items()
        )
        self.run("sh", "-ec", script)

    def popen(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start a process in this host (``subprocess.Popen``); the bed kills it at teardown."""
        proc: subprocess.Popen[bytes] = subprocess.Popen(self.command(argv), **kwargs)  # type: ignore[call-overload]
        self._track(proc.pid)
        return proc

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        **kwargs: object,
    ) -> asyncio.subprocess.Process:
        """Start a process in this host from asyncio; the bed kills it at teardown.

        Args:
            argv: The command.
            env: Its environment; by default :func:`host_environment` (no
                ``COTE_*`` / ``COTERIE_*`` variables of the test process).
            kwargs: For ``asyncio.create_subprocess_exec`` (stdin, stdout, ...).
        """
        proc = await asyncio.create_subprocess_exec(
            *self.command(argv),
            env=dict(env) if env is not None else host_environment(),
            **kwargs,  # type: ignore[arg-type]
        )
        self._track(proc.pid)
        return proc

    def _track(self, pid: int) -> None:
        if self.bed is not None:
            self.bed.started.append(pid)

    # -- faults ------------------------------------------------------------

    def partition(self) -> None:
        """Cut this host off both ways with blackhole routes; no RST, no broadcast.

        This host gets a blackhole route to every other bed address, and every
        other host and the router one to this host. Strict reverse-path
        filtering (on in every host of the bed) drops what still arrives from
        a blackholed source, broadcasts included. :meth:`heal` undoes it.
        """
        self._bed().faulted.add(self.name)
        for where, addresses in self._partition_routes():
            where.ip(*(f"route replace blackhole {a}/32" for a in addresses))

    def heal(self) -> None:
        """Undo :meth:`partition` and :meth:`link_down` (harmless when neither was done)."""
        for where, addresses in self._partition_routes():
            where.ip(*(f"route del blackhole {a}/32" for a in addresses), force=True)
        if self.port is not None:
            self.link_up()
        self._bed().faulted.discard(self.name)

    def _partition_routes(self) -> list[tuple[Host, list[str]]]:
        others = [h for h in self._bed().machines() if h.name != self.name]
        mine = list(self.addresses.values())
        routes = [(self, [a for h in others for a in h.addresses.values()])]
        return routes + [(h, mine) for h in others]

    def link_down(self) -> None:
        """Take this host's switch port down: nothing passes either way."""
        self._bed().faulted.add(self.name)
        self._port_state("down")

    def link_up(self) -> None:
        """Bring this host's switch port back up."""
        self._port_state("up")

    def _port_state(self, state: str) -> None:
        bed = self._bed()
        if self.port is None:
            raise BedError(f"{self.name} has no switch port")
        bed.switch.ip(f"link set {self.port} {state}")

    def _bed(self) -> Bed:
        if self.bed is None:
            raise BedError(f"{self.name} is not part of a bed")
        return self.bed


def host_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a process started in a host.

    The test session's ``COTE_*`` and ``COTERIE_*`` variables (host-scope
    broadcast, for one) are left out: a host is a machine of its own.
    ``COTERIE_BED_HOST`` tells ``interop/peer.js`` it runs in a bed host, where
    broadcasting to 255.255.255.255 is safe.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COTE_", "COTERIE_"))}
    env["COTERIE_BED_HOST"] = "1"
    env.update(extra or {})
    return env


# -- the bed -------------------------------------------------------------------


def _segment_network(index: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"198.18.{index + 1}.0/24")


class Bed:
    """Two (or more) segments of simulated hosts joined by one router.

    Args:
        hosts_per_segment: Hosts on each segment (``a1..aN``, ``b1..bN``).
        segments: How many segments (letters a, b, c, ...), at most 9.
        ttl: Seconds after which the holders exit by themselves.
        workdir: Where host files (``resolv.conf``) go; a temporary
            directory by default.

    Use as a context manager, or :meth:`up` and :meth:`down`.
    """

    def __init__(
        self,
        hosts_per_segment: int = 2,
        *,
        segments: int = 2,
        ttl: float = DEFAULT_TTL,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not 1 <= segments <= 9:
            raise ValueError("segments must be 1-9")
        if not 1 <= hosts_per_segment <= 200:
            raise ValueError("hosts_per_segment must be 1-200")
        self.hosts_per_segment = hosts_per_segment
        self.segment_count = segments
        self.ttl = ttl
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path()
        self.hosts: dict[str, Host] = {}
        self.holders: list[subprocess.Popen[bytes]] = []
        self.started: list[int] = []
        self.namespaces: set[int] = set()
        #: Hosts with a fault made by :meth:`Host.partition` or :meth:`Host.link_down`.
        self.faulted: set[str] = set()
        self._switch: Host | None = None
        self._router: Host | None = None

    # -- queries -------------------------------------------------------------

    @property
    def switch(self) -> Host:
        """The namespace that holds the bridges (no address)."""
        if self._switch is None:
            raise BedError("the bed is not up")
        return self._switch

    @property
    def router(self) -> Host:
        """The router host: ``.1`` on every segment, forwarding between them."""
        if self._router is None:
            raise BedError("the bed is not up")
        return self._router

    @property
    def segments(self) -> list[str]:
        """Segment letters: ``["a", "b"]``."""
        return [chr(ord("a") + i) for i in range(self.segment_count)]

    def network(self, segment: str) -> ipaddress.IPv4Network:
        """A segment's network: 198.18.1.0/24 for ``a``, 198.18.2.0/24 for ``b``."""
        return _segment_network(ord(segment) - ord("a"))

    def broadcast(self, segment: str) -> str:
        """A segment's broadcast address."""
        return str(self.network(segment).broadcast_address)

    def gateway(self, segment: str) -> str:
        """The router's address on a segment."""
        return str(self.network(segment).network_address + 1)

    def on(self, segment: str) -> list[Host]:
        """The plain hosts of a segment, in order."""
        return [h for h in self.hosts.values() if h.segment == segment]

    def __getitem__(self, name: str) -> Host:
        if name == "router":
            return self.router
        return self.hosts[name]

    def heal_all(self) -> None:
        """Heal every host with a fault."""
        for name in sorted(self.faulted):
            self[name].heal()

    def machines(self) -> list[Host]:
        """Every host with an address: the plain hosts and the router."""
        return [*self.hosts.values(), self.router]

    # -- building ------------------------------------------------------------

    def __enter__(self) -> Bed:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self, timeout: float = 30.0) -> Bed:
        """Build the bed.

        Raises:
            BedError: Outside a private network namespace (nothing is
                created then), or when a step fails (what was built is torn
                down first).
        """
        _check_host_side()
        assert_private_namespace()
        if self._own_workdir:
            import tempfile

            self.workdir = Path(tempfile.mkdtemp(prefix="coterie-bed-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        try:
            self._build(deadline)
        except BaseException:
            self.down()
            raise
        return self

    def _holder(self, name: str) -> Host:
        proc = subprocess.Popen(
            [
                "unshare",
                "--net",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sleep",
                str(int(self.ttl)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.holders.append(proc)
        return Host(name=name, pid=proc.pid, bed=self)

    def _wait_holders(self, hosts: Iterable[Host], deadline: float) -> None:
        mine = _ns_inode()
        for host in hosts:
            while True:
                inode = _ns_inode(host.pid)
                if inode is not None and inode != mine:
                    self.namespaces.add(inode)
                    break
                proc = next(p for p in self.holders if p.pid == host.pid)
                if proc.poll() is not None:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise BedError(f"holder of {host.name} exited: {err.strip()}")
                if time.monotonic() > deadline:
                    raise BedError(f"holder of {host.name} made no namespace in time")
                time.sleep(0.005)

    def _build(self, deadline: float) -> None:
        self._switch = switch = self._holder("switch")
        self._router = router = self._holder("router")
        for seg in self.segments:
            for i in range(1, self.hosts_per_segment + 1):
                name = f"{seg}{i}"
                self.hosts[name] = self._holder(name)
                self.hosts[name].segment = seg
        self._wait_holders([switch, router, *self.hosts.values()], deadline)

        # The switch: one bridge per segment, a veth port per host.
        lines = ["link set lo up"]
        for seg in self.segments:
            lines += [
                f"link add seg-{seg} type bridge stp_state 0 forward_delay 0",
                f"link set seg-{seg} up",
            ]
            router_port = f"r-{seg}"
            lines += [
                f"link add {router_port} type veth peer name eth-{seg} netns {router.pid}",
                f"link set {router_port} master seg-{seg}",
                f"link set {router_port} up",
            ]
            for host in self.on(seg):
                host.port = host.name
                lines += [
                    f"link add {host.port} type veth peer name eth0 netns {host.pid}",
                    f"link set {host.port} master seg-{seg}",
                    f"link set {host.port} up",
                ]
        switch.ip(*lines)
        switch.sysctl(ipv6__conf__all__disable_ipv6=1, ipv6__conf__default__disable_ipv6=1)
        router.port = None

        # The router: .1 on every segment, forwarding unicast between them.
        lines = ["link set lo up"]
        for seg in self.segments:
            gw = self.gateway(seg)
            router.addresses[f"eth-{seg}"] = gw
            lines += [f"addr add {gw}/24 brd + dev eth-{seg}", f"link set eth-{seg} up"]
        router.sysctl(**_host_sysctls(), ipv4__ip_forward=1)
        router.ip(*lines)

        for host in self.hosts.values():
            assert host.segment is not None
            address = str(self.network(host.segment).network_address + 10 + int(host.name[1:]))
            host.addresses["eth0"] = address
            host.sysctl(**_host_sysctls())
            host.ip(
                "link set lo up",
                f"addr add {address}/24 brd + dev eth0",
                "link set eth0 up",
                f"route add default via {self.gateway(host.segment)}",
            )
            self._resolv(host, self.gateway(host.segment))
        self._resolv(router, "127.0.0.1")
        if time.monotonic() > deadline:
            raise BedError("building the bed took too long")

    def _resolv(self, host: Host, nameserver: str) -> None:
        path = self.workdir / f"{host.name}.resolv.conf"
        path.write_text(f"search {DOMAIN}\nnameserver {nameserver}\noptions timeout:1 attempts:1\n")
        path.chmod(0o644)
        host.run("mount", "--bind", str(path), "/etc/resolv.conf")

    # -- tearing down --------------------------------------------------------

    def down(self, timeout: float = 10.0) -> None:
        """Kill everything the bed started and its holders; check nothing is left.

        Raises:
            BedError: When a process of the bed's namespaces survives.
        """
        stray = self.processes()
        for pid in {*self.started, *stray}:
            _kill(pid)
        for proc in self.holders:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        deadline = time.monotonic() + timeout
        for proc in self.holders:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            if proc.stderr is not None:
                proc.stderr.close()
        left: list[int] = []
        while time.monotonic() < deadline:
            left = self.processes()
            if not left:
                break
            for pid in left:
                _kill(pid)
            time.sleep(0.02)
        self.holders.clear()
        self.started.clear()
        self.hosts.clear()
        self._switch = self._router = None
        namespaces, self.namespaces = self.namespaces, set()
        if self._own_workdir and self.workdir != Path():
            shutil.rmtree(self.workdir, ignore_errors=True)
        if left:
            raise BedError(f"processes {left} still run in the bed's namespaces {namespaces}")

    def processes(self) -> list[int]:
        """Pids of the processes (holders included) in the bed's namespaces."""
        if not self.namespaces:
            return []
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and _ns_inode(entry) in self.namespaces:
                found.append(int(entry))
        return found

    @classmethod
    def attach(cls, described: Mapping[str, object]) -> Bed:
        """A view of a bed built elsewhere (by the keeper), from :meth:`describe`'s data.

        Its hosts run commands and make faults; it owns no process, so never
        call :meth:`down` on it.
        """
        hosts = described["hosts"]
        assert isinstance(hosts, dict)
        bed = cls(segments=len(described["segments"]))  # type: ignore[arg-type]
        for name, h in hosts.items():
            host = Host(
                name=name,
                pid=int(h["pid"]),
                addresses=dict(h["addresses"]),
                segment=h["segment"],
                port=h["port"],
                bed=bed,
            )
            if name == "switch":
                bed._switch = host
            elif name == "router":
                bed._router = host
            else:
                bed.hosts[name] = host
        bed.hosts_per_segment = len(bed.on("a"))
        return bed

    def describe(self) -> dict[str, object]:
        """The bed as JSON-able data: hosts, addresses, holder pids."""
        return {
            "hosts": {
                h.name: {
                    "pid": h.pid,
                    "segment": h.segment,
                    "addresses": h.addresses,
                    "port": h.port,
                }
                for h in [*self.hosts.values(), self.router, self.switch]
            },
            "segments": {s: str(self.network(s)) for s in self.segments},
        }


def _host_sysctls() -> dict[str, int]:
    return {
        "ipv6__conf__all__disable_ipv6": 1,
        "ipv6__conf__default__disable_ipv6": 1,
        # Strict reverse-path filtering: what comes from a blackholed source
        # is dropped, which makes partition() cut both ways.
        "ipv4__conf__all__rp_filter": 1,
        "ipv4__conf__default__rp_filter": 1,
    }


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


# -- the command line ------------------------------------------------------------

STATE_DIR = Path(os.environ.get("COTERIE_BED_DIR", "/tmp/coterie-bed"))
STATE_FILE = STATE_DIR / "state.json"


def _load_state() -> dict[str, object]:
    try:
        state: dict[str, object] = json.loads(STATE_FILE.read_text())
    except FileNotFoundError:
        raise SystemExit("no bed is up (python -m tests.bed up)") from None
    return state


def _host_pid(state: Mapping[str, object], name: str) -> int:
    hosts = state["hosts"]
    assert isinstance(hosts, dict)
    if name not in hosts:
        raise SystemExit(f"no host {name!r}; hosts: {', '.join(sorted(hosts))}")
    return int(hosts[name]["pid"])


def _keep(args: argparse.Namespace) -> int:
    """The keeper: make a private namespace, build the bed, wait, tear down."""
    if not netns.enter_private_netns():
        print(f"bed: {netns.reason_unavailable}", file=sys.stderr)
        return 1
    bed = Bed(args.hosts, segments=args.segments, ttl=args.ttl, workdir=STATE_DIR / "hosts")
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        bed.up()
    except BedError as exc:
        (STATE_DIR / "error").write_text(str(exc))
        return 1
    state = {"keeper": os.getpid(), "created": time.time(), "ttl": args.ttl, **bed.describe()}
    tmp = STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(STATE_FILE)
    end = time.monotonic() + args.ttl
    while not stop and time.monotonic() < end:
        time.sleep(0.1)
    try:
        bed.down()
    finally:
        STATE_FILE.unlink(missing_ok=True)
        shutil.rmtree(STATE_DIR / "hosts", ignore_errors=True)
    return 0


def _up(args: argparse.Namespace) -> int:
    if STATE_FILE.exists():
        print(f"bed: already up ({STATE_FILE}); python -m tests.bed down first", file=sys.stderr)
        return 1
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    (STATE_DIR / "error").unlink(missing_ok=True)
    log = open(STATE_DIR / "keeper.log", "ab")  # noqa: SIM115 - handed to the child
    subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.bed",
            "_keep",
            "--hosts",
            str(args.hosts),
            "--segments",
            str(args.segments),
            "--ttl",
            str(args.ttl),
        ],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if STATE_FILE.exists():
            return _status(args)
        if (STATE_DIR / "error").exists():
            print(f"bed: {(STATE_DIR / 'error').read_text()}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    print(f"bed: not up within 30 s; see {STATE_DIR / 'keeper.log'}", file=sys.stderr)
    return 1


def _status(args: argparse.Namespace) -> int:
    state = _load_state()
    hosts = state["hosts"]
    assert isinstance(hosts, dict)
    left = float(state["created"]) + float(state["ttl"]) - time.time()  # type: ignore[arg-type]
    print(f"bed up: keeper pid {state['keeper']}, {left:.0f} s of its ttl left")
    for name, host in hosts.items():
        addresses = " ".join(f"{k}={v}" for k, v in host["addresses"].items()) or "-"
        print(f"  {name:<7} pid {host['pid']:<8} {addresses}")
    return 0


def _shell(args: argparse.Namespace) -> int:
    pid = _host_pid(_load_state(), args.host)
    shell = os.environ.get("SHELL", "/bin/bash")
    env = host_environment({"PS1": f"[bed {args.host}] \\w\\$ "})
    os.execvpe(
        "nsenter",
        [
            "nsenter",
            f"--net=/proc/{pid}/ns/net",
            f"--mount=/proc/{pid}/ns/mnt",
            f"--wd={os.getcwd()}",
            shell,
            "--norc",
            "-i",
        ],
        env,
    )


def _exec(args: argparse.Namespace) -> int:
    pid = _host_pid(_load_state(), args.host)
    argv = list(args.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise SystemExit("run: give a command after the host")
    os.execvpe(
        "nsenter",
        [
            "nsenter",
            f"--net=/proc/{pid}/ns/net",
            f"--mount=/proc/{pid}/ns/mnt",
            f"--wd={os.getcwd()}",
            *argv,
        ],
        host_environment(),
    )


def _fault(args: argparse.Namespace) -> int:
    bed = Bed.attach(_load_state())
    host = bed[args.host]
    {
        "partition": host.partition,
        "heal": host.heal,
        "link-down": host.link_down,
        "link-up": host.link_up,
    }[args.cmd]()
    print(f"{args.host}: {args.cmd} done")
    return 0


def _down(args: argparse.Namespace) -> int:
    state = _load_state()
    keeper = int(state["keeper"])  # type: ignore[call-overload]
    holders = [int(h["pid"]) for h in state["hosts"].values()]  # type: ignore[attr-defined]
    with contextlib.suppress(ProcessLookupError):
        os.kill(keeper, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and os.path.exists(f"/proc/{keeper}"):
        time.sleep(0.05)
    alive = [pid for pid in [keeper, *holders] if _alive(pid)]
    if alive:
        print(f"bed: still running after 15 s: {alive}", file=sys.stderr)
        return 1
    STATE_FILE.unlink(missing_ok=True)
    print("bed down: keeper and holders gone")
    return 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.bed up|status|shell|run|down``."""
    parser = argparse.ArgumentParser(prog="python -m tests.bed", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("up", "_keep"):
        p = sub.add_parser(name, help="build the bed in the background" if name == "up" else None)
        p.add_argument("--hosts", type=int, default=2, help="hosts per segment (2)")
        p.add_argument("--segments", type=int, default=2, help="segments (2)")
        p.add_argument(
            "--ttl", type=float, default=3600.0, help="seconds before it tears itself down"
        )
    sub.add_parser("status", help="list hosts and addresses")
    p = sub.add_parser("shell", help="a shell in a host")
    p.add_argument("host")
    p = sub.add_parser("run", help="run a command in a host")
    p.add_argument("host")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    for name, what in (
        ("partition", "blackhole a host both ways"),
        ("heal", "undo faults"),
        ("link-down", "take a host's switch port down"),
        ("link-up", "bring it back"),
    ):
        p = sub.add_parser(name, help=what)
        p.add_argument("host")
    sub.add_parser("down", help="tear the bed down")
    args = parser.parse_args(argv)
    handlers = {
        "up": _up,
        "_keep": _keep,
        "status": _status,
        "shell": _shell,
        "run": _exec,
        "down": _down,
        "partition": _fault,
        "heal": _fault,
        "link-down": _fault,
        "link-up": _fault,
    }
    return handlers[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
