"""OpenTelemetry tracing across services (``pip install 'coterie[tracing]'``).

Turn it on per component with ``tracing=True`` (OpenTelemetry's global tracer
provider and propagator) or ``tracing=Tracing(tracer_provider=...)``. Off by
default: a component then holds ``None`` and the request path costs one
``None`` check; opentelemetry is not even imported.

Design: a requester starts a ``CLIENT`` span per request, a child of the
caller's current span, and sends its W3C trace context inside the request
object, in the field ``__trace`` (``{"traceparent": "00-...", ...}``, as the
propagator writes it). A responder takes the field out of the request before
the handler sees it, starts a ``SERVER`` span as the child of that context,
and runs the handler with its span current, so requests the handler sends in
turn join the same trace: one payment is one trace across the payment and
validation services. Spans end when the request is settled (client) or the
reply is written (server); a failure sets the span's status to error.

Node cote peers ignore the field: a Node responder's handler sees one more
key, ``__trace``, in the request, and answers as before. A coterie responder
removes the field whether or not its own tracing is on, so handlers never see
it (with tracing off, at the cost of one key lookup per request).

Spans are named after the request type and carry ``rpc.system`` (``cote``),
``rpc.method`` (the type), ``coterie.component`` (the component's name) and
``coterie.outcome`` (``ok``, ``error``, ``timeout``, ...).
Pub/sub events carry no trace context: their frames are cote's
``[topic, data]`` with no room for it.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

from coterie.observe import TRACE_FIELD, Observed, Observer, outcome_of

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["TRACE_FIELD", "ComponentTracing", "Tracing", "resolve"]

_INSTALL_HINT = "coterie's tracing needs opentelemetry-api: pip install 'coterie[tracing]'"


class Tracing:
    """Where coterie's spans go and how their context travels.

    Args:
        tracer_provider: The provider of coterie's tracer; OpenTelemetry's
            global one when ``None``.
        propagator: Writes and reads the ``__trace`` field; OpenTelemetry's
            global propagator (W3C trace context and baggage unless
            configured otherwise) when ``None``.

    Raises:
        ImportError: opentelemetry-api is not installed.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(_INSTALL_HINT) from exc
        from coterie._version import __version__

        self.tracer: Tracer = trace.get_tracer("coterie", __version__, tracer_provider)
        self.propagator = propagator

    def observe(self, component: Observed) -> ComponentTracing:
        """The observer of ``component`` (components call this themselves)."""
        return ComponentTracing(self, component)

    def inject(self, carrier: dict[str, str], context: Context) -> None:
        """Write ``context`` into ``carrier``."""
        if self.propagator is not None:
            self.propagator.inject(carrier, context=context)
        else:
            from opentelemetry import propagate

            propagate.inject(carrier, context=context)

    def extract(self, carrier: Any) -> Context:
        """The context in a received ``__trace`` field (empty if there is none)."""
        from opentelemetry.context import Context

        if not isinstance(carrier, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in carrier.items()
        ):
            return Context()
        if self.propagator is not None:
            return self.propagator.extract(carrier, context=Context())
        from opentelemetry import propagate

        return propagate.extract(carrier, context=Context())


def _finish(span: Span, error: BaseException | None) -> None:
    outcome = outcome_of(error)
    span.set_attribute("coterie.outcome", outcome)
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, f"{outcome}: {error}"))
        if isinstance(error, Exception):
            span.record_exception(error)
    span.end()


class _ServerSpan:
    """A responder's request in its handler: the span and the context to run in."""

    __slots__ = ("context", "span")

    def __init__(self, span: Span, context: contextvars.Context) -> None:
        self.span = span
        self.context: contextvars.Context | None = context

    def done(self, error: BaseException | None) -> None:
        _finish(self.span, error)


class ComponentTracing(Observer):
    """One component's tracing observer (see the module doc)."""

    def __init__(self, tracing: Tracing, component: Observed) -> None:
        from opentelemetry import context, trace

        self.tracing = tracing
        self.name = component.name
        self._client = trace.SpanKind.CLIENT
        self._server = trace.SpanKind.SERVER
        self._in_context = trace.set_span_in_context
        self._attach = context.attach
        #: Request id -> its client span, between begin and end.
        self._spans: dict[str, Span] = {}

    def _attributes(self, request_type: Any) -> dict[str, str]:
        return {
            "rpc.system": "cote",
            "rpc.method": str(request_type),
            "coterie.component": self.name,
        }

    def request_begin(self, request: dict[str, Any], request_id: str) -> dict[str, Any]:
        """Start the client span; return the request with its context in ``__trace``."""
        request_type = request.get("type")
        span = self.tracing.tracer.start_span(
            str(request_type), kind=self._client, attributes=self._attributes(request_type)
        )
        span.set_attribute("coterie.request_id", request_id)
        self._spans[request_id] = span
        carrier: dict[str, str] = {}
        self.tracing.inject(carrier, self._in_context(span))
        return {**request, TRACE_FIELD: carrier}

    def request_end(self, request_id: str, request_type: Any, error: BaseException | None) -> None:
        """End the client span of a settled request."""
        span = self._spans.pop(request_id, None)
        if span is not None:
            _finish(span, error)

    def handling(self, request_type: Any, carrier: Any) -> _ServerSpan:
        """Start the server span, a child of the caller's; the handler runs with it current."""
        parent = self.tracing.extract(carrier)
        span = self.tracing.tracer.start_span(
            str(request_type),
            context=parent,
            kind=self._server,
            attributes=self._attributes(request_type),
        )
        run_in = contextvars.copy_context()
        # Attached inside the copy only: the caller's context is untouched, and
        # the copy (with its token) goes away with the request.
        run_in.run(self._attach, self._in_context(span, parent))
        return _ServerSpan(span, run_in)


def resolve(tracing: Tracing | bool | None) -> Tracing | None:
    """What a component's ``tracing=`` argument means: ``None`` when off.

    Raises:
        TypeError: For anything but a :class:`Tracing`, a bool or ``None``.
    """
    if tracing is None or tracing is False:
        return None
    if tracing is True:
        return Tracing()
    if isinstance(tracing, Tracing):
        return tracing
    raise TypeError(f"tracing must be a coterie.tracing.Tracing, a bool or None, got {tracing!r}")
