"""``coterie demo``: the seed's payment example, both ways, in one command.

Design: the demo is an orchestra of real processes, all in host scope
(discovery on 127.255.255.255, HTTP on 127.0.0.1):

- the mesh way: ``examples/payment/payment_service.py`` on port 3003 and
  mesh validators (``validation_service.py``), found by coterie discovery;
- the nginx way: ``coterie nginx`` (a real nginx whose upstream follows
  discovery), HTTP validators under ``coterie announce``, and the payment
  service's nginx variant on port 3000.

Each child gets its own session (Ctrl-C reaches only the demo, which then
stops the children in order) and its own log file. The tour then tells the
seed's story over real HTTP: requests spread over validators; bad card
numbers get a clear answer; with every validator stopped, mesh payments wait
and complete when one returns while nginx answers 502; no mesh payment is
lost. Without nginx the demo runs the mesh half and says how to get the
other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coterie.cli._common import Subparsers, run_until_signal
from coterie.gateways.nginx import find_nginx
from coterie.gateways.options import HOST_SCOPE
from coterie.gateways.process import stop_process

if TYPE_CHECKING:
    import aiohttp
    from rich.console import Console

__all__ = ["find_examples", "register", "run"]

#: A valid test card (Visa's), and the seed's card number.
GOOD_CARD = "4111111111111111"
SEED_CARD = "123456"
_BAD_CARDS = (
    ("seed's number", SEED_CARD),
    ("Luhn error", "4111111111111112"),
    ("non-digits", "4111-abcd-1111"),
    ("empty", ""),
    ("very long", "4" * 40),
)
_SERVICE = "validation-service"
_INSTALL_NGINX = (
    "install nginx to see the nginx way too: `sudo apt-get install nginx-light` "
    "(Debian/Ubuntu), `brew install nginx` (macOS), or `make setup` in the repository"
)


def find_examples(explicit: str | None = None) -> Path | None:
    """The ``examples/payment`` directory: explicit, next to the sources, or in cwd."""
    candidates = [Path(explicit)] if explicit else []
    here = Path(__file__).resolve()
    candidates += [here.parents[3] / "examples" / "payment", Path.cwd() / "examples" / "payment"]
    for candidate in candidates:
        if (candidate / "payment_service.py").is_file() and (
            candidate / "validation_service.py"
        ).is_file():
            return candidate
    return None


def register(subparsers: Subparsers) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="run the payment example the mesh way and the nginx way, with a short tour",
        description=(
            "Start the payment example twice on this host: over the coterie mesh "
            "(port 3003) and behind nginx with discovery-driven upstreams (port 3000), "
            "each with several validators; tour the difference, then stay up for curl "
            "until Ctrl-C."
        ),
    )
    parser.add_argument("--mesh-port", type=int, default=3003, help="mesh payment port (3003)")
    parser.add_argument(
        "--nginx-payment-port", type=int, default=3000, help="nginx payment port (3000)"
    )
    parser.add_argument(
        "--nginx-port", type=int, default=8080, help="port nginx listens on for validation (8080)"
    )
    parser.add_argument(
        "--validators", type=int, default=2, help="validators of each kind (default 2)"
    )
    parser.add_argument("--no-nginx", action="store_true", help="run the mesh half only")
    parser.add_argument("--no-tour", action="store_true", help="start everything, skip the tour")
    parser.add_argument(
        "--no-wait", action="store_true", help="exit after the tour instead of waiting for Ctrl-C"
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long validators stay stopped in the tour (default 2)",
    )
    parser.add_argument(
        "--discovery-port",
        type=int,
        default=None,
        metavar="PORT",
        help="discovery UDP port for the demo's processes (default cote's 12345)",
    )
    parser.add_argument(
        "--hello-interval",
        type=int,
        default=250,
        metavar="MS",
        help="milliseconds between hellos (default 250, quick for a demo)",
    )
    parser.add_argument("--examples", default=None, help="the examples/payment directory")
    parser.add_argument("--nginx", default=None, help="nginx binary (default: found)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the log directory")
    parser.set_defaults(run=run, _parser=parser)


def run(args: argparse.Namespace) -> int:
    """Run ``coterie demo``."""
    parser: argparse.ArgumentParser = args._parser
    if args.validators < 1:
        parser.error("--validators must be at least 1")
    if args.pause < 0:
        parser.error("--pause must not be negative")
    try:
        import aiohttp  # noqa: F401
        from rich.console import Console
    except ImportError as exc:
        sys.stderr.write(
            f"coterie demo needs aiohttp and rich ({exc}); "
            "install them with: pip install 'coterie[http,cli]'\n"
        )
        return 1
    examples = find_examples(args.examples)
    if examples is None:
        sys.stderr.write(
            "coterie demo runs examples/payment/*.py from a clone of the repository; run it "
            "from the clone's top directory or pass --examples DIR\n"
        )
        return 1
    demo = Demo(args, examples, Console(highlight=False, soft_wrap=True))
    return run_until_signal(demo.main)


# -- processes ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@dataclass
class Child:
    """One process of the demo, with its own log file."""

    name: str
    argv: list[str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None

    async def start(self, env: dict[str, str]) -> None:
        """Start it in its own session, output to its log file."""
        with self.log_path.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        """Whether it runs."""
        return self.process is not None and self.process.returncode is None

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL to its process group after ``timeout``."""
        await stop_process(self.process, timeout=timeout, group=True)

    def tail(self, lines: int = 5) -> str:
        """The end of its log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Answer:
    """One payment's HTTP answer."""

    status: int
    text: str
    by: str
    seconds: float

    def show(self) -> str:
        """``200 "4111... validated" (by v1)`` for the console."""
        by = f" [dim](by {self.by})[/dim]" if self.by else ""
        colour = "green" if self.status == 200 else "yellow" if self.status == 422 else "red"
        return f"[{colour}]{self.status}[/{colour}] {_escape(repr(self.text))}{by}"


