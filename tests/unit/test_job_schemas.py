"""The job body of DESIGN §3: one validator for the API, YAML and the SDK.

Every rejection is an `InvalidInput` whose field errors name the field at fault with a
dotted path, so the CLI and the API can point at it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronkeeper.domain.jobs import DEFAULT_RETRY_STATUSES, JobSpec
from cronkeeper.domain.states import JobKind, JobStatus
from cronkeeper.errors import InvalidInput, MalformedBody
from cronkeeper.service.schemas import parse_job_body

DESIGN_EXAMPLE: dict[str, Any] = {
    "slug": "nightly-report",
    "name": "Nightly report",
    "kind": "http",
    "schedule": "0 2 * * *",
    "timezone": "Europe/Berlin",
    "target": {
        "method": "POST",
        "url": "https://reports.example.com/run",
        "headers": {"Authorization": "Bearer s3cret"},
        "body": '{"job": "{{ job.slug }}", "slot": "{{ scheduled_for }}"}',
    },
    "timeout": "30s",
    "retry": {
        "max_attempts": 3,
        "backoff": "250ms",
        "max_backoff": "1m",
        "retry_on_statuses": [429, 500, 502, 503, 504],
    },
    "concurrency": 1,
    "overlap": "skip",
    "catch_up": "none",
    "start_grace": "1m",
    "max_runtime": "1h",
    "min_runtime": None,
    "alerts": {
        "channels": ["ops-webhook"],
        "failure_threshold": 1,
        "recovery_threshold": 1,
        "realert_every": "4h",
    },
    "tags": ["reports"],
    "description": "Renders yesterday's report",
}

MINIMAL_HTTP = {"slug": "ping-api", "kind": "http", "target": {"url": "https://api.example.com/"}}


def rejected(body: object) -> dict[str, str]:
    """The field errors of a body that must be rejected, as {field: message}."""
    with pytest.raises(InvalidInput) as caught:
        parse_job_body(body)
    assert caught.value.errors, "an InvalidInput must name at least one field"
    return {error.field: error.message for error in caught.value.errors}


def with_changes(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(base)
    body.update(changes)
    return body


# --- The documented example and the defaults -------------------------------------------


def test_the_design_example_body_parses_with_durations_in_seconds() -> None:
    spec = parse_job_body(DESIGN_EXAMPLE)
    assert spec.slug == "nightly-report"
    assert spec.kind is JobKind.HTTP
    assert spec.timezone == "Europe/Berlin"
    assert spec.timeout == 30
    assert spec.retry.backoff == 0.25
    assert spec.retry.max_backoff == 60
    assert spec.start_grace == 60
    assert spec.max_runtime == 3600
    assert spec.min_runtime is None
    assert spec.alerts.realert_every == 14400
    assert spec.alerts.channels == ("ops-webhook",)
    assert spec.target is not None
    assert spec.target["headers"] == {"Authorization": "Bearer s3cret"}
    assert spec.tags == ("reports",)


def test_the_design_example_parses_the_same_from_raw_json_bytes() -> None:
    assert parse_job_body(json.dumps(DESIGN_EXAMPLE).encode()) == parse_job_body(DESIGN_EXAMPLE)


def test_a_parsed_spec_survives_its_own_body_form() -> None:
    spec = parse_job_body(DESIGN_EXAMPLE)
    assert JobSpec.from_body(spec.to_body()) == spec
    assert parse_job_body(spec.to_body()) == spec


def test_a_minimal_http_job_gets_the_documented_defaults() -> None:
    spec = parse_job_body(MINIMAL_HTTP)
    assert spec.name == ""
    assert spec.schedule is None
    assert spec.timezone == "UTC"
    assert spec.timeout == 30
    assert spec.retry.max_attempts == 3
    assert spec.retry.backoff == 0.25
    assert spec.retry.retry_on_statuses == DEFAULT_RETRY_STATUSES
    assert spec.concurrency == 1
    assert spec.overlap == "skip"
    assert spec.catch_up == "none"
    assert spec.status is JobStatus.ACTIVE
    assert spec.tags == ()
    assert spec.target == {
        "method": "GET",
        "url": "https://api.example.com/",
        "headers": {},
        "body": None,
    }


def test_durations_may_be_plain_numbers_of_seconds() -> None:
    spec = parse_job_body(with_changes(MINIMAL_HTTP, timeout=2.5, max_runtime=90))
    assert (spec.timeout, spec.max_runtime) == (2.5, 90)


# --- Targets by kind ----------------------------------------------------------------------


def test_a_command_may_be_an_argument_list() -> None:
    spec = parse_job_body(
        {
            "slug": "backup",
            "kind": "command",
            "target": {"command": ["pg_dump", "app"], "cwd": "/srv", "env": {"PGPASSWORD": "x"}},
        }
    )
    assert spec.target is not None
    assert spec.target["command"] == ["pg_dump", "app"]
    assert spec.target["shell"] is False
    assert spec.target["env"] == {"PGPASSWORD": "x"}


def test_a_command_may_be_a_shell_string() -> None:
    target = {"command": "pg_dump app | gzip > /b/app.gz", "shell": True}
    spec = parse_job_body({"slug": "backup", "kind": "command", "target": target})
    assert spec.target is not None
    assert spec.target["command"] == "pg_dump app | gzip > /b/app.gz"
    assert spec.target["shell"] is True


@pytest.mark.parametrize(
    ("target", "field"),
    [
        ({"command": "echo 'unterminated"}, "target.command"),
        ({"command": ""}, "target.command"),
        ({"command": ["ls"], "env": {"1BAD": "x"}}, "target.env.1BAD"),
        ({"command": ["ls"], "user": "root"}, "target.user"),
        ({}, "target.command"),
    ],
)
def test_a_bad_command_target_names_the_field(target: dict[str, Any], field: str) -> None:
    errors = rejected({"slug": "backup", "kind": "command", "target": target})
    assert field in errors


def test_an_empty_command_list_is_reported_on_target_command_only() -> None:
    errors = rejected({"slug": "backup", "kind": "command", "target": {"command": []}})
    assert set(errors) == {"target.command"}


@pytest.mark.parametrize("name", ["myapp.tasks:cleanup", "tasks:run", "a.b.c:Klass.method"])
def test_a_python_target_names_a_module_and_a_callable(name: str) -> None:
    spec = parse_job_body({"slug": "clean", "kind": "python", "target": {"callable": name}})
    assert spec.target == {"callable": name, "kwargs": {}}


@pytest.mark.parametrize(
    "name", ["myapp.tasks.cleanup", "myapp:", ":cleanup", "1app:run", "my-app:run", "a:b c"]
)
def test_a_python_callable_without_module_colon_function_is_rejected(name: str) -> None:
    errors = rejected({"slug": "clean", "kind": "python", "target": {"callable": name}})
    assert "target.callable" in errors


def test_a_trigger_polls_at_least_every_second() -> None:
    target = {"callable": "myapp.triggers:new_files", "poll_interval": "5s", "starts": "ingest"}
    spec = parse_job_body({"slug": "watch", "kind": "trigger", "target": target})
    assert spec.target is not None
    assert spec.target["poll_interval"] == 5
    assert spec.target["starts"] == "ingest"


@pytest.mark.parametrize("interval", ["500ms", 0.2, 0])
def test_a_trigger_polling_faster_than_once_a_second_is_rejected(interval: object) -> None:
    target = {"callable": "myapp.triggers:new_files", "poll_interval": interval, "starts": "x"}
    errors = rejected({"slug": "watch", "kind": "trigger", "target": target})
    assert errors == {"target.poll_interval": "must be at least 1 second"}


def test_a_trigger_takes_no_schedule() -> None:
    target = {"callable": "m:f", "starts": "ingest"}
    errors = rejected({"slug": "w", "kind": "trigger", "schedule": "@hourly", "target": target})
    assert "schedule" in errors


def test_a_heartbeat_job_has_no_target() -> None:
    spec = parse_job_body({"slug": "backup-box", "kind": "heartbeat", "schedule": "@daily"})
    assert spec.target is None


def test_a_heartbeat_job_with_a_target_is_rejected() -> None:
    body = {"slug": "backup-box", "kind": "heartbeat", "target": {"url": "https://x.example/"}}
    assert "target" in rejected(body)


@pytest.mark.parametrize("kind", ["http", "command", "python", "workflow", "trigger"])
def test_every_executed_kind_needs_a_target(kind: str) -> None:
    assert "target" in rejected({"slug": "j", "kind": kind})


# --- Workflows ----------------------------------------------------------------------------


def http_step(name: str, *needs: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "http",
        "target": {"url": "https://x.example/"},
        "needs": [*needs],
    }


def workflow(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"slug": "etl", "kind": "workflow", "target": {"steps": list(steps)}}


def test_a_workflow_with_an_approval_gate_parses_and_validates_step_targets() -> None:
    spec = parse_job_body(
        workflow(
            http_step("extract"),
            {"name": "approve", "kind": "approval", "needs": ["extract"]},
            {
                "name": "load",
                "kind": "command",
                "target": {"command": ["load"]},
                "needs": ["approve"],
            },
        )
    )
    assert spec.target is not None
    extract, approve, load = spec.target["steps"]
    assert extract["target"]["method"] == "GET"
    assert approve["target"] is None
    assert load["target"]["shell"] is False


def test_duplicate_step_names_point_at_the_second_step() -> None:
    errors = rejected(workflow(http_step("a"), http_step("a")))
    assert "target.steps[1].name" in errors


def test_needing_an_unknown_step_points_at_the_needs_of_that_step() -> None:
    errors = rejected(workflow(http_step("a"), http_step("b", "nope")))
    assert errors == {"target.steps[1].needs": "unknown step 'nope'"}


def test_steps_that_need_each_other_are_a_cycle() -> None:
    errors = rejected(workflow(http_step("a", "b"), http_step("b", "a")))
    assert list(errors) == ["target.steps"]
    assert "cycle" in errors["target.steps"]


def test_an_approval_step_with_a_target_is_rejected() -> None:
    approval = {"name": "ok", "kind": "approval", "target": {"url": "https://x.example/"}}
    errors = rejected(workflow(http_step("a"), approval))
    assert "target.steps[1].target" in errors


def test_a_bad_step_target_is_reported_inside_that_step() -> None:
    bad = {"name": "b", "kind": "http", "target": {"url": "ftp://x.example/"}}
    errors = rejected(workflow(http_step("a"), bad))
    assert "target.steps[1].target.url" in errors


def test_a_step_of_an_unknown_kind_is_rejected() -> None:
    errors = rejected(workflow({"name": "a", "kind": "teleport"}))
    assert "target.steps[0].kind" in errors


def test_a_workflow_needs_at_least_one_step() -> None:
    assert "target.steps" in rejected(workflow())


# --- Fields and cross-field rules ----------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"slug": "Not A Slug"}, "slug"),
        ({"slug": "-edge"}, "slug"),
        ({"slug": "a" * 65}, "slug"),
        ({"kind": "ftp"}, "kind"),
        ({"schedule": "every tuesday-ish"}, "schedule"),
        ({"schedule": "0 0 31 2 *"}, "schedule"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "5 parsecs"}, "timeout"),
        ({"timeout": 10**400}, "timeout"),
        ({"retry": {"backoff": "soon"}}, "retry.backoff"),
        ({"retry": {"max_attempts": 0}}, "retry.max_attempts"),
        ({"retry": {"retry_on_statuses": [200, 999]}}, "retry.retry_on_statuses[1]"),
        ({"retry": {"backoff": "10s", "max_backoff": "1s"}}, "retry.max_backoff"),
        ({"concurrency": 0}, "concurrency"),
        ({"overlap": "sometimes"}, "overlap"),
        ({"catch_up": "everything"}, "catch_up"),
        ({"max_runtime": "1m", "min_runtime": "1m"}, "min_runtime"),
        ({"max_runtime": "1m", "min_runtime": "2m"}, "min_runtime"),
        ({"alerts": {"realert_every": "10s"}}, "alerts.realert_every"),
        ({"alerts": {"pager": True}}, "alerts.pager"),
        ({"tags": ["fine", "not fine"]}, "tags[1]"),
        ({"status": "deleted"}, "status"),
        ({"colour": "blue"}, "colour"),
        ({"target": {"url": "ftp://files.example.com/"}}, "target.url"),
        ({"target": {"url": "https://x.example/", "method": "BREW"}}, "target.method"),
        (
            {"target": {"url": "https://x.example/", "headers": {"X-A": "a\r\nb"}}},
            "target.headers.X-A",
        ),
        ({"target": {"url": "https://x.example/", "verb": "GET"}}, "target.verb"),
    ],
)
def test_a_bad_field_is_an_invalid_input_naming_that_field(
    changes: dict[str, Any], field: str
) -> None:
    errors = rejected(with_changes(MINIMAL_HTTP, **changes))
    assert field in errors, errors


def test_an_unknown_field_is_called_unknown() -> None:
    assert rejected(with_changes(MINIMAL_HTTP, colour="blue")) == {"colour": "unknown field"}


def test_every_bad_field_is_reported_at_once() -> None:
    errors = rejected(with_changes(MINIMAL_HTTP, slug="BAD", timeout=-1, overlap="x"))
    assert {"slug", "timeout", "overlap"} <= set(errors)


def test_min_runtime_shorter_than_max_runtime_is_accepted() -> None:
    spec = parse_job_body(with_changes(MINIMAL_HTTP, max_runtime="1h", min_runtime="30s"))
    assert (spec.min_runtime, spec.max_runtime) == (30, 3600)


@pytest.mark.parametrize("body", [[], "null", b"[1, 2]", 42, None])
def test_a_body_that_is_not_an_object_is_rejected_on_body(body: object) -> None:
    assert rejected(body) == {"body": "must be a JSON object"}


def test_a_body_that_is_not_json_is_a_malformed_body() -> None:
    with pytest.raises(MalformedBody) as caught:
        parse_job_body(b'{"slug": ')
    assert [error.field for error in caught.value.errors] == ["body"]


def test_a_deeply_nested_body_is_a_malformed_body_not_a_crash() -> None:
    with pytest.raises(InvalidInput):
        parse_job_body(b"[" * 100_000)


def test_valid_json_nested_past_32_levels_is_refused_but_moderate_nesting_is_fine() -> None:
    def body(depth: int) -> bytes:
        kwargs = "{" + '"a": {' * (depth - 4) + "}" * (depth - 4) + "}"
        return (
            '{"slug": "deep", "kind": "python", '
            f'"target": {{"callable": "m:f", "kwargs": {kwargs}}}}}'
        ).encode()

    assert parse_job_body(body(10)).target is not None
    with pytest.raises(MalformedBody, match="deeper than 32"):
        parse_job_body(body(40))


# --- Nothing but InvalidInput escapes -------------------------------------------------------

FIELDS = [*DESIGN_EXAMPLE, "queue", "status"]
TARGET_FIELDS = [
    *["method", "url", "headers", "body", "command", "shell", "cwd", "env", "callable", "kwargs"],
    *["poll_interval", "starts", "steps", "name", "kind", "target", "needs", "timeout"],
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(
        [
            *["http", "command", "python", "workflow", "heartbeat", "trigger", "approval"],
            *[
                "30s",
                "250ms",
                "1h",
                "-1",
                "nan",
                "1e400",
                "@hourly",
                "UTC",
                "Europe/Berlin",
                "m:f",
                "a",
                "b",
            ],
            "*/5 * * * *",
            "every 90s",
            "https://x.example/",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(TARGET_FIELDS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=20,
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), json_values, max_size=8))
def test_any_json_object_is_either_a_spec_or_an_invalid_input(body: dict[str, Any]) -> None:
    try:
        spec = parse_job_body(body)
    except InvalidInput as error:
        assert error.errors
        assert all(item.field for item in error.errors)
    else:
        assert isinstance(spec, JobSpec)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIELDS), json_values)
def test_one_field_of_a_valid_body_replaced_by_anything_gives_a_spec_or_names_it(
    field: str, value: object
) -> None:
    body = with_changes(DESIGN_EXAMPLE, **{field: value})
    try:
        parse_job_body(body)
    except InvalidInput as error:
        fields = {item.field.split(".")[0].split("[")[0] for item in error.errors}
        # Another kind makes the (http) target or the schedule wrong instead.
        partners = {"kind": {"target", "schedule"}}.get(field, set())
        assert fields <= {field} | partners, fields
        assert fields
