"""``coterie run``: real processes, real signals, real sockets (host scope).

Each test writes a small service module into its temporary directory and
serves it with ``python -m coterie run MODULE:ATTR`` started in that
directory, on the test's own discovery port. The load tests send a bounded,
loopback-only stream (about 2,000 requests/s for a few seconds) from a
requester in this process, and print their figures (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from coterie import Node, Requester
from tests.helpers import FAST_TIMINGS, HOST_SCOPE, MS, DiscoveryFactory, free_port, ms, wait_for

#: The service the runner serves: a responder named by SVC_NAME that also
#: answers ``only:<name>``, so a requester can tell each one apart.
SERVICE = """
import asyncio, os, time
from coterie import DiscoveryOptions, Requester, Responder

NAME = os.environ.get("SVC_NAME", "validation")
DISC = DiscoveryOptions(port={port}, broadcast="{scope}", log=False, hello_interval={hello},
                        check_interval={check}, node_timeout={node})

responder = Responder(NAME, host="127.0.0.1", discovery=DISC)

@responder.on("validate")
async def validate(req):
    await asyncio.sleep(req.get("sleep", 0))
    return {{"pid": os.getpid(), "by": NAME}}

@responder.on("only:" + NAME)
def only(req):
    return NAME

@responder.on("loop")
def loop(req):
    return type(asyncio.get_running_loop()).__module__

@responder.on("block")
def block(req):
    time.sleep(req["seconds"])  # blocks the event loop on purpose
    return "unblocked"

checker = Requester("checker", requests=["validate"], discovery=DISC)

async def factory():
    return [responder]

async def front():
    with open(os.environ["SVC_LOG"], "a") as log:
        log.write("started\\n")
    yield responder
    with open(os.environ["SVC_LOG"], "a") as log:
        log.write("on_stop\\n")

both = [responder, checker]
nothing = []
number = 3
def plain():
    return responder
async def gives_a_string():
    return "responder"
"""


def write_service(directory: Path, disc_port: int) -> None:
    source = SERVICE.format(
        port=disc_port,
        scope=HOST_SCOPE,
        hello=ms(FAST_TIMINGS["hello_interval"]),
        check=ms(FAST_TIMINGS["check_interval"]),
        node=ms(FAST_TIMINGS["node_timeout"]),
    )
    (directory / "svc.py").write_text(source)
    (directory / "broken.py").write_text("import no_such_module_anywhere\n")
    (directory / "raising.py").write_text("raise RuntimeError('boom at import')\n")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COTE_", "COTERIE_TLS"))}
    env.pop("COTERIE_LINK_SECRET", None)
    env["COTE_BROADCAST_ADDRESS"] = HOST_SCOPE
    env.update(extra)
    return env


async def start_run(
    directory: Path, *args: str, name: str = "validation", **env: str
) -> asyncio.subprocess.Process:
    """``python -m coterie -q run ARGS`` in ``directory`` (the module's home)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coterie", "-q", "run", *args,
        cwd=directory, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=_env(SVC_NAME=name, SVC_LOG=str(directory / "svc.log"), **env),
    )  # fmt: skip


