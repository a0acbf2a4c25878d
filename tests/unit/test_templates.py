"""`{{ name }}` placeholders in HTTP bodies: plain substitution, never code."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from cronkeeper.domain.outcomes import AttemptRequest
from cronkeeper.domain.templates import attempt_variables, iso_utc, render_template

RUN_ID = uuid.UUID("0190a6b2-7c3e-7000-8000-000000000001")


def make_request(**changes: object) -> AttemptRequest:
    fields: dict[str, object] = {
        "run_id": RUN_ID,
        "project": "default",
        "job_slug": "nightly-report",
        "job_name": "Nightly report",
        "kind": "http",
        "target": {"url": "https://example.com/"},
        "timeout": 30.0,
        "attempt": 2,
        "max_attempts": 3,
        "scheduled_for": datetime(2024, 5, 1, 2, 0, tzinfo=UTC),
        "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        "payload": {"file": "a.csv", "rows": [1, 2]},
    }
    fields.update(changes)
    return AttemptRequest(**fields)  # type: ignore[arg-type]


def test_the_body_of_the_design_example_renders() -> None:
    body = '{"job": "{{ job.slug }}", "slot": "{{ scheduled_for }}"}'
    rendered = render_template(body, attempt_variables(make_request()))
    assert json.loads(rendered) == {"job": "nightly-report", "slot": "2024-05-01T02:00:00Z"}


def test_every_attempt_variable_is_available() -> None:
    text = "{{run.id}}|{{ job.slug }}|{{job.name }}|{{ project}}|{{ attempt }}|{{ scheduled_for }}"
    rendered = render_template(text, attempt_variables(make_request()))
    assert rendered == f"{RUN_ID}|nightly-report|Nightly report|default|2|2024-05-01T02:00:00Z"


def test_a_run_without_a_slot_renders_scheduled_for_as_empty() -> None:
    rendered = render_template(
        "[{{ scheduled_for }}]", attempt_variables(make_request(scheduled_for=None))
    )
    assert rendered == "[]"


def test_non_strings_render_as_json_and_none_as_empty() -> None:
    variables = {"payload": {"file": "a.csv"}, "n": 3, "flag": True, "nothing": None, "s": "x"}
    rendered = render_template("{{payload}} {{n}} {{flag}} [{{nothing}}] {{s}}", variables)
    assert rendered == '{"file": "a.csv"} 3 true [] x'


def test_dotted_paths_reach_into_the_payload() -> None:
    variables = attempt_variables(make_request())
    assert render_template("{{ payload.file }} {{ payload.rows.1 }}", variables) == "a.csv 2"


def test_unknown_placeholders_are_left_as_written() -> None:
    text = "{{ nope }} {{ job.nope }} {{ payload.rows.9 }} {{ job.slug.more }} {{ 1 + 1 }} {{}}"
    assert render_template(text, attempt_variables(make_request())) == text


def test_a_flat_dotted_key_wins_over_nesting() -> None:
    assert render_template("{{ a.b }}", {"a.b": "flat", "a": {"b": "nested"}}) == "flat"


def test_templates_cannot_run_code() -> None:
    text = "{{ __import__('os').system('true') }} {% for x in y %}{{ x }}{% endfor %}"
    assert (
        render_template(text, {"x": "X"})
        == "{{ __import__('os').system('true') }} {% for x in y %}X{% endfor %}"
    )


def test_substituted_values_are_not_rendered_again() -> None:
    assert render_template("{{ a }}", {"a": "{{ b }}", "b": "no"}) == "{{ b }}"


def test_scheduled_for_is_converted_to_utc() -> None:
    berlin = timezone(timedelta(hours=2))
    assert iso_utc(datetime(2024, 5, 1, 4, 0, 30, tzinfo=berlin)) == "2024-05-01T02:00:30Z"
    assert iso_utc(None) == ""


@given(st.text().filter(lambda text: "{{" not in text))
def test_text_without_placeholders_is_unchanged(text: str) -> None:
    assert render_template(text, {"a": 1}) == text


@given(
    st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
    st.text(),
    st.sampled_from(["", " ", "  "]),
)
def test_a_known_name_is_replaced_whatever_the_spacing(name: str, value: str, pad: str) -> None:
    assert render_template("<{{" + pad + name + pad + "}}>", {name: value}) == f"<{value}>"
