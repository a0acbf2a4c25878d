"""A run list's items (RunListItem, built without validation) serialise to the very same
JSON as RunOut, the model the API documents for them."""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import UTC, datetime

from cronkeeper.api.schemas import Data, Page
from cronkeeper.service.run_schemas import RunListItem, RunOut, listed_run_out
from cronkeeper.store.runs import ListedRun

AT = datetime(2026, 3, 1, 12, 0, 0, 3000, tzinfo=UTC)


def listed(**changes: object) -> ListedRun:
    values: dict[str, object] = {
        "id": uuid.UUID("01a20799-7c08-7493-b067-4c0b7adcc9b2"),
        "job_id": uuid.uuid4(),
        "source": "schedule",
        "status": "failed",
        "scheduled_for": AT.replace(microsecond=0),
        "queued_at": AT,
        "started_at": AT,
        "finished_at": None,
        "duration_ms": 177,
        "drift_ms": None,
        "attempts": 3,
        "max_attempts": 3,
        "failure_reason": "http_5xx",
        "error": 'HTTP 503 "unavailable" \u00e9',
        "payload": {"request": {"headers": {"X": "1"}, "body": None}, "n": [1, 2.5, True]},
        "trace_id": "0" * 32,
        "replay_of": uuid.UUID("01a20799-7c08-7493-b067-4c0b7adcc9b3"),
        "node": "host:1:abc",
        "during_outage": False,
        "created_at": AT,
    }
    values.update(changes)
    return ListedRun(**values)  # type: ignore[arg-type]


def test_a_list_item_has_runouts_fields_in_runouts_order() -> None:
    assert [field.name for field in fields(RunListItem)] == list(RunOut.model_fields)


def test_a_page_of_list_items_serialises_as_a_page_of_runouts() -> None:
    runs = [
        listed(),
        listed(failure_reason=None, error=None, replay_of=None, payload=None, status="queued"),
        listed(scheduled_for=None, started_at=None, queued_at=None, during_outage=True),
        listed(payload=[1, "two", {"three": 3}], duration_ms=0),
    ]
    items = [listed_run_out(run, "nightly") for run in runs]
    as_models = [RunOut.model_validate(item, from_attributes=True) for item in items]

    fast = Data[Page[RunListItem]].model_construct(
        data=Page[RunListItem].model_construct(items=items, next_cursor="abc")
    )
    documented = Data(data=Page(items=as_models, next_cursor="abc"))

    assert fast.model_dump_json() == documented.model_dump_json()