async def http_get(port: int, path: str) -> tuple[int, str]:
    """One ``GET`` on 127.0.0.1: the status and the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def status(port: int, path: str) -> int | None:
    """The status of ``GET path``, or ``None`` while nothing listens."""
    try:
        async with asyncio.timeout(500 * MS):
            return (await http_get(port, path))[0]
    except (OSError, TimeoutError):
        return None


async def finish(proc: asyncio.subprocess.Process, timeout: float = 20_000 * MS) -> str:
    """Wait for the process to end (killing it past ``timeout``); its stderr."""
    try:
        async with asyncio.timeout(timeout):
            _, err = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        _, err = await proc.communicate()
        raise AssertionError(f"still running after {timeout:.1f} s: {err.decode()}") from None
    return err.decode()


@contextlib.asynccontextmanager
async def running(
    directory: Path, *args: str, name: str = "validation"
) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await start_run(directory, *args, name=name)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.communicate()


# -- targets that cannot be served -------------------------------------------------


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("nomodule:responder", "no module 'nomodule' in the current directory"),
        ("svc:nope", "module 'svc' has no attribute 'nope'"),
        ("svc", "'svc' is not MODULE:ATTR"),
        ("broken:x", "module 'broken' failed to import: No module named 'no_such_module_anywhere'"),
        ("raising:x", "module 'raising' failed to import: RuntimeError: boom at import"),
        ("svc:number", "svc:number is int 3: give a component, a list of components, or an async"),
        ("svc:nothing", "svc:nothing is an empty list"),
        ("svc:plain", "svc:plain is a plain callable 'plain' (not async)"),
        ("svc:gives_a_string", "svc:gives_a_string gave str 'responder': its factory must"),
    ],
)
async def test_a_target_that_cannot_be_served_is_one_clear_line_and_exit_2(
    tmp_path: Path, disc_port: int, target: str, says: str
) -> None:
    write_service(tmp_path, disc_port)
    proc = await start_run(tmp_path, target)
    err = await finish(proc)
    assert proc.returncode == 2, err
    assert err.startswith(f"coterie run: error: {says}"), err
    assert "Traceback" not in err


# -- probes ---------------------------------------------------------------------------


async def test_probes_readyz_follows_declared_types_and_livez_the_event_loop(
    tmp_path: Path, disc_port: int, disc: DiscoveryFactory
) -> None:
    write_service(tmp_path, disc_port)
    port = free_port()
    async with running(
        tmp_path, "svc:both", "--health-port", str(port), "--health-host", "127.0.0.1"
    ) as proc:
        # The checker declares requests=["validate"]; its own process's responder serves it.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10_000 * MS
        while await status(port, "/readyz") != 200:
            assert proc.returncode is None, await finish(proc)
            assert loop.time() < deadline, "never ready"
            await asyncio.sleep(10 * MS)
        assert await http_get(port, "/livez") == (200, "live\n")
        assert (await http_get(port, "/nothing"))[0] == 404
        metrics = await http_get(port, "/metrics")
        assert metrics[0] == 200 and "python_info" in metrics[1]
        # Block the loop for 2.5 s: /livez (a thread of its own) says so, then recovers.
        # The block is on purpose: a quiet link is not a dead responder here.
        quiet = Requester("t", discovery=disc(), liveness_timeout=30.0, timeout=20_000 * MS)
        async with quiet as requester:
            await wait_for(lambda: requester.serves("block"))
            block = {"type": "block", "seconds": 2.5}
            blocked = asyncio.ensure_future(requester.send(block, retry=False))
            await asyncio.sleep(1.5)  # real seconds: the bound is 1 s of real time
            code, text = await http_get(port, "/livez")
            assert code == 503 and text.startswith("not live: the event loop has not responded")
            assert (await http_get(port, "/readyz"))[0] == 503
            assert await blocked == "unblocked"
            deadline = loop.time() + 5_000 * MS
            while await status(port, "/livez") != 200:
                assert loop.time() < deadline
                await asyncio.sleep(10 * MS)
        proc.send_signal(signal.SIGTERM)
        await finish(proc)
        assert proc.returncode == 0


async def test_readyz_is_503_until_a_declared_type_has_a_responder(
    tmp_path: Path, disc_port: int, disc: DiscoveryFactory
) -> None:
    (tmp_path / "req.py").write_text(
        "from coterie import DiscoveryOptions, Requester\n"
        f"disc = DiscoveryOptions(port={disc_port}, broadcast='{HOST_SCOPE}', log=False,"
        f" hello_interval={ms(FAST_TIMINGS['hello_interval'])})\n"
        "requester = Requester('payment', requests=['validate', 'refund'], discovery=disc)\n"
    )
    port = free_port()
    from coterie import Responder

    async with running(tmp_path, "req:requester", "--health-port", str(port)) as proc:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10_000 * MS
        while await status(port, "/livez") != 200:
            assert loop.time() < deadline and proc.returncode is None
            await asyncio.sleep(10 * MS)
        validate = Responder("v", host="127.0.0.1", discovery=disc())
        validate.on("validate", lambda req: True)
        async with validate:
            await asyncio.sleep(500 * MS)  # long enough to link: only one of two types served
            code, text = await http_get(port, "/readyz")
            assert (code, text) == (503, "not ready: starting, or a declared request type "
                                         "has no responder\n")  # fmt: skip
            validate.on("refund", lambda req: True)
            deadline = loop.time() + 5_000 * MS
            while await status(port, "/readyz") != 200:
                assert loop.time() < deadline, "not ready with both types served"
                await asyncio.sleep(10 * MS)
        # The responder left: not ready again.
        deadline = loop.time() + 5_000 * MS
        while await status(port, "/readyz") != 503:
            assert loop.time() < deadline, "still ready with no responder"
            await asyncio.sleep(10 * MS)
        proc.send_signal(signal.SIGINT)
        await finish(proc)
        assert proc.returncode == 0


# -- drain under load ----------------------------------------------------------------


@dataclass
class Load:
    """A bounded stream of ``validate`` requests at about ``rate`` per second."""

    requester: Requester
    rate: int = 2000
    sleep: float = 0.05
    sent: int = 0
    answered: int = 0
    errors: list[BaseException] = field(default_factory=list)
    by: dict[str, int] = field(default_factory=dict)
    started: float = 0.0
    ended: float = 0.0

    async def run(self, stop: asyncio.Event, limit: float) -> None:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        tick = 0.01
        self.started = loop.time()
        while not stop.is_set() and loop.time() - self.started < limit:
            due = int((loop.time() - self.started + tick) * self.rate) - self.sent
            for _ in range(max(0, due)):
                self.sent += 1
                task = asyncio.ensure_future(self._one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(tick)
        self.ended = loop.time()
        if tasks:
            await asyncio.wait(set(tasks), timeout=30_000 * MS)

    async def _one(self) -> None:
        try:
            answer = await self.requester.send({"type": "validate", "sleep": self.sleep})
        except Exception as exc:
            self.errors.append(exc)
            return
        self.answered += 1
        self.by[answer["by"]] = self.by.get(answer["by"], 0) + 1

    def figures(self) -> str:
        took = self.ended - self.started
        return (
            f"sent {self.sent} in {took:.2f} s ({self.sent / max(took, 1e-9):.0f}/s), "
            f"answered {self.answered}, errors {len(self.errors)}, by {self.by}"
        )


async def ready_on(port: int, proc: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15_000 * MS
    while await status(port, "/readyz") != 200:
        if proc.returncode is not None:
            raise AssertionError(await finish(proc))
        assert loop.time() < deadline, "never ready"
        await asyncio.sleep(10 * MS)


async def stop_and_time(proc: asyncio.subprocess.Process) -> float:
    """SIGTERM ``proc``; the seconds until it exited (it must exit 0)."""
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    err = await finish(proc)
    took = time.monotonic() - began
    assert proc.returncode == 0, err
    return took


GRACE = 2.0


async def test_sigterm_to_one_of_two_responders_under_load_loses_nothing(
    tmp_path: Path, disc_port: int, disc: DiscoveryFactory
) -> None:
    write_service(tmp_path, disc_port)
    ports = {"a": free_port(), "b": free_port()}
    grace = ["--grace", str(GRACE)]
    async with (
        running(tmp_path, "svc:responder", "--health-port", str(ports["a"]), *grace, name="a")
        as a,
        running(tmp_path, "svc:responder", "--health-port", str(ports["b"]), *grace, name="b")
        as b,
        Requester("load", discovery=disc(), timeout=30_000 * MS) as requester,
    ):  # fmt: skip
        await ready_on(ports["a"], a)
        await ready_on(ports["b"], b)
        await wait_for(lambda: requester.serves("only:a") and requester.serves("only:b"))
        loop = asyncio.get_running_loop()
        # When the mesh hears a's goodbye: on its link (serves turns False), in discovery.
        seen: dict[str, float] = {}

        @requester.on_node
        def removed(event: str, node: Node) -> None:
            if event == "removed" and node.advertisement.get("name") == "a":
                seen.setdefault("discovery goodbye", loop.time())

        async def watch() -> None:
            while "link goodbye" not in seen or "503" not in seen:
                if "link goodbye" not in seen and not requester.serves("only:a"):
                    seen["link goodbye"] = loop.time()
                await asyncio.sleep(0.001)

        async def probe() -> None:
            if await status(ports["a"], "/readyz") == 503:
                seen.setdefault("503", loop.time())

        async def poll() -> None:
            # Overlapping probes, one every 2 ms: a slow answer does not delay the next.
            probes: set[asyncio.Task[None]] = set()
            while "503" not in seen:
                task = asyncio.ensure_future(probe())
                probes.add(task)
                task.add_done_callback(probes.discard)
                await asyncio.sleep(0.002)
            await asyncio.gather(*probes)

        load = Load(requester)
        stop = asyncio.Event()
        loading = asyncio.ensure_future(load.run(stop, limit=20_000 * MS))
        await asyncio.sleep(1.0)
        watching = asyncio.ensure_future(watch())
        polling = asyncio.ensure_future(poll())
        signalled = loop.time()
        took = await stop_and_time(a)
        await asyncio.sleep(0.5)  # b alone for a while
        stop.set()
        await loading
        async with asyncio.timeout(5_000 * MS):
            await asyncio.gather(watching, polling)
        figures = (
            f"\ndrain: {load.figures()}; a exited {took:.2f} s after SIGTERM (grace {GRACE:g}); "
            f"/readyz 503 at +{(seen['503'] - signalled) * 1000:.0f} ms, link goodbye at "
            f"+{(seen['link goodbye'] - signalled) * 1000:.0f} ms, discovery goodbye at "
            f"+{(seen.get('discovery goodbye', float('nan')) - signalled) * 1000:.0f} ms"
        )
        print(figures)
        assert load.errors == [], figures
        assert load.answered == load.sent, figures
        assert load.sent >= 1000 and set(load.by) == {"a", "b"}, figures
        assert took <= GRACE + 1000 * MS, figures
        assert seen["503"] < seen["link goodbye"], figures
        assert seen["503"] < seen.get("discovery goodbye", float("inf")), figures
        assert b.returncode is None


async def test_a_rolling_restart_of_both_responders_under_load_loses_nothing(
    tmp_path: Path, disc_port: int, disc: DiscoveryFactory
) -> None:
    write_service(tmp_path, disc_port)
    grace = ["--grace", str(GRACE)]
    procs: list[asyncio.subprocess.Process] = []

    async def start(name: str) -> asyncio.subprocess.Process:
        port = free_port()
        proc = await start_run(tmp_path, "svc:responder", "--health-port", str(port), *grace,
                               name=name)  # fmt: skip
        procs.append(proc)
        await ready_on(port, proc)
        await wait_for(lambda: requester.serves(f"only:{name}"), 10_000 * MS)
        return proc

    requester = Requester("load", discovery=disc(), timeout=30_000 * MS)
    try:
        async with requester:
            a, b = await start("a"), await start("b")
            load = Load(requester)
            stop = asyncio.Event()
            loading = asyncio.ensure_future(load.run(stop, limit=40_000 * MS))
            await asyncio.sleep(0.5)
            took_a = await stop_and_time(a)
            await start("a2")
            await asyncio.sleep(0.3)
            took_b = await stop_and_time(b)
            await start("b2")
            await asyncio.sleep(0.3)
            stop.set()
            await loading
            figures = f"\nrolling restart: {load.figures()}; exits {took_a:.2f} s, {took_b:.2f} s"
            print(figures)
            assert load.errors == [], figures
            assert load.answered == load.sent, figures
            assert {"a", "b", "a2", "b2"} <= set(load.by), figures
            assert max(took_a, took_b) <= GRACE + 1000 * MS, figures
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.communicate()


# -- grace, second signal, factories -------------------------------------------------


async def held_by(requester: Requester, name: str) -> asyncio.Future[Any]:
    """A 30 s request, once the service ``name`` holds it."""
    await wait_for(lambda: requester.serves(f"only:{name}"), 10_000 * MS)
    slow = asyncio.ensure_future(requester.send({"type": "validate", "sleep": 30}))
    await wait_for(lambda: requester.stats().in_flight == 1)
    return slow


async def test_work_past_the_grace_is_cancelled_and_the_process_exits_0_in_time(
    tmp_path: Path, disc_port: int, disc: DiscoveryFactory
) -> None:
    write_service(tmp_path, disc_port)
    async with (
        running(tmp_path, "svc:factory", "--grace", "0.5", name="slow") as proc,
        Requester("t", discovery=disc(), timeout=20_000 * MS) as requester,
    ):
        slow = await held_by(requester, "slow")
        took = await stop_and_time(proc)
        assert took <= 0.5 + 1000 * MS, took
        with pytest.raises(Exception, match=r"(?i)cancel"):
            await slow


async def test_a_second_signal_exits_at_once(
    tmp_path: Path, disc_port: int, disc: DiscoveryFactory
) -> None:
    write_service(tmp_path, disc_port)
    async with (
        running(tmp_path, "svc:responder", "--grace", "30", name="slow") as proc,
        Requester("t", discovery=disc(), timeout=20_000 * MS) as requester,
    ):
        slow = await held_by(requester, "slow")
        proc.send_signal(signal.SIGINT)
        await asyncio.sleep(0.3)
        assert proc.returncode is None  # draining: 30 s of grace
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        await finish(proc, 5_000 * MS)
        assert time.monotonic() - began < 1000 * MS
        assert proc.returncode == 128 + signal.SIGINT
        slow.cancel()


async def test_an_async_generator_target_stops_its_front_on_the_first_signal(
    tmp_path: Path, disc_port: int, disc: DiscoveryFactory
) -> None:
    write_service(tmp_path, disc_port)
    async with running(tmp_path, "svc:front", name="front") as proc:
        async with Requester("t", discovery=disc(), timeout=20_000 * MS) as requester:
            await wait_for(lambda: requester.serves("only:front"), 10_000 * MS)
            assert await requester.send({"type": "only:front"}) == "front"
            # uvloop runs the loop when it is installed (coterie[speed]).
            expected = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio.unix_events"
            assert await requester.send({"type": "loop"}) == expected
        proc.send_signal(signal.SIGTERM)
        await finish(proc)
    assert proc.returncode == 0
    assert (tmp_path / "svc.log").read_text() == "started\non_stop\n"


# -- workers --------------------------------------------------------------------------


async def test_workers_each_serve_and_drain_and_the_parent_reports_one_that_dies(
    tmp_path: Path, disc_port: int, disc: DiscoveryFactory
) -> None:
    write_service(tmp_path, disc_port)
    port = free_port()
    async with Requester("t", discovery=disc(), timeout=20_000 * MS) as requester:
        pids: set[int] = set()
        async with running(
            tmp_path, "svc:responder", "--workers", "2", "--health-port", str(port), name="w"
        ) as proc:
            await ready_on(port, proc)
            await wait_for(lambda: len(requester.peers) == 2, 10_000 * MS)
            for _ in range(20):
                pids.add((await requester.send({"type": "validate"}))["pid"])
            assert len(pids) == 2 and proc.pid not in pids
            slow = asyncio.ensure_future(requester.send({"type": "validate", "sleep": 0.5}))
            await wait_for(lambda: requester.stats().in_flight == 1)
            proc.send_signal(signal.SIGTERM)
            assert (await slow)["pid"] in pids  # drained, not dropped
            await finish(proc)
            assert proc.returncode == 0
            for pid in pids:
                with pytest.raises(ProcessLookupError):
                    os.kill(pid, 0)
        async with running(tmp_path, "svc:responder", "--workers", "2", name="w") as proc:
            await wait_for(lambda: len(requester.peers) == 2, 10_000 * MS)
            victim = (await requester.send({"type": "validate"}))["pid"]
            os.kill(victim, signal.SIGKILL)
            err = await finish(proc)
            assert proc.returncode == 1
            assert f"(pid {victim}) exited with code -9: stopping the others" in err, err
