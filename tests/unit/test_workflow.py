"""Workflow step graphs: unique names, known `needs`, no cycles; errors name the step."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cronkeeper.domain.workflow import check_step_graph
from cronkeeper.errors import FieldError


def step(name: str, *needs: str) -> dict[str, Any]:
    return {"name": name, "kind": "http", "needs": list(needs)}


def test_a_chain_and_a_diamond_are_valid() -> None:
    assert check_step_graph([step("a"), step("b", "a"), step("c", "b")]) == []
    diamond = [step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c")]
    assert check_step_graph(diamond) == []


def test_steps_may_be_listed_before_the_steps_they_need() -> None:
    assert check_step_graph([step("load", "extract"), step("extract")]) == []


def test_a_step_without_needs_is_valid_alone() -> None:
    assert check_step_graph([{"name": "only", "kind": "approval"}]) == []


def test_a_duplicate_step_name_is_reported_at_the_second_occurrence() -> None:
    errors = check_step_graph([step("a"), step("b"), step("a")])
    assert errors == [FieldError("target.steps[2].name", "duplicate step 'a'")]


def test_needing_an_unknown_step_names_the_step_and_the_missing_name() -> None:
    errors = check_step_graph([step("a"), step("b", "a", "ghost")])
    assert errors == [FieldError("target.steps[1].needs", "unknown step 'ghost'")]


def test_a_cycle_is_reported_with_its_path() -> None:
    errors = check_step_graph([step("a", "c"), step("b", "a"), step("c", "b")])
    assert len(errors) == 1
    assert errors[0].field == "target.steps"
    assert "cycle" in errors[0].message
    for name in "abc":
        assert name in errors[0].message


def test_a_step_that_needs_itself_is_a_cycle() -> None:
    errors = check_step_graph([step("a", "a")])
    assert [error.field for error in errors] == ["target.steps"]
    assert "a → a" in errors[0].message


@given(st.integers(min_value=1, max_value=30))
def test_a_chain_of_any_length_is_valid_until_its_ends_are_joined(length: int) -> None:
    names = [f"s{i}" for i in range(length)]
    chain = [step(names[0])] + [step(name, before) for before, name in pairwise(names)]
    assert check_step_graph(chain) == []
    chain[0] = step(names[0], names[-1])
    assert [error.field for error in check_step_graph(chain)] == ["target.steps"]


@given(st.data())
def test_needs_that_only_point_backwards_never_make_a_cycle(data: st.DataObject) -> None:
    count = data.draw(st.integers(min_value=1, max_value=15))
    steps = []
    for index in range(count):
        earlier = [f"s{i}" for i in range(index)]
        needs = data.draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier else []
        steps.append(step(f"s{index}", *needs))
    assert check_step_graph(steps) == []
