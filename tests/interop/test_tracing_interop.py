"""A tracing coterie requester and a real Node cote 1.2.0 responder.

The trace context travels in the request's ``__trace`` field; a Node cote
handler just sees one more key in the request and answers as before.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from coterie import Requester
from coterie.tracing import Tracing
from tests.helpers import MS
from tests.interop.conftest import NodePeerFactory
from tests.interop.nodepeer import FAST_DISCOVERY, python_discovery

FIRST_CONTACT = 5_000 * MS


async def test_node_responder_answers_a_traced_request(node_peer: NodePeerFactory) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    responder = await node_peer(
        "responder",
        {"name": "node validation", "respondsTo": ["validate"], "discovery": FAST_DISCOVERY},
    )
    async with Requester(
        "payment requester",
        discovery=python_discovery(),
        tracing=Tracing(tracer_provider=provider),
    ) as requester:
        result = await requester.send({"type": "validate", "cardno": "4111"}, timeout=FIRST_CONTACT)

    # peer.js echoes the request it got, plus who answered.
    assert result["by"] == "node validation"
    assert result["cardno"] == "4111"
    (span,) = exporter.get_finished_spans()
    assert span.kind == SpanKind.CLIENT and span.context is not None
    traceparent = result["__trace"]["traceparent"]
    version, trace_id, parent_id, _flags = traceparent.split("-")
    assert (version, trace_id, parent_id) == (
        "00",
        f"{span.context.trace_id:032x}",
        f"{span.context.span_id:016x}",
    )
    request = await responder.wait_for("request", timeout=1_000 * MS)
    assert request["req"]["__trace"] == {"traceparent": traceparent}
