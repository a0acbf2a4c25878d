"""End to end: a real `cronkeeper serve` watching a heartbeat is killed (SIGKILL) while
the job's slots come and go, and restarted. The slots that fell while it was down are
recorded as `missed` runs marked `during_outage`, and nobody is alerted about them.

The outage gap is shortened to 3 s (CRONKEEPER_OUTAGE_GAP) so the test takes seconds."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

CRONKEEPER = str(Path(sys.executable).parent / "cronkeeper")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Serve:
    """`cronkeeper serve` on one SQLite file and port, started and killed at will."""

    def __init__(self, home: Path) -> None:
        self.db, self.port, self.log = str(home / "cronkeeper.db"), free_port(), home / "serve.log"
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CRONKEEPER_")}
        self.env.update(PYTHONUNBUFFERED="1", CRONKEEPER_OUTAGE_GAP="3", NO_COLOR="1")

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [CRONKEEPER, "serve", "--db", self.db, "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"serve exited:\n{self.log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        pytest.fail(f"serve did not become healthy:\n{self.log.read_text()}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def admin_key(self) -> str:
        for line in self.log.read_text().splitlines():
            if "export CRONKEEPER_API_KEY=" in line:
                return line.split("export CRONKEEPER_API_KEY=", 1)[1].split()[0]
        raise AssertionError(f"no admin key in the banner:\n{self.log.read_text()}")

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.db, timeout=10)) as conn:
            return conn.execute(sql, args).fetchall()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    server = Serve(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def epoch(stored: str) -> float:
    at = datetime.fromisoformat(stored)
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)  # polling a real server
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_slots_missed_while_the_server_was_killed_are_ours_and_not_alerted(
    serve: Serve,
) -> None:
    serve.start()
    headers = {"Authorization": f"Bearer {serve.admin_key()}"}
    with httpx.Client(base_url=f"{serve.url}/api/v1/projects/default", headers=headers) as api:
        check_outage(serve, api)


def check_outage(serve: Serve, api: httpx.Client) -> None:
    body = {"slug": "sync", "kind": "heartbeat", "schedule": "every 2s", "start_grace": 1}
    created = api.post("/jobs", json=body, timeout=10)
    assert created.status_code == 201, created.text
    ping_url = f"{serve.url}/ping/{created.json()['data']['ping_uuid']}"
    assert httpx.get(ping_url, timeout=5).status_code == 200
    wait_for(lambda: api.get("/jobs/sync").json()["data"]["monitor_state"] == "up", 10, "up")

    serve.kill()
    killed_at = time.time()
    time.sleep(7)  # slots every 2 s pass unanswered; nobody is watching
    serve.start()
    restarted_at = time.time()

    (job_id,) = serve.query("SELECT id FROM jobs WHERE slug = 'sync'")[0]

    def missed() -> list[tuple[Any, ...]]:
        return serve.query(
            "SELECT scheduled_for, during_outage FROM runs WHERE job_id = ? AND status = 'missed'"
            " ORDER BY scheduled_for",
            job_id,
        )

    wait_for(lambda: len(missed()) >= 3, 15, "the missed slots to be recorded")
    slots = missed()
    assert all(during for _, during in slots), slots
    inside = [at for at, _ in slots if killed_at < epoch(at) < restarted_at]
    assert len(inside) >= 2, (slots, killed_at, restarted_at)
    assert serve.query("SELECT count(*) FROM alerts WHERE job_id = ?", job_id) == [(0,)]
    down = serve.query("SELECT count(*) FROM flips WHERE job_id = ? AND new_state = 'down'", job_id)
    assert down == [(0,)]
    assert api.get("/jobs/sync").json()["data"]["monitor_state"] in ("up", "late")
    # the outage the monitor remembered spans the kill
    (raw,) = serve.query("SELECT value FROM system_values WHERE key = 'monitor_outages'")[0]
    assert raw.count(",") >= 1
    assert restarted_at - killed_at >= 7
