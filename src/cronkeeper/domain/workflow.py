"""Workflow step graphs: validation now; scheduling of runnable steps arrives with the runtime."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cronkeeper.errors import FieldError


def check_step_graph(steps: Sequence[Mapping[str, object]]) -> list[FieldError]:
    """Names unique, every `needs` names an existing step, and the graph has no cycle."""
    errors: list[FieldError] = []
    names = [str(step.get("name")) for step in steps]
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            errors.append(FieldError(f"target.steps[{index}].name", f"duplicate step {name!r}"))
        seen.add(name)
    needs = {name: [str(n) for n in _needs(step)] for name, step in zip(names, steps, strict=True)}
    for index, name in enumerate(names):
        for need in needs[name]:
            if need not in needs:
                errors.append(FieldError(f"target.steps[{index}].needs", f"unknown step {need!r}"))
    if not errors and (cycle := _find_cycle(needs)):
        errors.append(
            FieldError(
                "target.steps", "steps depend on each other in a cycle: " + " → ".join(cycle)
            )
        )
    return errors


def _needs(step: Mapping[str, object]) -> list[object]:
    value = step.get("needs") or []
    return list(value) if isinstance(value, list | tuple) else []


def _find_cycle(needs: dict[str, list[str]]) -> list[str] | None:
    """A list of step names forming a cycle, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for need in needs[name]:
            if state.get(need) == 1:
                return [*path[path.index(need) :], need]
            if need not in state and (cycle := visit(need)):
                return cycle
        state[name] = 2
        path.pop()
        return None

    for name in needs:
        if name not in state and (cycle := visit(name)):
            return cycle
    return None