def _escape(text: str) -> str:
    return text.replace("[", "\\[")


@dataclass
class Demo:
    """The demo's processes and tour."""

    args: argparse.Namespace
    examples: Path
    console: Console
    children: list[Child] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="coterie-demo-")))
    nginx_binary: str | None = None
    _counter: Counter[str] = field(default_factory=Counter)

    # -- setup ---------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        if not any(env.get(v) for v in ("COTE_BROADCAST_ADDRESS", "COTE_MULTICAST_ADDRESS")):
            env["COTE_BROADCAST_ADDRESS"] = HOST_SCOPE
        return env

    def _discovery_args(self) -> list[str]:
        argv = ["--hello-interval", str(self.args.hello_interval)]
        if self.args.discovery_port is not None:
            argv += ["--discovery-port", str(self.args.discovery_port)]
        return argv

    def _coterie(self) -> list[str]:
        return [sys.executable, "-m", "coterie"]

    async def _spawn(self, kind: str, argv: list[str]) -> Child:
        self._counter[kind] += 1
        name = f"{kind}-{self._counter[kind]}"
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        child = Child(name, argv, self.workdir / "logs" / f"{name}.log")
        await child.start(self._env())
        self.children.append(child)
        return child

    async def start_mesh_validator(self) -> Child:
        """One mesh validator (``validation_service.py``)."""
        name = f"mesh-validator-{self._counter['mesh-validator'] + 1}"
        return await self._spawn(
            "mesh-validator",
            [
                sys.executable,
                str(self.examples / "validation_service.py"),
                "--id",
                name,
                *self._discovery_args(),
            ],
        )

    async def start_http_validator(self) -> Child:
        """One HTTP validator under ``coterie announce``."""
        name = f"http-validator-{self._counter['http-validator'] + 1}"
        port = _free_port()
        return await self._spawn(
            "http-validator",
            [
                *self._coterie(),
                "announce",
                "--name",
                _SERVICE,
                "--port",
                str(port),
                "--check-interval",
                "0.2",
                *self._discovery_args(),
                "--",
                sys.executable,
                str(self.examples / "validation_service.py"),
                "--http",
                str(port),
                "--id",
                name,
            ],
        )

    async def start_all(self) -> None:
        """Start every process of the demo."""
        a = self.args
        await self._spawn(
            "payment-mesh",
            [
                sys.executable,
                str(self.examples / "payment_service.py"),
                "--via",
                "mesh",
                "--port",
                str(a.mesh_port),
                *self._discovery_args(),
            ],
        )
        for _ in range(a.validators):
            await self.start_mesh_validator()
        if self.nginx_binary is None:
            return
        nginx_argv = [
            *self._coterie(),
            "nginx",
            "--service",
            _SERVICE,
            "--listen",
            f"127.0.0.1:{a.nginx_port}",
            "--prefix",
            str(self.workdir / "nginx"),
            "--nginx",
            self.nginx_binary,
            "--proxy-timeout",
            "5",
            *self._discovery_args(),
        ]
        await self._spawn("nginx", nginx_argv)
        await self._spawn(
            "payment-nginx",
            [
                sys.executable,
                str(self.examples / "payment_service.py"),
                "--via",
                "nginx",
                "--port",
                str(a.nginx_payment_port),
                "--validation-url",
                f"http://127.0.0.1:{a.nginx_port}",
                "--timeout",
                "10",
            ],
        )
        for _ in range(a.validators):
            await self.start_http_validator()

    async def stop_all(self) -> None:
        """Stop every process: payments first, then validators, then nginx."""
        order = ("payment", "mesh-validator", "http-validator", "nginx")
        for prefix in order:
            batch = [c for c in self.children if c.name.startswith(prefix)]
            await asyncio.gather(*(c.stop() for c in batch))

    # -- HTTP ----------------------------------------------------------------------

    async def pay(
        self, session: aiohttp.ClientSession, port: int, cardno: str, timeout: float = 30.0
    ) -> Answer:
        """``GET /pay/<cardno>`` on ``port``."""
        import aiohttp

        started = time.monotonic()
        url = f"http://127.0.0.1:{port}/pay/{cardno}"
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            body: Any = await response.json(content_type=None)
            return Answer(
                response.status,
                str(body),
                response.headers.get("X-Validated-By", ""),
                time.monotonic() - started,
            )

    async def wait_ready(self, session: aiohttp.ClientSession, timeout: float = 20.0) -> None:
        """Wait until each payment port answers through every validator.

        Raises:
            RuntimeError: A child died or the demo did not come up in time.
        """
        import aiohttp

        ports = [self.args.mesh_port]
        if self.nginx_binary is not None:
            ports.append(self.args.nginx_payment_port)
        deadline = time.monotonic() + timeout
        seen: dict[int, set[str]] = {port: set() for port in ports}
        while any(len(s) < self.args.validators for s in seen.values()):
            for child in self.children:
                if not child.alive:
                    raise RuntimeError(f"{child.name} exited:\n{child.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "the demo did not come up within "
                    f"{timeout:g} s; logs are in {self.workdir / 'logs'}"
                )
            for port in ports:
                if len(seen[port]) >= self.args.validators:
                    continue
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    answer = await self.pay(session, port, GOOD_CARD, timeout=1.0)
                    if answer.status == 200:
                        seen[port].add(answer.by)
            await asyncio.sleep(0.05)

    # -- the tour ------------------------------------------------------------------

    def _ports(self) -> list[tuple[str, int]]:
        ports = [("mesh ", self.args.mesh_port)]
        if self.nginx_binary is not None:
            ports.append(("nginx", self.args.nginx_payment_port))
        return ports

    def header(self, text: str) -> None:
        """A step title."""
        self.console.print()
        self.console.rule(f"[bold]{text}[/bold]", align="left")

    async def tour(self, session: aiohttp.ClientSession) -> None:
        """Tell the seed's story over real HTTP."""
        say = self.console.print

        self.header("1. Requests spread over the validators")
        for label, port in self._ports():
            answers = [await self.pay(session, port, GOOD_CARD) for _ in range(6)]
            for answer in answers:
                say(f"  {label} :{port}  GET /pay/{GOOD_CARD}  ->  {answer.show()}")
            spread = Counter(a.by for a in answers)
            say(
                f"  [bold]{label.strip()}[/bold]: "
                + ", ".join(f"{by} x{n}" for by, n in sorted(spread.items()))
            )

        self.header("2. Bad card numbers get a clear answer, never a 500")
        for what, card in _BAD_CARDS:
            for label, port in self._ports():
                answer = await self.pay(session, port, card)
                shown = card if len(card) <= 20 else card[:16] + "..."
                say(f"  {label} :{port}  {what:<13} /pay/{shown:<20} ->  {answer.show()}")

        self.header("3. Every validator stopped")
        validators = [c for c in self.children if "validator" in c.name and c.alive]
        await asyncio.gather(*(c.stop() for c in validators))
        for child in validators:  # stopped on purpose: no longer watched
            self.children.remove(child)
        say(f"  stopped {len(validators)} validators: " + ", ".join(c.name for c in validators))
        say("  [dim]the mesh requester and the nginx upstream both saw them go[/dim]")
        mesh_port = self.args.mesh_port
        waiting = [
            asyncio.ensure_future(self.pay(session, mesh_port, GOOD_CARD, timeout=60))
            for _ in range(3)
        ]
        say(f"  mesh  :{mesh_port}  sent 3 payments: they wait for a validator...")
        nginx_answer: Answer | None = None
        if self.nginx_binary is not None:
            await asyncio.sleep(0.3)  # let the placeholder upstream be loaded
            port = self.args.nginx_payment_port
            nginx_answer = await self.pay(session, port, GOOD_CARD)
            say(f"  nginx :{port}  GET /pay/{GOOD_CARD}  ->  {nginx_answer.show()}")
            say("  [dim]nginx has no upstream left: 502 Bad Gateway, as in the seed[/dim]")
        await asyncio.sleep(self.args.pause)
        pending = sum(1 for t in waiting if not t.done())
        say(f"  after {self.args.pause:g} s: {pending} mesh payment(s) still waiting, none failed")

        self.header("4. A validator comes back")
        restarted = time.monotonic()
        await self.start_mesh_validator()
        if self.nginx_binary is not None:
            await self.start_http_validator()
        say("  started one mesh validator and one HTTP validator")
        answers = await asyncio.gather(*waiting)
        for answer in answers:
            say(
                f"  mesh  :{mesh_port}  waiting payment  ->  {answer.show()} "
                f"[dim]after {answer.seconds:.1f} s[/dim]"
            )
        say(f"  [dim]completed {time.monotonic() - restarted:.1f} s after the restart[/dim]")
        if self.nginx_binary is not None:
            port = self.args.nginx_payment_port
            answer = await self._until_validated(session, port)
            say(f"  nginx :{port}  GET /pay/{GOOD_CARD}  ->  {answer.show()}")

        self.header("5. No payment lost")
        done = sum(1 for a in answers if a.status == 200)
        say(f"  mesh:  {done} of {len(answers)} payments sent while no validator ran completed")
        if nginx_answer is not None:
            say(
                "  nginx: the payment sent while no validator ran failed "
                f"({nginx_answer.status}, nginx answered 502): the client has to retry"
            )
        for _ in range(self.args.validators - 1):  # back to the full set for curl
            await self.start_mesh_validator()
            if self.nginx_binary is not None:
                await self.start_http_validator()
        await self.wait_ready(session)  # every one of them serving before curl

    async def _until_validated(
        self, session: aiohttp.ClientSession, port: int, timeout: float = 10.0
    ) -> Answer:
        deadline = time.monotonic() + timeout
        while True:
            answer = await self.pay(session, port, GOOD_CARD)
            if answer.status == 200 or time.monotonic() > deadline:
                return answer
            await asyncio.sleep(0.1)

    # -- main ------------------------------------------------------------------------

    def _check_ports(self) -> list[str]:
        a = self.args
        wanted = [("--mesh-port", a.mesh_port)]
        if self.nginx_binary is not None:
            wanted += [
                ("--nginx-payment-port", a.nginx_payment_port),
                ("--nginx-port", a.nginx_port),
            ]
        return [
            f"port {port} is taken; free it or choose another with {flag}"
            for flag, port in wanted
            if _port_taken(port)
        ]

    def _banner(self) -> None:
        say = self.console.print
        say("[bold]coterie demo[/bold]: the seed's payment example, both ways, on this host")
        scope = os.environ.get("COTE_BROADCAST_ADDRESS") or HOST_SCOPE
        say(f"  discovery: broadcast {scope}, hello every {self.args.hello_interval} ms")
        say(f"  logs:      {self.workdir / 'logs'}")
        if self.nginx_binary is None:
            why = "--no-nginx" if self.args.no_nginx else "nginx was not found"
            say(f"  [yellow]nginx half skipped ({why})[/yellow]; {_INSTALL_NGINX}")
        else:
            say(f"  nginx:     {self.nginx_binary}")

    def _curl_help(self) -> None:
        say = self.console.print
        self.header("Up for curl; Ctrl-C to stop")
        for label, port in self._ports():
            way = "the mesh way" if label.strip() == "mesh" else "the nginx way"
            say(f"  curl 127.0.0.1:{port}/pay/{GOOD_CARD}     # {way}")
        if self.nginx_binary is not None:
            say(f"  curl 127.0.0.1:{self.args.nginx_port}/validate/{GOOD_CARD}  # nginx itself")
        say(f"  python {self.examples / 'validation_service.py'}   # one more mesh validator")

    async def main(self, stop: asyncio.Event) -> int:
        """Start, tour, wait for ``stop`` (unless ``--no-wait``), shut down."""
        import aiohttp

        if not self.args.no_nginx:
            self.nginx_binary = find_nginx(self.args.nginx)
        self._banner()
        problems = self._check_ports()
        if problems:
            for problem in problems:
                self.console.print(f"[red]{problem}[/red]")
            shutil.rmtree(self.workdir, ignore_errors=True)
            return 1
        code = 0
        try:
            async with aiohttp.ClientSession() as session:
                with self.console.status("starting services..."):
                    await self.start_all()
                    await self._race(stop, self.wait_ready(session))
                self._show_processes()
                if not self.args.no_tour and not stop.is_set():
                    await self._race(stop, self.tour(session))
                if not self.args.no_wait and not stop.is_set():
                    self._curl_help()
                    await stop.wait()
        except RuntimeError as exc:
            self.console.print(f"[red]{_escape(str(exc))}[/red]")
            code = 1
        finally:
            self.console.print()
            with self.console.status("stopping..."):
                await self.stop_all()
            self.console.print("stopped every process of the demo")
            if self.args.keep_logs or code:
                self.console.print(f"logs kept in {self.workdir / 'logs'}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)
        return code

    async def _race(self, stop: asyncio.Event, work: Any) -> None:
        task = asyncio.ensure_future(work)
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        task.result()

    def _show_processes(self) -> None:
        say = self.console.print
        self.header("Running")
        for child in self.children:
            pid = child.process.pid if child.process else "-"
            say(f"  {child.name:<18} pid {pid:<8} {_escape(self._describe(child))}")

    def _describe(self, child: Child) -> str:
        a = self.args
        if child.name == "payment-mesh-1":
            return f"http://127.0.0.1:{a.mesh_port}/pay/<cardno>, validation over the mesh"
        if child.name == "payment-nginx-1":
            return f"http://127.0.0.1:{a.nginx_payment_port}/pay/<cardno>, validation via nginx"
        if child.name.startswith("nginx"):
            return f"nginx on 127.0.0.1:{a.nginx_port}, upstream follows discovery"
        if child.name.startswith("http-validator"):
            port = child.argv[child.argv.index("--port") + 1]
            return f"GET /validate/<cardno> on port {port}, under coterie announce"
        return "validation responder on the mesh"
