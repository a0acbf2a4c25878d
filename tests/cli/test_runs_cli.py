"""`cronkeeper runs …` and `cronkeeper run …` against a real server that really runs the
jobs (command jobs on its own worker): what a user types and what they see."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    CRONKEEPER,
    Cli,
    Project,
    Result,
    Server,
    assert_one_error_line,
    clean_env,
    data,
    ok,
)

FINAL = {"succeeded", "failed", "cancelled", "skipped", "missed"}
DESIGN_COLUMNS = [
    "STATUS",
    "TRIGGERED BY",
    "ATTEMPT",
    "SCHEDULED FOR",
    "STARTED",
    "FINISHED",
    "DURATION",
    "DRIFT",
    "FAILURE",
]


@pytest.fixture
def ck(cli: Cli, api_env: Project) -> Cli:
    """`ck(...)` = `cli(...)` in the test's own project, its key in the environment."""

    def invoke(*argv: str) -> Result:
        return cli(*argv, "--project", api_env.slug)

    return invoke


def create(ck: Cli, tmp_path: Path, slug: str, command: str, **fields: Any) -> None:
    body = {"slug": slug, "kind": "command", "target": {"command": command, "shell": True}}
    body.update(fields)
    path = tmp_path / f"{slug}.json"
    path.write_text(json.dumps(body))
    ok(ck("jobs", "create", "-f", str(path)))


def trigger(ck: Cli, slug: str, *options: str) -> str:
    run = data(ck("jobs", "trigger", slug, "--json", *options))
    assert run["source"] == "manual"
    run_id: str = run["id"]
    return run_id


def wait_for(ck: Cli, run_id: str, statuses: set[str] = FINAL) -> dict[str, Any]:
    """Poll `run show --json` until the run reaches one of `statuses` (deadline 20 s)."""
    deadline = time.monotonic() + 20
    while True:
        run: dict[str, Any] = data(ck("run", "show", run_id, "--json"))
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, f"run {run_id} stayed {run['status']}"
        time.sleep(0.05)  # polling a real server


def table_rows(out: str) -> tuple[list[str], list[list[str]]]:
    """The header cells and the data rows' cells of a printed table (rules dropped)."""
    lines = [line for line in out.splitlines() if line.strip() and not set(line) <= set("━─╇┼ ")]
    cells = [[cell.strip() for cell in re.split("[│┃]", line)] for line in lines]
    return cells[0], cells[1:]


# --- cronkeeper runs <slug> ----------------------------------------------------------------


def test_runs_prints_a_table_with_the_design_columns_newest_first(ck: Cli, tmp_path: Path) -> None:
    create(ck, tmp_path, "hello", "echo hi")
    first = wait_for(ck, trigger(ck, "hello"))
    second = wait_for(ck, trigger(ck, "hello"))

    result = ok(ck("runs", "hello"))

    header, rows = table_rows(result.out)
    assert header[: len(DESIGN_COLUMNS)] == DESIGN_COLUMNS
    by_column = [dict(zip(header, row, strict=True)) for row in rows]
    assert [row["RUN ID"] for row in by_column] == [second["id"], first["id"]]
    for row in by_column:
        assert (row["STATUS"], row["TRIGGERED BY"], row["ATTEMPT"]) == (
            "succeeded",
            "manual",
            "1/3",
        )
        assert row["SCHEDULED FOR"] == "-"  # a manual run has no slot
        assert row["STARTED"].endswith("Z")
        assert row["FINISHED"].endswith("Z")
        assert row["DURATION"].endswith(("ms", "s"))
        assert row["FAILURE"] == "-"


def test_runs_filters_by_status_and_limits_the_count(ck: Cli, tmp_path: Path) -> None:
    # Fails the first time (no marker file yet), succeeds after.
    marker = tmp_path / "marker"
    command = f"test -f {marker} || {{ touch {marker}; echo first time >&2; exit 4; }}"
    create(ck, tmp_path, "moody", command, retry={"max_attempts": 1})
    failed = wait_for(ck, trigger(ck, "moody"))
    succeeded = wait_for(ck, trigger(ck, "moody"))
    assert (failed["status"], succeeded["status"]) == ("failed", "succeeded")

    only_failed = ok(ck("runs", "moody", "--status", "failed"))
    newest = ok(ck("runs", "moody", "--limit", "1"))
    none = ok(ck("runs", "moody", "--status", "cancelled"))

    header, rows = table_rows(only_failed.out)
    [row] = [dict(zip(header, cells, strict=True)) for cells in rows]
    assert (row["RUN ID"], row["STATUS"], row["FAILURE"]) == (failed["id"], "failed", "exit_code")
    _, rows = table_rows(newest.out)
    assert [cells[-1] for cells in rows] == [succeeded["id"]]
    assert none.out.strip() == "No runs match."


def test_runs_detail_prints_bordered_cards_with_the_failure_explained_and_the_payload(
    ck: Cli, tmp_path: Path
) -> None:
    create(ck, tmp_path, "broken", "echo oops; exit 2", retry={"max_attempts": 1})
    run_id = trigger(ck, "broken", "--payload", '{"table": "users"}')
    failed = wait_for(ck, run_id)

    result = ok(ck("runs", "broken", "--detail"))

    assert result.out.lstrip().startswith("╭")
    assert "╰" in result.out
    assert "broken · failed" in result.out
    assert "exit_code" in result.out
    assert failed["failure_explanation"] in result.out
    assert '"table": "users"' in result.out
    assert '"input"' in result.out
    assert run_id in result.out
    assert "attempt 1" in result.out


