"""OpenTelemetry: one `cron.trigger.fire` span per run, a child span per attempt.

The run's stored `trace_id` is the trace of its spans, and the fire span's id is derived
from the run id, so attempts made by different workers (retries) hang under one span.
The attempt span's context is what targets receive as `traceparent` / `TRACEPARENT`.
Spans are exported over OTLP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; otherwise
tracing costs nothing and `traceparent` is still sent.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from cronkeeper import __version__
from cronkeeper.domain.outcomes import AttemptRequest, Outcome
from cronkeeper.domain.settlement import Settlement
from cronkeeper.service.execution import ClaimedRun

_forced_ids: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "cronkeeper_forced_span_ids", default=None
)


class RunIdGenerator(RandomIdGenerator):
    """Random ids, except while a run's fire span is created with ids fixed in advance."""

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

    @contextmanager
    def attempt(self, claimed: ClaimedRun) -> Iterator[AttemptRequest]:
        """Open the attempt's span; yields the request carrying its `traceparent`."""
        request = claimed.attempt_request()
        run = claimed.run
        if self.tracer is None or not run.trace_id:
            yield request
            return
        parent = SpanContext(
            int(run.trace_id, 16),
            fire_span_id(run.id),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        context = trace.set_span_in_context(NonRecordingSpan(parent))
        with self.tracer.start_as_current_span(
            "cron.trigger.attempt",
            context=context,
            kind=SpanKind.CLIENT,
            attributes=_attributes(claimed) | {"cron.attempt": run.attempts},
        ) as span:
            ids = span.get_span_context()
            yield replace(request, traceparent=f"00-{ids.trace_id:032x}-{ids.span_id:016x}-01")

    def attempt_ended(self, outcome: Outcome) -> None:
        """Mark the current attempt span with the outcome."""
        span = trace.get_current_span()
        span.set_attribute("cron.outcome", outcome.status.value)
        if outcome.failure_reason:
            span.set_attribute("cron.failure_reason", outcome.failure_reason.value)
        if not outcome.succeeded:
            span.set_status(trace.StatusCode.ERROR, outcome.error or "")

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
