"""OpenTelemetry tracing across services (coterie.tracing), with the SDK's in-memory exporter.

A requester's span and the responder's span must share one trace id, the
responder's a child of the requester's, with the context carried inside the
request over real sockets; a handler that sends on must extend the same
trace (one payment, one trace across services); the ``__trace`` field never
reaches a handler; and with tracing off nothing of OpenTelemetry is touched.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import coterie.tracing
from coterie import RemoteError, Requester, Responder
from coterie.testing import Mesh
from coterie.tracing import ComponentTracing, Tracing
from tests.helpers import MS, DiscoveryFactory

SOON = 5_000 * MS


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Tracing:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(tracer_provider=provider)


def only(spans: list[ReadableSpan], name: str, kind: SpanKind) -> ReadableSpan:
    found = [s for s in spans if s.name == name and s.kind == kind]
    assert len(found) == 1, [(s.name, s.kind) for s in spans]
    return found[0]


def is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.context is not None and parent.context is not None
    return (
        child.parent is not None
        and child.parent.span_id == parent.context.span_id
        and child.context.trace_id == parent.context.trace_id
    )


async def test_one_trace_across_real_sockets(
    disc: DiscoveryFactory, tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    seen: list[dict[str, Any]] = []
    async with Responder("validation service", discovery=disc(), tracing=tracing) as responder:

        @responder.on("validate")
        def validate(req: dict[str, Any]) -> bool:
            seen.append(req)
            return True

        async with Requester("payment service", discovery=disc(), tracing=tracing) as requester:
            await requester.wait_connected(1, timeout=SOON)
            assert await requester.send({"type": "validate", "cardno": "4111"}) is True

    spans = list(exporter.get_finished_spans())
    client = only(spans, "validate", SpanKind.CLIENT)
    server = only(spans, "validate", SpanKind.SERVER)
    assert is_child(server, client)
    assert client.parent is None  # the caller had no span: the request starts the trace
    assert client.attributes is not None and server.attributes is not None
    assert client.attributes["coterie.component"] == "payment service"
    assert server.attributes["coterie.component"] == "validation service"
    assert client.attributes["rpc.method"] == server.attributes["rpc.method"] == "validate"
    assert client.attributes["coterie.outcome"] == server.attributes["coterie.outcome"] == "ok"
    assert seen == [{"type": "validate", "cardno": "4111"}]  # no __trace for the handler


async def test_a_payment_is_one_trace_across_services(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    """gateway -> payment service -> validation service: four spans, one trace."""
    async with Mesh() as mesh:
        validation = mesh.responder("validation service", tracing=tracing)
        validation.on("validate", lambda req: req["cardno"] == "4111")
        payment = mesh.responder("payment service", tracing=tracing)
        to_validation = mesh.requester("payment service", tracing=tracing)

        @payment.on("pay")
        async def pay(req: dict[str, Any]) -> str:
            ok = await to_validation.send({"type": "validate", "cardno": req["cardno"]})
            return "paid" if ok else "refused"

        gateway = mesh.requester("gateway", tracing=tracing)
        await mesh.start()
        await gateway.wait_connected(1, timeout=SOON)
        await to_validation.wait_connected(1, timeout=SOON)

        outer = tracing.tracer.start_span("GET /pay")  # the HTTP request's span
        with trace.use_span(outer, end_on_exit=True):
            assert await gateway.send({"type": "pay", "cardno": "4111"}) == "paid"

    spans = list(exporter.get_finished_spans())
    http = only(spans, "GET /pay", SpanKind.INTERNAL)
    pay_client = only(spans, "pay", SpanKind.CLIENT)
    pay_server = only(spans, "pay", SpanKind.SERVER)
    validate_client = only(spans, "validate", SpanKind.CLIENT)
    validate_server = only(spans, "validate", SpanKind.SERVER)
    assert is_child(pay_client, http)
    assert is_child(pay_server, pay_client)
    assert is_child(validate_client, pay_server)
    assert is_child(validate_server, validate_client)
    assert len({s.context.trace_id for s in spans if s.context is not None}) == 1


async def test_a_failure_marks_both_spans(tracing: Tracing, exporter: InMemorySpanExporter) -> None:
    async with Mesh() as mesh:
        responder = mesh.responder("validation", tracing=tracing)

        @responder.on("charge")
        async def charge(req: dict[str, Any]) -> None:
            raise ValueError("card declined")

        requester = mesh.requester("payment", tracing=tracing)
        await mesh.start()
        await requester.wait_connected(1, timeout=SOON)
        with pytest.raises(RemoteError):
            await requester.send({"type": "charge"})

    spans = list(exporter.get_finished_spans())
    client = only(spans, "charge", SpanKind.CLIENT)
    server = only(spans, "charge", SpanKind.SERVER)
    assert is_child(server, client)
    assert client.status.status_code == server.status.status_code == StatusCode.ERROR
    assert client.attributes is not None and client.attributes["coterie.outcome"] == "error"
    assert [e.name for e in server.events] == ["exception"]


async def test_a_responder_without_tracing_still_hides_the_field(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    seen: list[dict[str, Any]] = []
    async with Mesh() as mesh:
        responder = mesh.responder("validation")  # tracing off

        @responder.on("validate")
        def validate(req: dict[str, Any]) -> bool:
            seen.append(req)
            return True

        requester = mesh.requester("payment", tracing=tracing)
        await mesh.start()
        await requester.wait_connected(1, timeout=SOON)
        assert await requester.send({"type": "validate", "cardno": "4111"}) is True
    assert seen == [{"type": "validate", "cardno": "4111"}]
    assert [s.kind for s in exporter.get_finished_spans()] == [SpanKind.CLIENT]


def test_tracing_argument() -> None:
    assert coterie.tracing.resolve(None) is None
    assert coterie.tracing.resolve(False) is None
    assert isinstance(coterie.tracing.resolve(True), Tracing)
    with pytest.raises(TypeError):
        coterie.tracing.resolve(1)  # type: ignore[arg-type]


async def test_tracing_off_touches_no_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "opentelemetry"]:
        monkeypatch.setitem(sys.modules, name, None)

    def touched(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a tracing hook ran with tracing off")

    for hook in ("__init__", "request_begin", "request_end", "handling", "refused"):
        monkeypatch.setattr(ComponentTracing, hook, touched)
    monkeypatch.setattr(Tracing, "__init__", touched)

    async with Mesh() as mesh:
        responder = mesh.responder("validation")
        responder.on("validate", lambda req: True)
        requester = mesh.requester("payment")
        await mesh.start()
        await requester.wait_connected(1, timeout=SOON)
        assert await requester.send({"type": "validate"}) is True