def test_runs_json_is_the_api_envelope(ck: Cli, tmp_path: Path) -> None:
    create(ck, tmp_path, "hello", "echo hi")
    run_id = trigger(ck, "hello")
    wait_for(ck, run_id)

    page = data(ck("runs", "hello", "--json"))

    assert set(page) == {"items", "next_cursor"}
    [run] = page["items"]
    assert (run["id"], run["job"], run["status"]) == (run_id, "hello", "succeeded")


def test_runs_of_an_unknown_job_is_one_error_line_and_exit_1(ck: Cli) -> None:
    result = ck("runs", "no-such-job")

    assert result.code == 1
    assert "no-such-job" in assert_one_error_line(result)


# --- cronkeeper run show | replay | cancel --------------------------------------------------


def test_run_show_with_events_prints_the_card_and_the_event_log(ck: Cli, tmp_path: Path) -> None:
    create(ck, tmp_path, "hello", "echo hi")
    run_id = trigger(ck, "hello")
    wait_for(ck, run_id)

    shown = ok(ck("run", "show", run_id, "--events"))
    as_json = data(ck("run", "show", run_id, "--events", "--json"))

    assert "hello · succeeded" in shown.out
    header, _ = table_rows(shown.out.split("╯", 1)[1])
    assert header == ["#", "AT", "EVENT", "MESSAGE"]
    events = ["run_queued", "attempt_started", "attempt_succeeded", "run_succeeded"]
    positions = [shown.out.index(event) for event in events]
    assert positions == sorted(positions)
    assert [event["type"] for event in as_json["events"]] == events
    assert as_json["attempt_details"][0]["body_preview"] == "hi\n"


def test_run_replay_queues_a_new_run_of_the_same_job(ck: Cli, tmp_path: Path) -> None:
    create(ck, tmp_path, "hello", "echo hi")
    original = trigger(ck, "hello", "--payload", '{"n": 1}')
    wait_for(ck, original)

    message = ok(ck("run", "replay", original))
    replay_id = message.out.split()[2]
    replay = wait_for(ck, replay_id)

    assert message.out.strip() == f"queued replay {replay_id} of run {original}"
    assert replay["source"] == "replay"
    assert replay["replay_of"] == original
    assert replay["payload"]["input"] == {"n": 1}
    again = data(ck("run", "replay", original, "--json"))
    assert again["replay_of"] == original


def test_run_cancel_cancels_and_cancelling_a_finished_run_is_one_error_line(
    ck: Cli, tmp_path: Path
) -> None:
    create(ck, tmp_path, "long", "sleep 30", overlap="queue")
    running = trigger(ck, "long")
    wait_for(ck, running, {"running"})
    waiting = trigger(ck, "long")  # waits behind the running one (overlap queue)
    assert data(ck("run", "show", waiting, "--json"))["status"] == "queued"

    cancelled = ok(ck("run", "cancel", waiting))
    as_json = data(ck("run", "cancel", running, "--json"))

    assert cancelled.out.strip() == f"cancelled run {waiting}"
    assert as_json["status"] == "cancelled"
    assert wait_for(ck, running)["status"] == "cancelled"
    again = ck("run", "cancel", waiting)
    assert again.code == 1
    assert "cancelled" in assert_one_error_line(again)
    assert again.out == ""


def test_run_show_of_an_unknown_run_is_one_error_line_and_exit_1(ck: Cli) -> None:
    result = ck("run", "show", "00000000-0000-7000-8000-000000000000")

    assert result.code == 1
    assert_one_error_line(result)


# --- --watch -------------------------------------------------------------------------------


@pytest.fixture
def watch(server: Server, api_env: Project) -> Iterator[Callable[..., queue.Queue[str]]]:
    """Start `cronkeeper runs … --watch` as a process; its output lines (stdout and
    stderr) arrive on a queue. The process is terminated after the test."""
    started: list[tuple[subprocess.Popen[str], threading.Thread]] = []

    def start(*argv: str) -> queue.Queue[str]:
        env = clean_env(CRONKEEPER_URL=server.url, CRONKEEPER_API_KEY=api_env.key)
        process = subprocess.Popen(
            [CRONKEEPER, "runs", *argv, "--watch", "--project", api_env.slug],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        started.append((process, reader))
        return lines

    yield start
    for process, reader in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def read_until(lines: queue.Queue[str], text: str, seen: list[str], timeout: float = 15) -> str:
    """Collect lines into `seen` until one contains `text`; that line."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no line with {text!r} in:\n{''.join(seen)}"
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        seen.append(line)
        if text in line:
            return line


def test_watch_prints_each_run_once_when_it_finishes(
    ck: Cli, tmp_path: Path, watch: Callable[..., queue.Queue[str]]
) -> None:
    create(ck, tmp_path, "hello", "echo hi")
    earlier = trigger(ck, "hello")
    wait_for(ck, earlier)
    seen: list[str] = []
    lines = watch("hello")
    read_until(lines, earlier, seen)  # the table printed at start

    first = trigger(ck, "hello")
    line = read_until(lines, first, seen)
    second = trigger(ck, "hello")
    read_until(lines, second, seen)

    assert re.split("[│┃ ]+", line.strip())[0] == "succeeded"
    output = "".join(seen)
    assert output.count(first) == 1
    assert output.count(earlier) == 1
    assert output.index(first) < output.index(second)
