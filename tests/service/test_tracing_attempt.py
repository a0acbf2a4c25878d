"""An attempt's span is built when the attempt ends, with the ids its `traceparent`
announced at the start, under the run's fire span."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from cronkeeper import testing
from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.jobs import JobKind, JobSpec
from cronkeeper.domain.outcomes import Outcome
from cronkeeper.domain.states import AttemptStatus
from cronkeeper.runtime.tracing import Tracing, fire_span_id, provider_for
from cronkeeper.service.execution import ClaimedRun

NOW = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)


def claimed_run() -> ClaimedRun:
    spec = JobSpec(slug="report", kind=JobKind.HTTP, target={"url": "http://127.0.0.1:9/"})
    return testing.claimed_run(spec, NOW, max_attempts=2, node="n1")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Tracing:
    return Tracing(provider_for(None, SimpleSpanProcessor(exporter)))


def test_the_attempt_span_has_the_ids_its_traceparent_announced_and_the_outcome(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    claimed = claimed_run()
    failed = Outcome(
        status=AttemptStatus.HTTP_ERROR, failure_reason=FailureReason.HTTP_5XX, error="HTTP 503"
    )
    with tracing.attempt(claimed) as attempt:
        current = trace.get_current_span().get_span_context()
        assert exporter.get_finished_spans() == ()  # built when the attempt ends
        attempt.ended(failed)
    (span,) = exporter.get_finished_spans()
    traceparent = f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"
    assert attempt.request.traceparent == traceparent
    assert f"{span.context.trace_id:032x}" == claimed.run.trace_id
    assert current.span_id == span.context.span_id  # spans made meanwhile hang under it
    assert span.parent is not None and span.parent.span_id == fire_span_id(claimed.run.id)
    assert span.name == "cron.trigger.attempt" and span.kind is trace.SpanKind.CLIENT
    assert span.start_time is not None and span.end_time is not None
    assert span.start_time <= span.end_time
    assert span.attributes is not None
    assert span.attributes["cron.outcome"] == "http_error"
    assert span.attributes["cron.failure_reason"] == "http_5xx"
    assert span.attributes["cron.attempt"] == 1
    assert span.status.status_code is StatusCode.ERROR


def test_an_attempt_that_raises_still_emits_its_span_with_the_error(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(RuntimeError), tracing.attempt(claimed_run()):
        raise RuntimeError("boom")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


def test_without_a_provider_the_request_still_carries_a_traceparent() -> None:
    claimed = claimed_run()
    with Tracing().attempt(claimed) as attempt:
        attempt.ended(Outcome(status=AttemptStatus.SUCCESS))
    assert attempt.request.traceparent.startswith(f"00-{claimed.run.trace_id}-")
