"""The channel adapters against real local peers: a webhook receiver, an aiosmtpd SMTP
server and Apprise's json:// posting to the receiver. Adapters only report."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.message import Message as EmailMessage

from cronkeeper.channels import Dispatcher
from cronkeeper.channels.apprise import AppriseSender
from cronkeeper.channels.email import EmailSender
from cronkeeper.channels.webhook import WebhookSender
from cronkeeper.domain.notifications import JobRef, Message, RunFacts
from cronkeeper.domain.ssrf import SsrfPolicy

from .conftest import ALLOW_LOOPBACK
from .peers import Receiver, SmtpServer

HOSTILE = 'He said "hi"\\ \n\t</b>{{ job.slug }} \u2028 end'
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def message(event: str = "down", **fields: object) -> Message:
    values: dict[str, object] = {
        "event": event,
        "project": "default",
        "job": JobRef("nightly", "Nightly report", "http://ck.test/jobs/nightly"),
        "status": event,
        "reason": "failed",
        "at": AT,
        "run": RunFacts("0195-run", "failed", "exit_code", "exit status 2", "boom\nlast line"),
        "failing_jobs": (JobRef("other", "Other", "http://ck.test/jobs/other", AT),),
        "down_for_s": 7500.0 if event == "up" else 0.0,
    }
    values.update(fields)
    return Message(**values)  # type: ignore[arg-type]


async def test_a_template_gets_json_escaped_values_so_hostile_names_keep_the_body_valid(
    receiver: Receiver,
) -> None:
    template = (
        '{"text": "{{ job.name }} is {{ status }}: {{ failure_reason }} - '
        '{{ failure_explanation }}", "run": "{{ run.id }}", "tail": "{{ output_tail }}", '
        '"down": "{{ down_for }}", "secs": {{ down_for_s }}, "url": "{{ job.url }}", '
        '"unknown": "{{ nothing.here }}"}'
    )
    hostile = message(
        "up",
        job=JobRef("nightly", HOSTILE, "http://ck.test/jobs/nightly"),
        run=RunFacts("r1", "succeeded", "exit_code", None, 'out "quoted"\n\\ tail'),
    )
    sender = WebhookSender(ALLOW_LOOPBACK)
    config = {"url": receiver.url("/t"), "body_up": template, "headers": {"X-Token": "s3cret"}}
    delivery = await sender.send(config, hostile)
    await sender.close()
    assert delivery.ok, delivery.error
    [request] = receiver.requests
    assert request.headers["X-Token"] == "s3cret"
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.body)  # still valid JSON
    assert body["text"] == (
        f"{HOSTILE} is up: exit_code - The command exited with a non-zero exit code."
    )
    assert body["tail"] == 'out "quoted"\n\\ tail'
    assert body["down"] == "2h 5m" and body["secs"] == 7500
    assert body["run"] == "r1" and body["url"] == "http://ck.test/jobs/nightly"
    assert body["unknown"] == "{{ nothing.here }}"  # unknown placeholders stay


async def test_down_events_use_body_down_and_up_events_body_up(receiver: Receiver) -> None:
    config = {"url": receiver.url(), "body_down": "D {{ job.slug }}", "body_up": "U"}
    async with Dispatcher(ALLOW_LOOPBACK) as dispatcher:
        for event in ("down", "up", "flapping", "test"):
            assert (await dispatcher.send("webhook", config, message(event))).ok
    assert receiver.bodies() == ["D nightly", "U", "D nightly", "D nightly"]


async def test_the_webhook_honours_method_and_a_content_type_header(receiver: Receiver) -> None:
    sender = WebhookSender(ALLOW_LOOPBACK)
    config = {"url": receiver.url(), "method": "PUT", "headers": {"content-type": "text/plain"}}
    assert (await sender.send(config, message())).ok
    await sender.close()
    [request] = receiver.requests
    assert request.method == "PUT" and request.headers["Content-Type"] == "text/plain"


async def test_webhook_errors_are_classified_permanent_or_transient(receiver: Receiver) -> None:
    sender = WebhookSender(ALLOW_LOOPBACK, timeout=2)
    outcomes = {}
    for code in (400, 401, 403, 404, 408, 410, 429, 500, 503):
        delivery = await sender.send({"url": receiver.url(f"/status/{code}")}, message())
        assert not delivery.ok and delivery.error and f"HTTP {code}" in delivery.error
        outcomes[code] = delivery.permanent
    refused = await sender.send({"url": "http://127.0.0.1:9/"}, message())  # nothing listens
    await sender.close()
    assert outcomes == {
        400: True, 401: True, 403: True, 404: True, 408: False,
        410: True, 429: False, 500: False, 503: False,
    }  # fmt: skip
    assert not refused.ok and not refused.permanent
    assert refused.error is not None and refused.error.startswith("connection:")


async def test_a_loopback_webhook_is_refused_by_the_default_ssrf_policy_for_good(
    receiver: Receiver,
) -> None:
    sender = WebhookSender(SsrfPolicy())
    delivery = await sender.send({"url": receiver.url()}, message())
    await sender.close()
    assert not delivery.ok and delivery.permanent
    assert delivery.error is not None and delivery.error.startswith("ssrf_blocked: refused")
    assert receiver.requests == []


def _parts(mail: EmailMessage) -> dict[str, str]:
    return {
        part.get_content_type(): part.get_payload(decode=True).decode().replace("\r\n", "\n")  # type: ignore[union-attr]
        for part in mail.walk()
        if not part.is_multipart()
    }


async def test_an_email_arrives_with_subject_text_and_html_bodies(smtp: SmtpServer) -> None:
    config = {"to": ["ops@example.com", "dev@example.com"], "smtp_url": smtp.url(),
              "from": "alerts@example.com"}  # fmt: skip
    delivery = await EmailSender().send(config, message())
    assert delivery.ok, delivery.error
    [mail] = smtp.messages
    assert mail["Subject"] == "[Cronkeeper] DOWN: Nightly report is down (failed)"
    assert mail["From"] == "alerts@example.com"
    assert smtp.keeper.envelopes == [("alerts@example.com", ["ops@example.com", "dev@example.com"])]
    parts = _parts(mail)
    text = parts["text/plain"]
    assert "Job: nightly (http://ck.test/jobs/nightly)" in text
    assert "Failure: exit_code - The command exited with a non-zero exit code." in text
    assert "Other failing jobs in this project:\n  - other (http://ck.test/jobs/other)" in text
    assert "boom\nlast line" in text
    assert "<h2>DOWN: Nightly report is down (failed)</h2>" in parts["text/html"]


async def test_a_recovery_email_says_how_long_the_job_was_down(smtp: SmtpServer) -> None:
    config = {"to": ["ops@example.com"], "smtp_url": smtp.url()}
    assert (await EmailSender().send(config, message("up"))).ok
    assert (
        smtp.messages[0]["Subject"] == "[Cronkeeper] UP: Nightly report has recovered after 2h 5m"
    )


async def test_smtp_login_works_and_a_wrong_password_is_a_permanent_error() -> None:
    with SmtpServer(password="right") as server:
        sender = EmailSender()
        good = await sender.send(
            {"to": ["a@example.com"], "smtp_url": server.url("bot:right@")}, message()
        )
        bad = await sender.send(
            {"to": ["a@example.com"], "smtp_url": server.url("bot:wrong@")}, message()
        )
    assert good.ok, good.error
    assert not bad.ok and bad.permanent
    assert bad.error is not None and bad.error.startswith("authentication failed: 535")
    assert len(server.messages) == 1


async def test_an_unreachable_smtp_server_is_a_transient_error() -> None:
    delivery = await EmailSender(timeout=2).send(
        {"to": ["a@example.com"], "smtp_url": "smtp://127.0.0.1:9"}, message()
    )
    assert not delivery.ok and not delivery.permanent


async def test_apprise_json_posts_title_and_body_to_the_receiver(receiver: Receiver) -> None:
    url = f"json://127.0.0.1:{receiver.port}/apprise"
    delivery = await AppriseSender(ALLOW_LOOPBACK).send({"urls": [url]}, message("up"))
    assert delivery.ok, delivery.error
    [request] = receiver.requests
    posted = json.loads(request.body)
    assert posted["title"] == "[Cronkeeper] UP: Nightly report has recovered after 2h 5m"
    assert "Job: nightly" in posted["message"] and posted["type"] == "success"


async def test_apprise_failures_are_transient_and_unknown_urls_permanent(
    receiver: Receiver,
) -> None:
    sender = AppriseSender(ALLOW_LOOPBACK, timeout=5)
    failing = await sender.send(
        {"urls": [f"json://127.0.0.1:{receiver.port}/status/500"]}, message()
    )
    unknown = await sender.send({"urls": ["nosuchservice://token"]}, message())
    blocked = await AppriseSender(SsrfPolicy()).send(
        {"urls": [f"json://127.0.0.1:{receiver.port}/x"]}, message()
    )
    assert not failing.ok and not failing.permanent and "JSON failed" in (failing.error or "")
    assert not unknown.ok and unknown.permanent
    assert unknown.error == "urls[0]: not a URL Apprise can use"
    assert not blocked.ok and blocked.permanent and "refused" in (blocked.error or "")
    assert receiver.hits["/x"] == 0
