"""Pure ping rules: URL parts, body tails, which open run a ping belongs to, and how a
finishing ping closes it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from cronkeeper.domain.pings import (
    PING_BODY_LIMIT,
    OpenRun,
    Ping,
    PingAction,
    action_for_exit_status,
    body_text,
    close_run,
    matching_run,
    parse_exit_status,
    parse_rid,
    superseded_runs,
)
from cronkeeper.domain.states import AttemptStatus, EventType, RunStatus
from cronkeeper.errors import InvalidInput

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("1", 1), ("007", 7), ("255", 255)])
def test_exit_statuses_from_0_to_255_are_accepted(text: str, value: int) -> None:
    assert parse_exit_status(text) == value


@pytest.mark.parametrize("text", ["256", "1000", "-1", "", "1e3", "99999999999999999999"])
def test_other_exit_statuses_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_exit_status(text)
    assert raised.value.errors[0].field == "exit_status"


def test_exit_status_zero_is_success_and_anything_else_failure() -> None:
    assert action_for_exit_status(0) is PingAction.SUCCESS
    assert {action_for_exit_status(n) for n in range(1, 256)} == {PingAction.FAIL}


def test_rids_are_uuids_in_canonical_lowercase_text() -> None:
    rid = uuid.uuid4()
    assert parse_rid(str(rid).upper()) == str(rid)
    for bad in ("abc", "1", str(rid).replace("-", ""), f"{{{rid}}}", f"{rid}\x00"):
        with pytest.raises(InvalidInput):
            parse_rid(bad)


def test_the_body_keeps_its_tail_as_storable_text() -> None:
    body = b"x" * 10 + b"y" * PING_BODY_LIMIT
    assert body_text(body) == "y" * PING_BODY_LIMIT
    assert body_text(b"ok\x00\xff") == "ok\ufffd\ufffd"
    assert body_text(b"") == ""


def test_a_ping_matches_the_newest_open_run_with_the_same_rid() -> None:
    older = OpenRun(uuid.uuid4(), None, T0)
    newer = OpenRun(uuid.uuid4(), None, T0 + timedelta(seconds=5))
    tagged = OpenRun(uuid.uuid4(), "r1", T0 + timedelta(seconds=9))
    runs = [newer, tagged, older]

    assert matching_run(runs, None) == newer
    assert matching_run(runs, "r1") == tagged
    assert matching_run(runs, "r2") is None
    assert superseded_runs(runs, None) == [newer, older]
    assert superseded_runs(runs, "r1") == [tagged]


def test_a_success_closes_the_run_with_its_duration() -> None:
    ping = Ping(PingAction.SUCCESS, T0 + timedelta(seconds=1.5), exit_status=0)

    closing = close_run(ping, T0)

    assert (closing.status, closing.attempt_status, closing.failure_reason) == (
        RunStatus.SUCCEEDED,
        AttemptStatus.SUCCESS,
        None,
    )
    assert (closing.exit_code, closing.duration_ms, closing.error) == (0, 1500, None)
    assert [kind for kind, _ in closing.events] == [
        EventType.ATTEMPT_SUCCEEDED,
        EventType.RUN_SUCCEEDED,
    ]


def test_a_fail_ping_fails_with_reason_unknown_and_an_exit_status_with_exit_code() -> None:
    fail = close_run(Ping(PingAction.FAIL, T0), None)
    exited = close_run(Ping(PingAction.FAIL, T0, exit_status=3), T0 - timedelta(seconds=2))

    assert (fail.status, fail.failure_reason, fail.exit_code, fail.duration_ms) == (
        RunStatus.FAILED,
        "unknown",
        None,
        None,
    )
    assert (exited.failure_reason, exited.exit_code, exited.duration_ms) == ("exit_code", 3, 2000)
    assert exited.attempt_status is AttemptStatus.EXIT_ERROR
    assert exited.error == "the job exited with status 3"
    assert [kind for kind, _ in exited.events] == [EventType.ATTEMPT_FAILED, EventType.RUN_FAILED]


def test_a_finish_stamped_before_its_start_has_no_negative_duration() -> None:
    closing = close_run(Ping(PingAction.SUCCESS, T0), T0 + timedelta(seconds=1))
    assert closing.duration_ms == 0
