"""``coterie call``: send one request from the shell and print the answer as JSON.

Design: a :class:`coterie.Requester` with the command's pairing and
discovery options sends ``{"type": TYPE, **JSON}`` and waits as any API
caller waits: discovery, the request timeout, failover. What comes back
decides the output and the exit code:

- the answer: one JSON line on stdout, exit 0;
- the responder's error (:class:`coterie.RemoteError`): one line on stderr,
  exit 1;
- no answer in time (:class:`coterie.RequestTimeoutError`): its message on
  stderr, which says why as the API says it ("no responder serves
  'valdiate'", a namespace, key or TLS mismatch), exit 124 as ``timeout(1)``;
- a JSON argument that is not a JSON object: a usage error, exit 2, before
  anything joins the mesh.

``--all`` asks every instance that serves TYPE. The requester listens for one
and a half hello intervals, at most half the timeout (every live node hellos
once per interval), and pins a requester to each instance it hears (it pairs
with that node only, so the router's balancing cannot send two copies to one
instance); when the window closes, each pinned requester sends one copy.
It prints one JSON line per instance, sorted by name and address:
``{"name", "id", "address", "answer"}``, with ``"error"`` (the error as the
responder sent it) or ``"timeout"`` (the message) in place of ``"answer"``.
The exit code is 124 when any instance timed out, else 1 when any failed,
else 0. With no instance heard before the deadline it fails as a single
call does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from typing import Any

from coterie.cli._common import (
    Subparsers,
    add_component_arguments,
    component_options,
    parse_json,
    write_json_line,
)
from coterie.components.requester import Requester
from coterie.errors import RemoteError, RequestTimeoutError
from coterie.protocol.nodes import Node
from coterie.protocol.pairing import serves
from coterie.settings import Settings

__all__ = [
    "DEFAULT_TIMEOUT",
    "EXIT_REMOTE_ERROR",
    "EXIT_TIMEOUT",
    "add_request_arguments",
    "build_request",
    "call_timeout",
    "quiet_waiting",
    "register",
    "run",
]

#: Seconds a call may take when neither ``--timeout`` nor ``COTE_REQUEST_TIMEOUT`` is set.
DEFAULT_TIMEOUT = 10.0
#: Exit code when the responder's handler failed.
EXIT_REMOTE_ERROR = 1
#: Exit code when no answer came in time (as ``timeout(1)``).
EXIT_TIMEOUT = 124


def register(subparsers: Subparsers) -> None:
    """Add the ``call`` subcommand."""
    parser = subparsers.add_parser(
        "call",
        help="send one request and print the answer as JSON",
        description=(
            'Send {"type": TYPE, ...JSON} to a responder and print its answer as one JSON '
            "line. Exit 0 with an answer, 1 when the responder's handler failed (its error "
            "on stderr), 124 when nothing answered in time (why, on stderr), 2 for bad "
            "arguments."
        ),
    )
    add_request_arguments(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"give up after this long, waiting for a responder included "
        f"(default: COTE_REQUEST_TIMEOUT, else {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="ask every instance that serves TYPE; one JSON line per instance",
    )
    add_component_arguments(parser, "requester", "coterie call")
    parser.set_defaults(run=run, _parser=parser)


def add_request_arguments(parser: argparse.ArgumentParser) -> None:
    """Add TYPE and the optional JSON (``args.type``, ``args.body``) for :func:`build_request`."""
    parser.add_argument("type", metavar="TYPE", help="the request type")
    parser.add_argument(
        "body",
        metavar="JSON",
        nargs="?",
        default=None,
        help="the request's other fields as a JSON object; - reads it from stdin (default {})",
    )


def build_request(parser: argparse.ArgumentParser, request_type: str, text: str | None) -> Any:
    """``{"type": request_type, **JSON}``, or a usage error naming what is wrong."""
    example = """'{"cardno": "4111"}'"""
    fields = {} if text is None else parse_json(parser, text, "JSON", example)
    if not isinstance(fields, dict):
        parser.error(
            f"the request must be a JSON object of fields, got {type(fields).__name__} "
            f"{fields!r}: write it as '{{\"field\": ...}}'"
        )
    if "type" in fields and fields["type"] != request_type:
        parser.error(f"the JSON's type {fields['type']!r} differs from TYPE {request_type!r}")
    return {"type": request_type, **fields}


def call_timeout(parser: argparse.ArgumentParser, given: float | None) -> float:
    """``--timeout``, else ``COTE_REQUEST_TIMEOUT``, else :data:`DEFAULT_TIMEOUT`."""
    if given is not None:
        if not given > 0:
            parser.error(f"--timeout must be positive seconds, got {given:g}")
        return given
    return Settings.from_environ().request_timeout or DEFAULT_TIMEOUT


def quiet_waiting(args: argparse.Namespace) -> None:
    """Keep the requester's "requests wait: why" warning out of stderr (unless ``-v``).

    The timeout's message says the same, once, as the command's own line.
    """
    if not args.verbose:
        logging.getLogger("coterie.requester").setLevel(logging.ERROR)


def run(args: argparse.Namespace) -> int:
    """Send the request; print the answer, or say why not. Returns the exit code."""
    parser: argparse.ArgumentParser = args._parser
    request = build_request(parser, args.type, args.body)
    timeout = call_timeout(parser, args.timeout)
    options = component_options(args)
    quiet_waiting(args)
    if args.all:
        return asyncio.run(_call_all(request, timeout, options))
    return asyncio.run(_call(request, timeout, options))


async def _call(request: dict[str, Any], timeout: float, options: dict[str, Any]) -> int:
    async with Requester(timeout=timeout, requests=[request["type"]], **options) as r:
        try:
            answer = await r.send(request)
        except RemoteError as exc:
            _say(f"the responder failed: {exc}")
            return EXIT_REMOTE_ERROR
        except RequestTimeoutError as exc:
            _say(str(exc))
            return EXIT_TIMEOUT
    write_json_line(answer)
    return 0


class _PinnedRequester(Requester):
    """A requester that pairs with one node only: ``--all`` sends one copy to each."""

    def __init__(self, node_id: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._node_id = node_id

    def _pairs(self, node: Node) -> bool:
        return node.id == self._node_id and super()._pairs(node)


async def _call_all(request: dict[str, Any], timeout: float, options: dict[str, Any]) -> int:
    request_type = request["type"]
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeout
    pinned: dict[str, tuple[Node, _PinnedRequester]] = {}
    async with contextlib.AsyncExitStack() as stack:
        r = Requester(timeout=timeout, requests=[request_type], **options)
        await stack.enter_async_context(r)
        heard = asyncio.Event()
        r.on_node(lambda event, node: heard.set() if event == "added" else None)
        settings = r.discovery_settings
        interval = (settings.hello_interval if settings is not None else 2000) / 1000
        # Every live instance hellos once per interval: listen that long and a half
        # (at most half the time), pinning a requester to each as it is heard, so
        # each has its own instance's next hello by the time the copies go out.
        window_end = started + min(1.5 * interval, timeout / 2)
        while True:
            for node in r.peers:
                if node.id not in pinned and serves(node.advertisement, request_type):
                    one = _PinnedRequester(
                        node.id, timeout=timeout, requests=[request_type], **options
                    )
                    pinned[node.id] = (node, await stack.enter_async_context(one))
            until = window_end if pinned else deadline
            if loop.time() >= until:
                break
            heard.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(until - loop.time()):
                    await heard.wait()
        if not pinned:
            # The deadline passed with no instance: the API's own words for why.
            try:
                answer = await r.send(request, timeout=1e-3)
            except RequestTimeoutError as exc:
                _say(str(exc))
                return EXIT_TIMEOUT
            # One came in at the very last moment and answered: that is every one heard.
            write_json_line({"name": None, "id": None, "address": None, "answer": answer})
            return 0
        host_names = settings is not None and settings.use_host_names
        remaining = max(deadline - loop.time(), 1e-3)
        results = await asyncio.gather(
            *(_ask(n, p, host_names, request, remaining) for n, p in pinned.values())
        )
    results.sort(key=lambda line: (str(line["name"]), str(line["address"])))
    for line in results:
        write_json_line(line)
    if any("timeout" in line for line in results):
        return EXIT_TIMEOUT
    return EXIT_REMOTE_ERROR if any("error" in line for line in results) else 0


async def _ask(
    node: Node,
    pinned: Requester,
    use_host_names: bool,
    request: dict[str, Any],
    timeout: float,
) -> dict[str, Any]:
    """One instance's answer, error or timeout, as its ``--all`` output line."""
    line: dict[str, Any] = {
        "name": node.advertisement.get("name"),
        "id": node.id,
        "address": f"{node.connect_host(use_host_names)}:{node.port}",
    }
    try:
        line["answer"] = await pinned.send(request, timeout=timeout)
    except RemoteError as exc:
        line["error"] = exc.payload
    except RequestTimeoutError as exc:
        line["timeout"] = str(exc)
    return line


def _say(message: str) -> None:
    sys.stderr.write(f"coterie call: {message}\n")
    sys.stderr.flush()
