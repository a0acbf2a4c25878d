"""`cronkeeper runs <slug> --watch` against a real server: every run that ends after the
watch began is printed once, however many end between two polls and however long ago
they started; nothing that ended before, nothing twice.

The watch runs in this process with its clock swapped for `ScriptedPolls`: the pause
before each poll runs the test's next step (heartbeat pings, which the server commits
before it answers) instead of waiting, and after the last step it is Ctrl-C.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronkeeper.cli import runs as runs_cli
from cronkeeper.cli import watch
from cronkeeper.cli.watch import Tail

from .conftest import ANSI_ESCAPE, Cli, Project, Result, Server, data, ok

Step = Callable[[], None]


class ScriptedPolls:
    """The watch's clock: each pause runs the next step at once; after the last, Ctrl-C."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        if not self.steps:
            raise KeyboardInterrupt
        self.steps.pop(0)()


class Heartbeat:
    """The heartbeat job `busy` of the test's project: its pings, and its runs as the API
    lists them."""

    def __init__(self, http: httpx.Client, ping_url: str, runs_url: str) -> None:
        self.http, self.ping_url, self.runs_url = http, ping_url, runs_url

    def ping(self, kind: str = "", rid: str | None = None) -> None:
        """`kind`: "" (success), "start", "fail" or an exit status."""
        url = f"{self.ping_url}/{kind}" if kind else self.ping_url
        answer = self.http.get(url, params={"rid": rid} if rid else None)
        assert answer.status_code == 200, answer.text

    def succeed(self, count: int) -> None:
        for _ in range(count):
            self.ping()

    def runs(self) -> list[dict[str, Any]]:
        """Every run of the job, oldest first."""
        found: list[dict[str, Any]] = []
        params = {"limit": "100", "order": "asc"}
        while True:
            page = self.http.get(self.runs_url, params=params).raise_for_status().json()["data"]
            found += page["items"]
            if not page["next_cursor"]:
                return found
            params["cursor"] = page["next_cursor"]


@pytest.fixture
def ck(cli: Cli, api_env: Project) -> Cli:
    def invoke(*argv: str) -> Result:
        return cli(*argv, "--project", api_env.slug)

    return invoke


@pytest.fixture
def heartbeat(ck: Cli, server: Server, api_env: Project, tmp_path: Path) -> Iterator[Heartbeat]:
    path = tmp_path / "busy.json"
    path.write_text(json.dumps({"slug": "busy", "kind": "heartbeat", "schedule": "@daily"}))
    ok(ck("jobs", "create", "-f", str(path)))
    ping_uuid = data(ck("jobs", "show", "busy", "--json"))["ping_uuid"]
    runs_url = f"{server.url}/api/v1/projects/{api_env.slug}/jobs/busy/runs"
    headers = {"Authorization": f"Bearer {api_env.key}"}
    with httpx.Client(timeout=10, headers=headers) as http:
        yield Heartbeat(http, f"{server.url}/ping/{ping_uuid}", runs_url)


def watched(ck: Cli, monkeypatch: pytest.MonkeyPatch, *options: str, steps: list[Step]) -> Result:
    """`runs busy --watch OPTIONS` with one step before each poll, then Ctrl-C."""
    monkeypatch.setattr(runs_cli, "watch_clock", ScriptedPolls(*steps))
    result = ck("runs", "busy", "--watch", *options)
    assert (result.code, result.err) == (130, ""), result.err  # Ctrl-C: quiet, 130
    assert ANSI_ESCAPE not in result.out
    return result


def json_lines(result: Result) -> list[dict[str, Any]]:
    """The runs of a `--watch --json` stream: one envelope a line."""
    envelopes = [json.loads(line) for line in result.out.splitlines()]
    assert all(set(envelope) == {"data"} for envelope in envelopes)
    return [envelope["data"] for envelope in envelopes]


def ids(runs: list[dict[str, Any]]) -> list[str]:
    return [run["id"] for run in runs]


