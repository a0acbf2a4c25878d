"""Summarise a py-spy `--format raw --threads` profile (collapsed stacks): what dominates.

`python -m bench.profile FILE [--top N]` prints, per group of threads (the event loop;
aiosqlite's connection threads, whose own time is time inside SQLite's C code):

- self time by component (the package of the innermost Python frame);
- Cronkeeper functions by inclusive share (time in them or below);
- the hottest functions by self share.

Shares are of that group's sampled busy time (py-spy leaves idle samples out).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict

_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_TRUNK = (
    "asyncio/runners.py",
    "asyncio/base_events.py",
    "asyncio/events.py",
    "cli/main.py",
    "cli/main_helpers.py",
    "threading.py",
    "typer/",
    "click/",
    "<module>",
)


def _split(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame)
    if not match:
        return frame, ""
    return match["name"], match["file"]


def _short_path(path: str) -> str:
    for marker in ("site-packages/", "src/", "lib/python3.11/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _component(path: str) -> str:
    """`cronkeeper/<layer>`, or the top-level module of a library (py-spy shortens paths
    to the module's own, e.g. `sqlalchemy/engine/base.py`, `selectors.py`)."""
    short = _short_path(path)
    if not short:
        return "?"
    parts = short.split("/")
    if parts[0] == "cronkeeper":
        return "/".join(parts[:2]) if len(parts) > 2 else "cronkeeper"
    return parts[0].removesuffix(".py")


def _group(thread: str) -> str:
    if "_connection_worker_thread" in thread:
        return "aiosqlite connection threads (self time here = inside SQLite)"
    if "MainThread" in thread:
        return "main thread (event loop)"
    return re.sub(r"\(\d+\)|Thread-\d+", "", thread).strip() or thread


def load(path: str) -> dict[str, Counter[tuple[str, ...]]]:
    """thread group -> Counter of stacks (root first, frames as `name (short path)`)."""
    groups: dict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
    with open(path) as raw:
        for line in raw:
            line = line.rstrip("\n")
            if not line:
                continue
            stack_text, _, count = line.rpartition(" ")
            frames = stack_text.split(";")
            thread = "all"
            while frames and frames[0].startswith(("thread ", "process ")):
                thread = frames.pop(0)
            groups[_group(thread)][tuple(frames)] += int(count)
    return groups


def summarise(path: str, top: int = 12, min_share: float = 0.015) -> list[str]:
    """Lines describing where each thread group spent its sampled time."""
    try:
        groups = load(path)
    except OSError as error:
        return [f"    (no profile: {error})"]
    grand = sum(sum(stacks.values()) for stacks in groups.values()) or 1
    lines = []
    for group, stacks in sorted(groups.items(), key=lambda kv: -sum(kv[1].values())):
        total = sum(stacks.values())
        if total < grand * 0.03:
            continue
        components: Counter[str] = Counter()
        own: Counter[str] = Counter()
        ours: Counter[str] = Counter()
        for stack, count in stacks.items():
            if not stack:
                continue
            name, file = _split(stack[-1])
            components[_component(file)] += count
            own[f"{name} ({_short_path(file)})"] += count
            seen = set()
            for frame in stack:
                name, file = _split(frame)
                short = _short_path(file)
                if "cronkeeper/" in short:
                    label = f"{name} ({short})"
                    if label not in seen and not any(t in short for t in _TRUNK):
                        seen.add(label)
                        ours[label] += count
        lines.append(f"  [{group}] {total} samples ({total / grand:.0%} of all sampled)")
        lines.append("    self time by component:")
        lines += [
            f"      {count / total:6.1%}  {name}"
            for name, count in components.most_common(top)
            if count / total >= min_share
        ]
        if ours:
            lines.append("    Cronkeeper functions, inclusive:")
            lines += [
                f"      {count / total:6.1%}  {name}"
                for name, count in ours.most_common(top + 4)
                if count / total >= min_share
            ]
        lines.append("    hottest functions, self:")
        lines += [
            f"      {count / total:6.1%}  {name}"
            for name, count in own.most_common(top)
            if count / total >= min_share
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    print("\n".join(summarise(args.file, args.top)))


if __name__ == "__main__":
    main()
