"""The failure taxonomy: every reason carries the one line the CLI and the UI show."""

from __future__ import annotations

import pytest

from cronkeeper.domain.failures import EXPLANATIONS, FailureReason, explain

DESIGN_REASONS = [
    "timeout",
    "dns",
    "connection",
    "tls",
    "http_4xx",
    "http_5xx",
    "ssrf_blocked",
    "blocked_hostname",
    "blocked_ip",
    "destination_unresolvable",
    "credential",
    "protocol",
    "exit_code",
    "signal",
    "exception",
    "max_runtime",
    "too_fast",
    "node_lost",
    "missed",
    "rejected",
    "unknown",
]


def test_the_taxonomy_is_exactly_the_closed_list_of_design_section_2() -> None:
    assert sorted(reason.value for reason in FailureReason) == sorted(DESIGN_REASONS)


@pytest.mark.parametrize("reason", list(FailureReason))
def test_every_failure_reason_has_a_one_line_explanation(reason: FailureReason) -> None:
    line = explain(reason)
    assert line.strip()
    assert "\n" not in line
    assert line.endswith(".")


@pytest.mark.parametrize("reason", list(FailureReason))
def test_a_reason_given_as_plain_text_is_explained_the_same(reason: FailureReason) -> None:
    assert explain(reason.value) == EXPLANATIONS[reason]


def test_explanations_are_distinct_so_each_says_something_specific() -> None:
    assert len(set(EXPLANATIONS.values())) == len(FailureReason)


@pytest.mark.parametrize("text", ["cosmic_rays", "", "TIMEOUT", "http_418"])
def test_an_unknown_reason_gets_the_unknown_explanation(text: str) -> None:
    assert explain(text) == EXPLANATIONS[FailureReason.UNKNOWN]
