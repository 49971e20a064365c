"""The payment example's services: validation and payment, on aiohttp and the mesh.

Design: aiohttp is asyncio-native, so the HTTP server, the HTTP client and
coterie's components share one event loop with no threads; it is also one
package for both server and client. The module offers:

- :func:`verdict`: the validation answer, a pure function of the card number;
- :func:`validation_responder`: a coterie :class:`~coterie.Responder` for
  ``validate`` requests (the mesh way). It answers in two shapes: a request
  with ``"answer": "verdict"`` (what :class:`MeshValidation` sends) gets a
  :class:`Verdict`; any other, such as the seed's Node payment service's
  ``{"type": "validate", "cardno": ...}``, gets the seed's contract: ``true``,
  or an error that is the reason as a bare string (what cote's
  ``cb("reason")`` sends), which the seed's service prints after
  ``"validation failed: "``;
- :func:`validation_app`: ``GET /validate/<cardno>`` over HTTP (the nginx way);
- :func:`payment_app`: ``GET /pay/<cardno>``, answering a JSON string as the
  seed's restify service did, through any :data:`Validate` callable, and
  ``GET /metrics`` (Prometheus text) when given a :class:`coterie.metrics.Metrics`;
- :class:`MeshValidation` and :class:`HttpValidation`: the two ways the payment
  service reaches validation. Each turns every failure (timeout, refused
  connection, a 502 from nginx) into :class:`ValidationUnavailable` with a
  readable reason, so a payment never answers 500;
- :func:`serve_app`: serve an app on a port, with room for very long card
  numbers in the request line.

Payment status codes: 200 validated, 422 card refused, 503 validation could
not be reached. The body is always a JSON string; the header
``X-Validated-By`` names the validator that answered.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypedDict

import aiohttp
from aiohttp import web
from yarl import URL

from coterie import (
    DiscoveryOptions,
    NotRunningError,
    QueueFullError,
    RemoteError,
    Requester,
    RequestTimeoutError,
    Responder,
)
from coterie.metrics import Metrics
from examples.payment.cards import check_card

__all__ = [
    "MAX_INPUT_CHARS",
    "STOPPED",
    "VERDICT_REQUEST",
    "HttpValidation",
    "MeshValidation",
    "Validate",
    "ValidationUnavailable",
    "Verdict",
    "payment_app",
    "serve_app",
    "validation_app",
    "validation_responder",
    "verdict",
]

log = logging.getLogger("payment")

#: Why a payment still waiting for validation when the service stops fails.
STOPPED = "the payment service stopped before validation answered"
#: Inputs longer than this are refused by the payment service itself.
MAX_INPUT_CHARS = 256
#: aiohttp refuses request lines over 8190 bytes with a bare 400 that dumps
#: the line; allow up to 1 MiB so very long card numbers (a 100k-digit URL)
#: get the payment service's own answer instead. Headers keep a 64 KiB bound.
_MAX_LINE = 1 << 20
_MAX_FIELD = 65536


class Verdict(TypedDict):
    """A validator's answer."""

    valid: bool
    reason: str | None
    by: str


class ValidationUnavailable(Exception):
    """Validation could not be reached; ``str(exc)`` says why.

    The example's own error, not one of coterie's: the payment service turns
    it into a 503.
    """


#: Validates a card number, or raises :class:`ValidationUnavailable`.
Validate = Callable[[str], Awaitable[Verdict]]


def verdict(cardno: Any, by: str) -> Verdict:
    """The validation answer for ``cardno``, signed ``by`` a validator."""
    if not isinstance(cardno, str):
        return {"valid": False, "reason": "card number must be a string", "by": by}
    reason = check_card(cardno)
    return {"valid": reason is None, "reason": reason, "by": by}


#: The request field and value that ask a validator for a whole :class:`Verdict`.
VERDICT_REQUEST = {"answer": "verdict"}


def _as_verdict(value: Any, source: str) -> Verdict:
    if isinstance(value, bool):  # the seed's validators answer a bare true
        return {"valid": value, "reason": None if value else "refused", "by": source}
    if not isinstance(value, dict) or not isinstance(value.get("valid"), bool):
        raise ValidationUnavailable(f"unexpected answer from {source}: {str(value)[:80]!r}")
    reason = value.get("reason")
    return {
        "valid": value["valid"],
        "reason": str(reason) if reason is not None else None,
        "by": str(value.get("by", source)),
    }


# -- validators ------------------------------------------------------------------


def validation_responder(
    by: str,
    *,
    name: str = "validation service",
    discovery: DiscoveryOptions | None = None,
    host: str = "127.0.0.1",
) -> Responder:
    """A responder for ``{"type": "validate", "cardno": ...}``: a verdict, or the seed's answer.

    With ``"answer": "verdict"`` in the request the answer is a
    :class:`Verdict`. Without it, the answer is what the seed's Node payment
    service expects: ``true`` for a valid card, else an error whose value is
    the reason, a bare string.

    Args:
        by: This validator's name in answers and logs.
        name: Advertised component name.
        discovery: Discovery options.
        host: Address to listen on.
    """
    responder = Responder(name, discovery=discovery, host=host)

    @responder.on("validate")
    def validate(request: dict[str, Any]) -> Verdict | bool:
        cardno = request.get("cardno")
        log.info("validating %s", cardno)
        answer = verdict(cardno, by)
        if request.get("answer") == VERDICT_REQUEST["answer"]:
            return answer
        if answer["valid"]:
            return True
        raise RemoteError(answer["reason"] or "refused")  # sent as it is, as cb("reason")

    return responder


