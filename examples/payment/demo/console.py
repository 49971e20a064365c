"""What the demo prints: steps, answers, processes and help, as rich markup.

Design: one :class:`Screen` wraps a rich console; the fixed texts of the demo
(banner, process table, curl help) live here, so the process and HTTP code
stays free of markup. Anything that comes from outside (answers, log tails)
goes through :func:`escape` so brackets are not read as markup.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import TYPE_CHECKING

from coterie.gateways.hostscope import HOST_SCOPE
from examples.payment.demo.processes import EXAMPLES, Child, Processes
from examples.payment.demo.tour import GOOD_CARD, Answer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["INSTALL_NGINX", "Screen", "escape"]

INSTALL_NGINX = (
    "install nginx to see the nginx way too: `sudo apt-get install nginx-light` "
    "(Debian/Ubuntu), `brew install nginx` (macOS), or `make setup` in the repository"
)


def escape(text: str) -> str:
    """``text`` with rich markup brackets escaped."""
    return text.replace("[", "\\[")


class Screen:
    """The demo's console output.

    Args:
        console: Where to print.
    """

    def __init__(self, console: Console) -> None:
        self.console = console

    def say(self, text: str = "") -> None:
        """Print one line of rich markup."""
        self.console.print(text)

    def header(self, text: str) -> None:
        """A step title."""
        self.console.print()
        self.console.rule(f"[bold]{text}[/bold]", align="left")

    def error(self, text: str) -> None:
        """A problem, in red."""
        self.console.print(f"[red]{escape(text)}[/red]")

    @staticmethod
    def answer(answer: Answer) -> str:
        """``200 '4111... validated' (by v1)``, coloured by status."""
        by = f" [dim](by {answer.by})[/dim]" if answer.by else ""
        colour = "green" if answer.status == 200 else "yellow" if answer.status == 422 else "red"
        return f"[{colour}]{answer.status}[/{colour}] {escape(repr(answer.text))}{by}"

    def banner(self, procs: Processes) -> None:
        """What the demo runs, and where its logs go."""
        say = self.say
        say("[bold]coterie demo[/bold]: the seed's payment example, both ways, on this host")
        scope = os.environ.get("COTE_BROADCAST_ADDRESS") or HOST_SCOPE
        say(f"  discovery: broadcast {scope}, hello every {procs.args.hello_interval} ms")
        say(
            f"  mesh:      environment {escape(procs.environment)} (COTE_ENV); "
            "another demo on this host keeps its own"
        )
        say(f"  logs:      {procs.logs}")
        if procs.nginx_binary is None:
            why = "--no-nginx" if procs.args.no_nginx else "nginx was not found"
            say(f"  [yellow]nginx half skipped ({why})[/yellow]; {INSTALL_NGINX}")
        else:
            say(f"  nginx:     {procs.nginx_binary}")

    def processes(self, procs: Processes) -> None:
        """One line per running process."""
        self.header("Running")
        for child in procs.children:
            pid = child.process.pid if child.process else "-"
            self.say(f"  {child.name:<18} pid {pid:<8} {escape(_describe(child, procs))}")

    def curl_help(self, procs: Processes) -> None:
        """How to try the demo by hand."""
        say = self.say
        self.header("Up for curl; Ctrl-C to stop")
        for label, port in procs.payment_ports():
            way = "the mesh way" if label.strip() == "mesh" else "the nginx way"
            say(f"  curl 127.0.0.1:{port}/pay/{GOOD_CARD}     # {way}")
        if procs.nginx_binary is not None:
            say(f"  curl 127.0.0.1:{procs.args.nginx_port}/validate/{GOOD_CARD}  # nginx itself")
        monitor = [_here(sys.executable), "-m", "coterie", "monitor", "--web"]
        monitor += ["--environment", procs.environment, *procs.discovery_args()]
        say(f"  {escape(shlex.join(monitor))}   # watch this demo's mesh and traffic")
        validator = [_here(sys.executable), _here(str(EXAMPLES / "validation_service.py"))]
        environment = f"COTE_ENV={shlex.quote(procs.environment)}"
        command = f"{environment} {shlex.join([*validator, *procs.discovery_args()])}"
        say(f"  {escape(command)}   # one more mesh validator, in a new shell too")


def _here(path: str) -> str:
    """``path`` relative to the current directory when it lies below it, else as is.

    The hint's python is this very interpreter (the venv's), so the command
    works in a new shell where ``python`` may lack coterie.
    """
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith(os.pardir) else relative


def _describe(child: Child, procs: Processes) -> str:
    a = procs.args
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
