"""Pure rules of notifications: retry schedule, verdicts, the per-channel send window,
durations in words, SMTP URLs, config masking — no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronkeeper.channels.email import parse_smtp_url
from cronkeeper.channels.render import json_escaped
from cronkeeper.domain.notifications import (
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
    span = timedelta(seconds=window)
    for index, start in enumerate(sent):
        assert len([t for t in sent[index:] if t < start + span]) <= limit


@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=100), st.integers(1, 5))
def test_a_channel_with_no_room_waits_exactly_until_a_place_frees(
    gaps: list[float], limit: int
) -> None:
    rule = SendWindow(limit=limit, window=60.0)
    now, sent = T0, list[datetime]()
    for gap in gaps:
        now += timedelta(seconds=gap)
        plan = rule.plan(sent, 1, now)
        if plan.how == "wait":
            assert plan.wait_until is not None and plan.wait_until > now
            assert rule.plan(sent, 1, plan.wait_until).how == "each"  # late, never dropped
            assert rule.room(sent, plan.wait_until - timedelta(microseconds=1)) == 0
        else:
            sent.append(now)


def test_the_plan_is_each_alone_then_one_digest_then_wait() -> None:
    rule = SendWindow(limit=3, window=60.0)
    assert rule.plan([], 3, T0) == SendPlan("each")
    assert rule.plan([], 4, T0) == SendPlan("digest")
    assert rule.plan([], 4, T0).messages(4) == 1  # a digest takes one place
    full = [_at(0), _at(1), _at(2)]
    assert rule.plan(full, 1, _at(10)) == SendPlan("wait", _at(60))
    assert rule.plan(full, 1, _at(60)) == SendPlan("each")  # the first left the window
    assert rule.plan(full, 0, _at(10)).messages(0) == 0


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
