"""Pure rules of notifications: retry schedule, verdicts, the per-channel send window,
durations in words, SMTP URLs, config masking — no I/O."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronkeeper.channels.email import parse_smtp_url
from cronkeeper.channels.render import json_escaped
from cronkeeper.domain.notifications import (
    DIGEST_SIZE,
    MAX_ATTEMPTS,
    Delivery,
    JobRef,
    Message,
    RunFacts,
    SendPlan,
    SendWindow,
    after_attempt,
    describe_duration,
    detail_lines,
    digest,
    message_from_payload,
    message_to_payload,
    retry_delay,
)
from cronkeeper.service.channel_schemas import mask_config, unmask_config


def test_the_retry_schedule_is_10s_30s_2m_10m_then_give_up() -> None:
    assert [retry_delay(n) for n in range(1, 6)] == [10, 30, 120, 600, None]
    assert MAX_ATTEMPTS == 5


@given(st.integers(1, 4), st.floats(0, 10_000, allow_nan=False))
def test_a_retry_after_only_ever_lengthens_the_wait_and_is_capped(
    attempts: int, retry_after: float
) -> None:
    delay = retry_delay(attempts, retry_after)
    assert delay is not None
    assert delay >= retry_delay(attempts)  # type: ignore[operator]
    assert delay <= max(3600, retry_delay(attempts) or 0)


@given(st.integers(1, 10))
def test_backoff_never_shrinks_from_one_attempt_to_the_next(attempts: int) -> None:
    this, following = retry_delay(attempts), retry_delay(attempts + 1)
    if this is not None and following is not None:
        assert following > this


def test_verdicts_sent_retry_failed_and_disable() -> None:
    assert after_attempt(Delivery(ok=True), 1).status == "sent"
    retry = after_attempt(Delivery(ok=False, error="503"), 2)
    assert (retry.status, retry.retry_in, retry.disable_channel) == ("pending", 30, False)
    assert after_attempt(Delivery(ok=False, error="503"), 5).status == "failed"
    permanent = after_attempt(Delivery(ok=False, error="404", permanent=True), 1)
    assert (permanent.status, permanent.disable_channel) == ("failed", True)


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _simulate(rule: SendWindow, arrivals: list[float]) -> tuple[list[datetime], list[float]]:
    """Drive `plan` as the notifier does: at each arrival and each wake-up the due
    notifications go as planned, or all wait until the planned moment. Returns the
    messages' times and each notification's wait (seconds from arrival to its message)."""
    queue = sorted(arrivals)
    sent: list[datetime] = []
    waits: list[float] = []
    pending: list[float] = []
    wake: datetime | None = None
    while queue or pending:
        moments = [wake] if wake is not None else []
        if queue:
            moments.append(_at(queue[0]))
        now = min(moments)  # the next arrival, or the planned wake-up
        while queue and _at(queue[0]) <= now:
            pending.append(queue.pop(0))
        plan = rule.plan(sent, len(pending), now)
        if plan.how == "wait":
            assert plan.wait_until is not None
            wake = plan.wait_until
            continue
        messages = plan.batches(pending)
        sent += [now] * len(messages)
        waits += [(now - _at(arrived)).total_seconds() for batch in messages for arrived in batch]
        pending = pending[sum(len(batch) for batch in messages) :]
        wake = now if pending else None  # a backlog beyond the digests: plan it again
    return sent, waits


def _most_in_any_window(sent: list[datetime], window: float) -> int:
    span = timedelta(seconds=window)
    return max((len([t for t in sent if start <= t < start + span]) for start in sent), default=0)


limits = st.integers(1, 40)
windows = st.floats(1, 120, allow_nan=False)


@given(
    st.lists(
        st.tuples(st.floats(0, 20, allow_nan=False), st.integers(1, 12)), min_size=1, max_size=60
    ),
    st.integers(1, 10),
    st.floats(1, 30, allow_nan=False),
)
def test_the_send_window_never_allows_more_than_the_limit_in_any_window(
    bursts: list[tuple[float, int]], limit: int, window: float
) -> None:
    rule = SendWindow(limit=limit, window=window)
    now, sent = T0, list[datetime]()
    for gap, due in bursts:
        now += timedelta(seconds=gap)
        sent += [now] * rule.plan(sent, due, now).messages(due)
    assert _most_in_any_window(sent, window) <= limit


@given(st.lists(st.floats(0, 300, allow_nan=False), min_size=1, max_size=150), limits, windows)
def test_a_burst_of_any_length_keeps_the_limit_and_no_notification_waits_beyond_the_window(
    arrivals: list[float], limit: int, window: float
) -> None:
    rule = SendWindow(limit=limit, window=window)
    sent, waits = _simulate(rule, arrivals)
    assert len(waits) == len(arrivals)  # late, never dropped
    assert _most_in_any_window(sent, window) <= limit
    assert max(waits) <= window + 1e-6


@given(
    st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=200),
    st.integers(6, 60),
    windows,
    st.floats(0, 1, allow_nan=False),
)
def test_a_burst_goes_out_as_a_few_messages_each_at_most_a_pace_after_its_alert(
    shares: list[float], limit: int, window: float, length: float
) -> None:
    rule = SendWindow(limit=limit, window=window)
    # a burst that ends before the rationed places: a digest a pace, at full speed
    span = length * (rule.reserve - rule.rationed - 1) * rule.pace
    sent, waits = _simulate(rule, [share * span for share in shares])
    sends = len(set(sent))
    assert sends <= math.ceil(span / rule.pace) + 1  # one send per pace at most
    singles, digests = rule.limit - rule.reserve, math.ceil(span / rule.pace) + 1
    assert len(sent) <= singles + digests + len(shares) // DIGEST_SIZE
    assert max(waits) <= rule.pace + 1e-6  # no alert waits for the window


@given(st.lists(st.floats(0, 200, allow_nan=False), max_size=100), limits, windows)
def test_a_lone_notification_on_an_idle_channel_is_sent_at_once_on_its_own(
    history: list[float], limit: int, window: float
) -> None:
    rule = SendWindow(limit=limit, window=window)
    last = _at(max(history, default=0))
    now = last + timedelta(seconds=window)  # every earlier message left the window
    assert rule.plan([_at(t) for t in history], 1, now) == SendPlan("each")


@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=100), limits, windows)
def test_a_wait_ends_when_the_channel_may_send_and_never_beyond_the_window(
    arrivals: list[float], limit: int, window: float
) -> None:
    rule = SendWindow(limit=limit, window=window)
    sent, _ = _simulate(rule, arrivals)  # a history the policy itself produced
    for moment in [*sent, *(_at(t) for t in arrivals)]:
        past = [t for t in sent if t <= moment]
        plan, until = rule.plan(past, 5, moment), moment
        if plan.how != "wait":
            continue
        assert plan.wait_until is not None and plan.wait_until > moment
        before = plan.wait_until - timedelta(microseconds=1)
        assert rule.plan(past, 5, before).how == "wait"  # it could not send any sooner
        while plan.wait_until is not None:  # a rationed place may wait for the next
            assert plan.wait_until > until
            until = plan.wait_until
            plan = rule.plan(past, 5, until)
        assert until <= max(past) + timedelta(seconds=window)  # late, never dropped


def test_the_reserve_is_two_thirds_the_rationed_places_a_third_the_pace_one_second() -> None:
    rule = SendWindow(30, 60.0)
    assert (rule.reserve, rule.rationed, rule.pace) == (20, 10, 1.0)
    assert (SendWindow(2, 60.0).reserve, SendWindow(2, 60.0).rationed) == (1, 0)
    assert SendWindow(1, 60.0).reserve == 0  # below the limit: a lone alert still goes


def test_the_plan_is_singles_while_the_reserve_holds_then_digests_at_the_pace() -> None:
    rule = SendWindow(limit=30, window=60.0)  # reserve 20, rationed 10, pace 1 s
    assert rule.plan([], 10, T0) == SendPlan("each")  # 20 places stay free
    assert rule.plan([], 11, T0) == SendPlan("digest")
    assert rule.plan([], 11, T0).messages(11) == 1  # a digest takes one place
    burst = [T0] * 3  # three single messages at 0 s; the burst goes on
    assert rule.plan(burst, 1, _at(0.2)) == SendPlan("wait", _at(1))  # it accumulates
    assert rule.plan(burst, 100, _at(1)) == SendPlan("digest")
    assert rule.plan(burst, 2, _at(1)) == SendPlan("each")  # a lull: singles again


def test_a_big_backlog_goes_as_digests_of_200_leaving_the_rationed_places() -> None:
    rule = SendWindow(limit=30, window=60.0)  # 10 places rationed
    assert rule.plan([], 1000, T0) == SendPlan("digest", digests=5)
    assert SendPlan("digest", digests=5).batches(list(range(1000)))[4] == list(range(800, 1000))
    assert rule.plan([], 9000, T0) == SendPlan("digest", digests=20)  # the rest waits
    assert SendPlan("digest", digests=20).messages(9000) == 20
    full = [T0] * 29  # one place left: one digest
    assert rule.plan(full, 5000, _at(60) - timedelta(microseconds=1)).digests == 1


def test_the_last_places_are_spread_until_the_oldest_message_leaves() -> None:
    rule = SendWindow(limit=30, window=60.0)  # the last 10 places are rationed
    sent = [_at(second) for second in range(21)]  # 9 places left; the oldest leaves at 60
    assert rule.plan(sent, 50, _at(21)) == SendPlan("wait", _at(24))  # 40 s in 10 steps
    assert rule.plan(sent, 50, _at(24)) == SendPlan("digest")
    sent += [_at(24)] * 8  # the last place: halfway to the oldest leaving
    assert rule.plan(sent, 1, _at(25)) == SendPlan("wait", _at(42))
    sent.append(_at(42))  # no place left: until the oldest leaves
    assert rule.plan(sent, 1, _at(43)) == SendPlan("wait", _at(60))


def test_with_no_room_the_plan_waits_for_a_place_to_free() -> None:
    rule = SendWindow(limit=2, window=60.0)  # pace 15 s, nothing rationed
    full = [_at(0), _at(1)]
    assert rule.plan(full, 1, _at(20)) == SendPlan("wait", _at(60))
    assert rule.plan(full, 1, _at(60)) == SendPlan("each")  # the first left the window
    assert rule.plan(full, 0, _at(20)).messages(0) == 0
    late = [_at(0), _at(50)]  # a place frees at 60, the pace allows 65
    assert rule.plan(late, 3, _at(58)) == SendPlan("wait", _at(65))


def test_the_send_window_says_how_much_room_is_left() -> None:
    window = SendWindow(limit=3, window=60.0)
    assert window.room([], T0) == 3
    sent = [_at(0), _at(1)]
    assert window.room(sent, _at(2)) == 1
    assert window.room(sent, _at(60.5)) == 2  # the first send left the window
    assert window.free_at(sent, _at(2)) == _at(2)  # room now


def test_messages_logged_out_of_order_still_free_the_oldest_place_first() -> None:
    rule = SendWindow(limit=2, window=60.0)
    sent = [_at(30), _at(5), _at(20)]  # two processes' places, read in any order
    assert rule.free_at(sent, _at(31)) == _at(80)
    assert rule.plan(sent, 1, _at(31)) == SendPlan("wait", _at(80))


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(None, ""), (0, "0s"), (45, "45s"), (7500, "2h 5m"), (90061, "1d 1h"), (3600, "1h")],
)
def test_durations_read_in_at_most_two_units(seconds: float | None, words: str) -> None:
    assert describe_duration(seconds) == words


def test_smtp_urls_give_security_port_and_credentials() -> None:
    plain = parse_smtp_url("smtp://mail.example.com")
    assert (plain.host, plain.port, plain.security, plain.username) == (
        "mail.example.com", 25, "plain", None,
    )  # fmt: skip
    tls = parse_smtp_url("smtps://bot:p%40ss@mail.example.com")
    assert (tls.port, tls.security, tls.username, tls.password) == (465, "tls", "bot", "p@ss")
    assert parse_smtp_url("smtp+starttls://h").port == 587
    assert parse_smtp_url("smtp://h:2525?starttls=true").security == "starttls"
    with pytest.raises(ValueError, match="must start with"):
        parse_smtp_url("http://h")


@given(st.text())
def test_json_escaping_keeps_any_text_inside_a_json_string(text: str) -> None:
    import json

    assert json.loads(f'"{json_escaped(text)}"') == text


def test_a_message_survives_the_round_trip_through_its_stored_payload() -> None:
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    message = Message(
        event="down",
        project="p",
        job=JobRef("a", "A", "http://x/jobs/a"),
        status="down",
        reason="missed",
        at=at,
        run=RunFacts("r", "failed", "timeout", "slow", "tail", at, at, at, 5),
        failing_jobs=(JobRef("b", "B", "http://x/jobs/b", at),),
        down_for_s=12.5,
        reminder=True,
    )
    assert message_from_payload(message_to_payload(message)) == message


def test_masking_hides_secrets_and_an_echoed_mask_keeps_them() -> None:
    webhook = {
        "url": "https://u:pw@hooks.example.com/x?token=abc&channel=ops",
        "headers": {"Authorization": "Bearer s3cret", "X-Plain": "visible?"},
    }
    masked = mask_config("webhook", webhook)
    assert masked["headers"] == {"Authorization": "********", "X-Plain": "********"}
    assert "pw" not in masked["url"] and "abc" not in masked["url"]
    assert "channel=ops" in masked["url"]
    assert unmask_config("webhook", masked, webhook) == webhook
    email = {"to": ["a@b.c"], "smtp_url": "smtp://bot:hunter2@mail:25"}
    assert "hunter2" not in mask_config("email", email)["smtp_url"]
    assert unmask_config("email", mask_config("email", email), email) == email
    apprise = {"urls": ["tgram://123456789:abcdefg_hijklmnop/12315544/"]}
    masked_apprise = mask_config("apprise", apprise)
    assert "abcdefg_hijklmnop" not in masked_apprise["urls"][0]
    assert unmask_config("apprise", masked_apprise, apprise) == apprise


def _down(slug: str, at: datetime) -> Message:
    return Message(
        "down",
        "default",
        JobRef(slug, slug.title(), f"http://ck/jobs/{slug}"),
        "down",
        "missed",
        at,
    )


def test_a_digest_names_its_jobs_in_every_rendering_and_survives_storage() -> None:
    at = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    up = Message("up", "default", JobRef("db", "DB", "http://ck/jobs/db"), "up", "recovered", at)
    summary = digest([_down("a", at), _down("b", at), up], "http://ck/", at)

    assert summary.event == "digest" and summary.status == "down"
    assert summary.reason == "2 down, 1 up: a, b, db"
    assert [job.slug for job in summary.failing_jobs] == ["a", "b"]
    lines = detail_lines(summary)
    assert lines[0] == "3 alerts: 2 down, 1 up: a, b, db"
    assert "  - DOWN: A is down (missed) (http://ck/jobs/a)" in lines
    assert "  - UP: DB has recovered (http://ck/jobs/db)" in lines
    assert message_from_payload(message_to_payload(summary)) == summary