def validation_app(by: str) -> web.Application:
    """``GET /validate/<cardno>`` answering a :class:`Verdict` as JSON (status 200)."""

    async def validate(request: web.Request) -> web.Response:
        cardno = request.match_info["cardno"]
        log.info("validating %s", cardno)
        return web.json_response(verdict(cardno, by))

    app = web.Application()
    app.router.add_get("/validate/{cardno:.*}", validate)
    return app


# -- how the payment service reaches validation ----------------------------------


class MeshValidation:
    """Validation over the coterie mesh: waits for a validator, within a bound.

    Args:
        requester: A started requester.
        timeout: Seconds a payment may wait for a validator, waiting included.
    """

    def __init__(self, requester: Requester, timeout: float) -> None:
        self.requester = requester
        self.timeout = timeout

    async def __call__(self, cardno: str) -> Verdict:
        """Validate ``cardno`` on whichever validator is next."""
        try:
            answer = await self.requester.send(
                {"type": "validate", "cardno": cardno, **VERDICT_REQUEST}, timeout=self.timeout
            )
        except RequestTimeoutError:
            raise ValidationUnavailable(
                f"timeout: no validation service answered within {self.timeout:g} s"
            ) from None
        except RemoteError as exc:
            raise ValidationUnavailable(f"validation service error: {exc.message}") from None
        except QueueFullError:
            raise ValidationUnavailable("too many payments already waiting") from None
        except NotRunningError:  # the service stops: its grace ended first
            raise ValidationUnavailable(STOPPED) from None
        return _as_verdict(answer, "validation service")


def _encode_segment(text: str) -> str:
    # Percent-encode all but ASCII letters and digits, so ``..``, ``/`` and
    # ``?`` in a card number stay inside one path segment through nginx.
    return "".join(
        c if c.isascii() and c.isalnum() else "".join(f"%{b:02X}" for b in c.encode()) for c in text
    )


class HttpValidation:
    """Validation over HTTP: ``GET <base_url>/validate/<cardno>`` (e.g. nginx).

    Args:
        base_url: Where validation answers, e.g. ``http://127.0.0.1:8080``.
        session: The client session to use.
        timeout: Seconds for the whole request.
    """

    def __init__(self, base_url: str, session: aiohttp.ClientSession, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeout = timeout

    async def __call__(self, cardno: str) -> Verdict:
        """Validate ``cardno`` through the HTTP endpoint."""
        url = URL(f"{self.base_url}/validate/{_encode_segment(cardno)}", encoded=True)
        try:
            async with self.session.get(
                url, timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as response:
                if response.status != 200:
                    server = response.headers.get("Server", "").split("/")[0] or self.base_url
                    raise ValidationUnavailable(
                        f"{response.status} {response.reason} from {server}"
                    )
                body = await response.read()
        except TimeoutError:
            raise ValidationUnavailable(
                f"timeout: {self.base_url} did not answer within {self.timeout:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise ValidationUnavailable(f"cannot reach {self.base_url}: {exc}") from None
        try:
            answer = json.loads(body)
        except ValueError:
            raise ValidationUnavailable(f"{self.base_url} answered something not JSON") from None
        return _as_verdict(answer, self.base_url)


# -- the payment service -----------------------------------------------------------


def payment_app(validate: Validate, metrics: Metrics | None = None) -> web.Application:
    """``GET /pay/<cardno>``: ``"<cardno> validated"`` or ``"... validation failed: why"``.

    Args:
        validate: How to reach validation (:class:`MeshValidation`,
            :class:`HttpValidation` or any :data:`Validate`).
        metrics: Served at ``GET /metrics`` for Prometheus when given.
    """

    async def pay(request: web.Request) -> web.Response:
        cardno = request.match_info["cardno"]
        by = ""
        if len(cardno) > MAX_INPUT_CHARS:
            status, text = 422, f"too long ({len(cardno)} characters)"
            shown = cardno[:32] + "..."
        else:
            shown = cardno or "(empty)"
            try:
                answer = await validate(cardno)
            except ValidationUnavailable as exc:
                status, text = 503, str(exc)
            except Exception as exc:  # never a 500: say what went wrong
                log.exception("validating %r failed", cardno)
                status, text = 503, f"internal error: {exc!r}"
            else:
                by = answer["by"]
                if answer["valid"]:
                    status, text = 200, ""
                else:
                    status, text = 422, answer["reason"] or "refused"
        message = f"{shown} validated" if status == 200 else f"{shown} validation failed: {text}"
        log.info("pay %s -> %s%s", shown, message, f" (by {by})" if by else "")
        headers = {"X-Validated-By": by} if by else None
        return web.json_response(message, status=status, headers=headers)

    async def index(request: web.Request) -> web.Response:
        return web.json_response("try GET /pay/<cardno>, e.g. /pay/4111111111111111")

    async def exposition(request: web.Request) -> web.Response:
        assert metrics is not None
        body, content_type = metrics.exposition(request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/pay/{cardno:.*}", pay)
    app.router.add_get("/", index)
    if metrics is not None:
        app.router.add_get("/metrics", exposition)
    return app


async def serve_app(
    app: web.Application, host: str, port: int, *, shutdown_timeout: float = 60.0
) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (0 picks a free port).

    Args:
        app: The application.
        host: Address to listen on.
        port: Port; 0 picks a free one.
        shutdown_timeout: Seconds ``runner.cleanup()`` lets requests in
            progress finish before it cancels them.

    Returns:
        The runner (``await runner.cleanup()`` to stop) and the bound port.

    Raises:
        OSError: When the address is taken; the message names it.
    """
    runner = web.AppRunner(
        app,
        access_log=None,
        max_line_size=_MAX_LINE,
        max_field_size=_MAX_FIELD,
        shutdown_timeout=shutdown_timeout,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        why = os.strerror(exc.errno) if exc.errno else exc.strerror or str(exc)
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {why}") from exc
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    return runner, bound
