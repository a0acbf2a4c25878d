"""The run state machine: one table of legal moves, and nothing ever leaves a final state."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from cronkeeper.domain.states import (
    ACTIVE_RUN_STATES,
    RUN_TRANSITIONS,
    TERMINAL_RUN_STATES,
    KeyRole,
    RunStatus,
    is_final,
    transition,
)
from cronkeeper.errors import IllegalTransition

ALL_STATES = list(RunStatus)
LEGAL_MOVES = [(old, new) for old, exits in RUN_TRANSITIONS.items() for new in exits]
ILLEGAL_MOVES = [
    (old, new) for old in RunStatus for new in RunStatus if new not in RUN_TRANSITIONS[old]
]


def test_every_state_has_a_row_in_the_transition_table() -> None:
    assert set(RUN_TRANSITIONS) == set(RunStatus)


def test_final_states_are_exactly_those_outside_queued_running_suspended() -> None:
    assert {RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUSPENDED} == ACTIVE_RUN_STATES
    assert {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.MISSED,
        RunStatus.SKIPPED,
    } == TERMINAL_RUN_STATES


@pytest.mark.parametrize("state", sorted(TERMINAL_RUN_STATES))
def test_a_final_state_has_no_way_out(state: RunStatus) -> None:
    assert RUN_TRANSITIONS[state] == frozenset()
    assert is_final(state)


@pytest.mark.parametrize("state", sorted(ACTIVE_RUN_STATES))
def test_an_active_state_can_still_move_and_is_not_final(state: RunStatus) -> None:
    assert RUN_TRANSITIONS[state]
    assert not is_final(state)


@pytest.mark.parametrize(("old", "new"), LEGAL_MOVES)
def test_a_legal_move_returns_the_new_state(old: RunStatus, new: RunStatus) -> None:
    assert transition(old, new) is new


@pytest.mark.parametrize(("old", "new"), ILLEGAL_MOVES)
def test_an_illegal_move_raises_illegal_transition(old: RunStatus, new: RunStatus) -> None:
    with pytest.raises(IllegalTransition, match=f"{old.value} run cannot become {new.value}"):
        transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (RunStatus.QUEUED, RunStatus.RUNNING),
        (RunStatus.RUNNING, RunStatus.SUCCEEDED),
        (RunStatus.RUNNING, RunStatus.FAILED),
        (RunStatus.RUNNING, RunStatus.SUSPENDED),
        (RunStatus.RUNNING, RunStatus.QUEUED),
        (RunStatus.SUSPENDED, RunStatus.QUEUED),
        (RunStatus.QUEUED, RunStatus.CANCELLED),
    ],
)
def test_the_lifecycle_of_design_section_2_is_allowed(old: RunStatus, new: RunStatus) -> None:
    assert transition(old, new) is new


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (RunStatus.SUCCEEDED, RunStatus.RUNNING),
        (RunStatus.FAILED, RunStatus.QUEUED),
        (RunStatus.QUEUED, RunStatus.SUCCEEDED),
        (RunStatus.MISSED, RunStatus.RUNNING),
        (RunStatus.CANCELLED, RunStatus.CANCELLED),
    ],
)
def test_moves_that_skip_running_or_revive_a_run_are_refused(
    old: RunStatus, new: RunStatus
) -> None:
    with pytest.raises(IllegalTransition):
        transition(old, new)


@given(st.lists(st.integers(min_value=0, max_value=100), max_size=30))
def test_a_random_walk_of_legal_moves_ends_where_is_final_says(choices: list[int]) -> None:
    state = RunStatus.QUEUED
    for choice in choices:
        exits = sorted(RUN_TRANSITIONS[state])
        if not exits:
            break
        state = transition(state, exits[choice % len(exits)])
    assert is_final(state) == (not RUN_TRANSITIONS[state])


class RunLifecycle(RuleBasedStateMachine):
    """Throws arbitrary moves at one run; only legal ones stick, finals never change."""

    def __init__(self) -> None:
        super().__init__()
        self.state = RunStatus.QUEUED
        self.became_final = False

    @rule(new=st.sampled_from(ALL_STATES))
    def attempt_a_move(self, new: RunStatus) -> None:
        before = self.state
        if new in RUN_TRANSITIONS[before]:
            assert not self.became_final, "a final run moved"
            self.state = transition(before, new)
        else:
            with pytest.raises(IllegalTransition):
                transition(before, new)
            assert self.state is before
        self.became_final = self.became_final or is_final(self.state)

    @invariant()
    def final_runs_stay_final(self) -> None:
        if self.became_final:
            assert is_final(self.state)
            for new in RunStatus:
                with pytest.raises(IllegalTransition):
                    transition(self.state, new)


TestRunLifecycle = RunLifecycle.TestCase


@pytest.mark.parametrize(
    ("role", "needed", "allowed"),
    [
        (KeyRole.READ, KeyRole.READ, True),
        (KeyRole.READ, KeyRole.WRITE, False),
        (KeyRole.READ, KeyRole.ADMIN, False),
        (KeyRole.WRITE, KeyRole.READ, True),
        (KeyRole.WRITE, KeyRole.WRITE, True),
        (KeyRole.WRITE, KeyRole.ADMIN, False),
        (KeyRole.ADMIN, KeyRole.READ, True),
        (KeyRole.ADMIN, KeyRole.WRITE, True),
        (KeyRole.ADMIN, KeyRole.ADMIN, True),
    ],
)
def test_a_role_allows_itself_and_every_weaker_role(
    role: KeyRole, needed: KeyRole, allowed: bool
) -> None:
    assert role.allows(needed) is allowed
