"""The demo's tour: the seed's story, told over real HTTP.

Design: the tour is a client of the two payment services, as a user with
curl would be; it never looks inside them. :func:`pay` is one ``GET
/pay/<cardno>``; :func:`wait_ready` waits until every payment port has
answered through every validator; :func:`tour` tells the story in five steps:

1. requests spread over the validators;
2. bad card numbers get a clear answer, never a 500;
3. every validator is stopped: mesh payments wait while nginx answers 502;
4. a validator comes back and the waiting payments complete;
5. no mesh payment is lost.

Processes are started and stopped through
:class:`~examples.payment.demo.processes.Processes`; all output goes through
:class:`~examples.payment.demo.console.Screen`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from examples.payment.demo.console import Screen
    from examples.payment.demo.processes import Processes

__all__ = ["BAD_CARDS", "GOOD_CARD", "SEED_CARD", "Answer", "pay", "tour", "wait_ready"]

#: A valid test card (Visa's), and the seed's card number.
GOOD_CARD = "4111111111111111"
SEED_CARD = "123456"
#: ``(what, card number)`` of the refused cards step 2 shows.
BAD_CARDS = (
    ("seed's number", SEED_CARD),
    ("Luhn error", "4111111111111112"),
    ("non-digits", "4111-abcd-1111"),
    ("empty", ""),
    ("very long", "4" * 40),
)


@dataclass
class Answer:
    """One payment's HTTP answer."""

    status: int
    text: str
    by: str
    seconds: float


async def pay(
    session: aiohttp.ClientSession, port: int, cardno: str, timeout: float = 30.0
) -> Answer:
    """``GET /pay/<cardno>`` on ``port``."""
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


async def wait_ready(
    session: aiohttp.ClientSession, procs: Processes, timeout: float = 20.0
) -> None:
    """Wait until each payment port answers through every validator.

    Raises:
        RuntimeError: A child died or the demo did not come up in time.
    """
    wanted = procs.args.validators
    deadline = time.monotonic() + timeout
    seen: dict[int, set[str]] = {port: set() for _, port in procs.payment_ports()}
    while any(len(s) < wanted for s in seen.values()):
        procs.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the demo did not come up within {timeout:g} s; logs are in {procs.logs}"
            )
        for port, validators in seen.items():
            if len(validators) >= wanted:
                continue
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                answer = await pay(session, port, GOOD_CARD, timeout=1.0)
                if answer.status == 200:
                    validators.add(answer.by)
        await asyncio.sleep(0.05)


async def _until_validated(
    session: aiohttp.ClientSession, port: int, timeout: float = 10.0
) -> Answer:
    deadline = time.monotonic() + timeout
    while True:
        answer = await pay(session, port, GOOD_CARD)
        if answer.status == 200 or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.1)


async def tour(session: aiohttp.ClientSession, procs: Processes, screen: Screen) -> None:
    """Tell the seed's story over real HTTP, then restore the full set of validators."""
    say, show = screen.say, screen.answer
    args = procs.args
    nginx = procs.nginx_binary is not None

    screen.header("1. Requests spread over the validators")
    for label, port in procs.payment_ports():
        answers = [await pay(session, port, GOOD_CARD) for _ in range(6)]
        for answer in answers:
            say(f"  {label} :{port}  GET /pay/{GOOD_CARD}  ->  {show(answer)}")
        spread = Counter(a.by for a in answers)
        say(
            f"  [bold]{label.strip()}[/bold]: "
            + ", ".join(f"{by} x{n}" for by, n in sorted(spread.items()))
        )

    screen.header("2. Bad card numbers get a clear answer, never a 500")
    for what, card in BAD_CARDS:
        for label, port in procs.payment_ports():
            answer = await pay(session, port, card)
            shown = card if len(card) <= 20 else card[:16] + "..."
            say(f"  {label} :{port}  {what:<13} /pay/{shown:<20} ->  {show(answer)}")

    screen.header("3. Every validator stopped")
    validators = await procs.stop_validators()
    say(f"  stopped {len(validators)} validators: " + ", ".join(c.name for c in validators))
    say("  [dim]the mesh requester and the nginx upstream both saw them go[/dim]")
    mesh_port = args.mesh_port
    waiting = [
        asyncio.ensure_future(pay(session, mesh_port, GOOD_CARD, timeout=60)) for _ in range(3)
    ]
    say(f"  mesh  :{mesh_port}  sent 3 payments: they wait for a validator...")
    nginx_answer: Answer | None = None
    if nginx:
        await asyncio.sleep(0.3)  # let the placeholder upstream be loaded
        port = args.nginx_payment_port
        nginx_answer = await pay(session, port, GOOD_CARD)
        say(f"  nginx :{port}  GET /pay/{GOOD_CARD}  ->  {show(nginx_answer)}")
        say("  [dim]nginx has no upstream left: 502 Bad Gateway, as in the seed[/dim]")
    await asyncio.sleep(args.pause)
    pending = sum(1 for t in waiting if not t.done())
    say(f"  after {args.pause:g} s: {pending} mesh payment(s) still waiting, none failed")

    screen.header("4. A validator comes back")
    restarted = time.monotonic()
    back = [await procs.start_mesh_validator()]
    if nginx:
        back.append(await procs.start_http_validator())
    say("  started " + " and ".join(c.name for c in back))
    answers = await asyncio.gather(*waiting)
    for answer in answers:
        say(
            f"  mesh  :{mesh_port}  waiting payment  ->  {show(answer)} "
            f"[dim]after {answer.seconds:.1f} s[/dim]"
        )
    say(f"  [dim]completed {time.monotonic() - restarted:.1f} s after the restart[/dim]")
    if nginx:
        port = args.nginx_payment_port
        answer = await _until_validated(session, port)
        say(f"  nginx :{port}  GET /pay/{GOOD_CARD}  ->  {show(answer)}")

    screen.header("5. No payment lost")
    done = sum(1 for a in answers if a.status == 200)
    say(f"  mesh:  {done} of {len(answers)} payments sent while no validator ran completed")
    if nginx_answer is not None:
        say(
            "  nginx: the payment sent while no validator ran failed "
            f"({nginx_answer.status}, nginx answered 502): the client has to retry"
        )
    for _ in range(args.validators - 1):  # back to the full set for curl
        back.append(await procs.start_mesh_validator())
        if nginx:
            back.append(await procs.start_http_validator())
    await wait_ready(session, procs)  # every one of them serving before curl
    say(f"  validators serving now: {', '.join(sorted(c.name for c in back))}")