def test_watch_prints_every_run_that_ends_between_two_polls_once_past_a_page(
    ck: Cli, heartbeat: Heartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    heartbeat.succeed(3)
    before = ids(heartbeat.runs())

    def storm() -> None:
        for number in range(70):
            heartbeat.ping("fail" if number % 7 == 0 else "")

    result = watched(ck, monkeypatch, "--json", steps=[storm, lambda: None])

    printed = json_lines(result)
    shown, tail = printed[:3], printed[3:]
    new = [run for run in heartbeat.runs() if run["id"] not in before]
    assert sorted(ids(shown)) == sorted(before)
    assert len(new) == 70
    assert sorted(ids(tail)) == sorted(ids(new))  # each once, none from before
    finished = [run["finished_at"] for run in tail]
    assert finished == sorted(finished, key=watch.moment)  # in the order they ended
    assert sum(run["status"] == "failed" for run in tail) == 10


def test_watch_prints_long_running_runs_when_they_end_however_long_ago_they_started(
    ck: Cli, heartbeat: Heartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No grace window: runs started seconds ago are as far behind it as yesterday's.
    monkeypatch.setattr(watch, "GRACE", timedelta(0))
    rids = [str(uuid.uuid4()) for _ in range(5)]
    for rid in rids:
        heartbeat.ping("start", rid)
    heartbeat.succeed(60)  # the long runs are now far past the newest page
    before = ids(heartbeat.runs())
    long = before[:5]

    def first_two_end() -> None:  # 5 to follow: read through the lists of active runs
        heartbeat.ping("", rids[0])
        heartbeat.ping("fail", rids[1])
        heartbeat.succeed(2)

    steps = [
        first_two_end,
        lambda: heartbeat.ping("3", rids[2]),  # 3 to follow: looked up by id
        lambda: None,
        lambda: heartbeat.ping("", rids[3]),
    ]
    result = watched(ck, monkeypatch, "--json", "--limit", "5", steps=steps)

    tail = json_lines(result)[5:]
    new = [run["id"] for run in heartbeat.runs() if run["id"] not in before]
    assert ids(tail) == [long[0], long[1], *new, long[2], long[3]]
    statuses = [run["status"] for run in tail]
    assert statuses == ["succeeded", "failed", "succeeded", "succeeded", "failed", "succeeded"]
    assert "attempt_details" not in tail[-1]  # looked up by id, printed like a listed run


def test_watch_with_status_failed_prints_only_failures_as_cards(
    ck: Cli, heartbeat: Heartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = str(uuid.uuid4())
    heartbeat.ping("start", rid)
    heartbeat.ping("fail")
    heartbeat.succeed(1)
    before = set(ids(heartbeat.runs()))

    def storm() -> None:  # more failures than a page, between successes
        for number in range(110):
            heartbeat.ping("" if number % 2 else "fail")

    steps = [storm, lambda: heartbeat.ping("fail", rid)]
    result = watched(ck, monkeypatch, "--status", "failed", "--detail", steps=steps)

    runs = heartbeat.runs()
    failed = [run["id"] for run in runs if run["status"] == "failed"]
    succeeded = [run["id"] for run in runs if run["status"] == "succeeded"]
    assert len(failed) == 1 + 55 + 1
    assert result.out.count("╭") == len(failed)  # the one shown at start, then each new
    assert result.out.count("busy · failed") == len(failed)
    assert "succeeded" not in result.out
    assert all(result.out.count(run_id) == 1 for run_id in failed)
    assert not any(run_id in result.out for run_id in succeeded)
    long = ids(runs)[0]  # started before the watch, failed after the storm
    in_storm = [run_id for run_id in failed if run_id not in before]
    assert result.out.index(long) > max(result.out.index(run_id) for run_id in in_storm)


def test_watch_prints_nothing_twice_and_nothing_that_ended_before_it_began(
    ck: Cli, heartbeat: Heartbeat, monkeypatch: pytest.MonkeyPatch
) -> None:
    heartbeat.succeed(3)
    before = ids(heartbeat.runs())
    rid = str(uuid.uuid4())

    def start_one_and_end_three() -> None:
        heartbeat.ping("start", rid)
        heartbeat.succeed(3)

    def end_it_and_two_more() -> None:
        heartbeat.ping("", rid)
        heartbeat.succeed(2)

    steps = [start_one_and_end_three, lambda: None, end_it_and_two_more, lambda: None]
    result = watched(ck, monkeypatch, "--limit", "1", steps=steps)

    new = [run_id for run_id in ids(heartbeat.runs()) if run_id not in before]
    assert len(new) == 6
    assert [result.out.count(run_id) for run_id in before] == [0, 0, 1]  # the newest, shown
    assert [result.out.count(run_id) for run_id in new] == [1] * 6
    positions = [result.out.index(run_id) for run_id in new[1:4]]
    assert positions == sorted(positions)
    assert result.out.index(new[0]) > max(positions)  # the started run, when it ended


# --- the tail's bookkeeping, without a server ----------------------------------------------


def listed(run_id: str, status: str, created: int, finished: int | None = None) -> dict[str, Any]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ended = None if finished is None else (start + timedelta(seconds=finished)).isoformat()
    at = (start + timedelta(seconds=created)).isoformat()
    return {"id": run_id, "status": status, "created_at": at, "finished_at": ended}


def test_a_run_written_after_a_newer_one_is_still_printed_within_the_grace() -> None:
    tail = Tail(timedelta(seconds=10))
    assert ids(tail.begin([listed("old", "succeeded", 0, 1)])) == []

    newer = listed("newer", "succeeded", 100, 101)
    assert ids(tail.take([newer])) == ["newer"]
    late = listed("late", "failed", 95, 102)  # created before `newer`, committed after
    assert tail.window_start() == datetime(2026, 1, 1, 0, 1, 30, tzinfo=UTC)
    assert ids(tail.take([late, newer])) == ["late"]
    assert ids(tail.take([late, newer])) == []


def test_settled_runs_are_forgotten_once_the_window_has_passed_them() -> None:
    tail = Tail(timedelta(seconds=10))
    tail.take([listed("a", "succeeded", 0, 1), listed("long", "running", 0)])
    tail.take([listed("b", "succeeded", 60, 61)])

    tail.forget_old()

    assert set(tail.settled) == {"b"}
    assert tail.active_before(tail.window_start()) == ["long"]
    assert ids(tail.take([listed("long", "failed", 0, 70)])) == ["long"]
    assert tail.active == {}
