"""OpenTelemetry: one `cron.trigger.fire` span per run, a child span per attempt.

The run's stored `trace_id` is the trace of its spans, and the fire span's id is derived
from the run id, so attempts made by different workers (retries) hang under one span.
The attempt span's context is what targets receive as `traceparent` / `TRACEPARENT`;
both spans are built when they end, with ids fixed in advance (`RunIdGenerator`).
Spans are exported over OTLP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; otherwise
tracing costs nothing and `traceparent` is still sent.
"""

from __future__ import annotations

import contextvars
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, Tracer

from cronkeeper import __version__
from cronkeeper.domain.outcomes import AttemptRequest, Outcome
from cronkeeper.domain.settlement import Settlement
from cronkeeper.service.execution import ClaimedRun

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_forced_ids: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "cronkeeper_forced_span_ids", default=None
)


class RunIdGenerator(RandomIdGenerator):
    """Random ids, except while a span is created with ids fixed in advance (a run's fire
    span, an attempt's span)."""

    def generate_span_id(self) -> int:
        forced = _forced_ids.get()
        return forced[1] if forced else super().generate_span_id()

    def generate_trace_id(self) -> int:
        forced = _forced_ids.get()
        return forced[0] if forced else super().generate_trace_id()


def fire_span_id(run_id: uuid.UUID) -> int:
    """The fire span's id: the low 64 bits of the run id (never zero)."""
    return (run_id.int & ((1 << 64) - 1)) or 1


def provider_for(endpoint: str | None, *processors: SpanProcessor) -> TracerProvider | None:
    """A tracer provider exporting to OTLP/HTTP at `endpoint` (and/or the given processors);
    None when there is nowhere to send spans."""
    if not endpoint and not processors:
        return None
    provider = TracerProvider(
        id_generator=RunIdGenerator(),
        resource=Resource.create({"service.name": "cronkeeper", "service.version": __version__}),
    )
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


class Tracing:
    """Span helpers for the worker; a no-op (bar `traceparent`) without a provider."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("cronkeeper") if provider else None

    def attempt(self, claimed: ClaimedRun) -> AbstractContextManager[TracedAttempt]:
        """The attempt's request, carrying its `traceparent`; the attempt's span covers the
        `with` block. The span is built when the attempt ends, with the ids its
        `traceparent` announced: the SDK's span work (~100 µs) stays off the start of the
        10,000 runs a burst starts at once."""
        request = claimed.attempt_request()
        if self.tracer is None or not claimed.run.trace_id:
            return nullcontext(TracedAttempt(request))  # no generator to step per run
        return _attempt_span(self.tracer, claimed, TracedAttempt(request))

    def run_ended(self, claimed: ClaimedRun, decision: Settlement, ended: datetime) -> None:
        """Emit the run's `cron.trigger.fire` span (start to end, across every attempt)."""
        run = claimed.run
        if self.tracer is None or not run.trace_id or not decision.final:
            return
        started = run.started_at or run.created_at
        token = _forced_ids.set((int(run.trace_id, 16), fire_span_id(run.id)))
        try:
            span = self.tracer.start_span(
                "cron.trigger.fire",
                context=trace.set_span_in_context(trace.INVALID_SPAN),
                kind=SpanKind.INTERNAL,
                start_time=_nanos(started),
                attributes=_attributes(claimed)
                | {"cron.outcome": decision.status.value, "cron.attempts": run.attempts},
            )
        finally:
            _forced_ids.reset(token)
        if decision.status.value != "succeeded":
            span.set_status(trace.StatusCode.ERROR, decision.failure_reason or "")
        span.end(end_time=_nanos(ended))


@dataclass
class TracedAttempt:
    """An attempt as the worker runs it: the request to send, and the outcome its span is
    to carry (`ended`)."""

    request: AttemptRequest
    outcome: Outcome | None = None

    def ended(self, outcome: Outcome) -> None:
        """Record the attempt's outcome for its span."""
        self.outcome = outcome


@contextmanager
def _attempt_span(
    tracer: Tracer, claimed: ClaimedRun, attempt: TracedAttempt
) -> Iterator[TracedAttempt]:
    """Run the `with` block under the attempt's span context (spans a python job makes
    hang under it), then emit the span from its start to now."""
    _, trace_hex, span_hex, _ = attempt.request.traceparent.split("-")
    ids = SpanContext(int(trace_hex, 16), int(span_hex, 16), False, _SAMPLED)
    started = time.time_ns()
    failure: BaseException | None = None
    try:
        with trace.use_span(NonRecordingSpan(ids)):
            yield attempt
    except BaseException as error:
        failure = error
        raise
    finally:
        _emit_attempt_span(tracer, claimed, ids, started, attempt.outcome, failure)


def _emit_attempt_span(
    tracer: Tracer,
    claimed: ClaimedRun,
    ids: SpanContext,
    started: int,
    outcome: Outcome | None,
    failure: BaseException | None,
) -> None:
    """The `cron.trigger.attempt` span with `ids`, a child of the run's fire span."""
    run = claimed.run
    attributes = _attributes(claimed) | {"cron.attempt": run.attempts}
    if outcome is not None:  # known up front: one attribute set to build, not three
        attributes["cron.outcome"] = outcome.status.value
        if outcome.failure_reason:
            attributes["cron.failure_reason"] = outcome.failure_reason.value
    fire = SpanContext(ids.trace_id, fire_span_id(run.id), True, _SAMPLED)
    token = _forced_ids.set((ids.trace_id, ids.span_id))
    try:
        span = tracer.start_span(
            "cron.trigger.attempt",
            context=trace.set_span_in_context(NonRecordingSpan(fire)),
            kind=SpanKind.CLIENT,
            start_time=started,
            attributes=attributes,
        )
    finally:
        _forced_ids.reset(token)
    if outcome is not None and not outcome.succeeded:
        span.set_status(trace.StatusCode.ERROR, outcome.error or "")
    if failure is not None:
        span.record_exception(failure)
        span.set_status(trace.StatusCode.ERROR, f"{type(failure).__name__}: {failure}")
    span.end()


def _attributes(claimed: ClaimedRun) -> dict[str, str | int]:
    run = claimed.run
    attributes: dict[str, str | int] = {
        "cron.job": claimed.spec.slug,
        "cron.project": claimed.project,
        "cron.run_id": str(run.id),
        "cron.source": run.source,
    }
    if run.scheduled_for is not None:
        attributes["cron.scheduled_for"] = run.scheduled_for.isoformat()
    return attributes


def _nanos(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)
