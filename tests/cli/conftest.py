"""CLI fixtures: one real `cronkeeper serve` per session, and two ways to run the CLI.

`cli` runs `cronkeeper.cli.main._main` in this process (fast; output through capsys);
`cli_process` runs the installed `cronkeeper` script (or `python -m cronkeeper`) as a
user's shell would. Each test gets its own project with its own key, so tests that
list jobs or audit entries see only what they did themselves.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronkeeper.cli.main import _main

BIN = Path(sys.executable).parent
CRONKEEPER = str(BIN / "cronkeeper")
KEY_PATTERN = re.compile(r"^ck_[a-z0-9]{8}_[A-Za-z0-9_-]{32}$")
ANSI_ESCAPE = "\x1b["


@dataclass(frozen=True)
class Server:
    url: str
    db: str
    admin_key: str


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


@dataclass(frozen=True)
class Project:
    slug: str
    key: str


def ok(result: Result) -> Result:
    """The result of a command that succeeded: exit 0, nothing on stderr, no colours."""
    assert result.code == 0, result.err
    assert result.err == ""
    assert ANSI_ESCAPE not in result.out
    return result


def data(result: Result) -> Any:
    """The `data` of a `--json` answer (the API envelope and nothing else)."""
    envelope = json.loads(ok(result).out)
    assert set(envelope) == {"data"}
    return envelope["data"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The inherited environment without CRONKEEPER_* settings or forced colours."""
    forced = {"FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "COLUMNS"}
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CRONKEEPER_") and name not in forced
    }
    env.update(extra)
    return env


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"cronkeeper serve exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.05)  # polling a real server's readiness
    pytest.fail(f"cronkeeper serve did not become healthy:\n{log.read_text()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`cronkeeper serve` on a fresh SQLite file and a free port; its first admin key."""
    home = tmp_path_factory.mktemp("server")
    db, port, log = str(home / "cronkeeper.db"), free_port(), home / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [CRONKEEPER, "serve", "--db", db, "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=clean_env(PYTHONUNBUFFERED="1"),
            cwd=home,
        )
    try:
        _wait_until_healthy(url, process, log)
        found = re.search(r"export CRONKEEPER_API_KEY=(\S+)", log.read_text())
        assert found, f"no admin key in the banner:\n{log.read_text()}"
        yield Server(url=url, db=db, admin_key=found.group(1))
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Result:
    capsys.readouterr()  # drop anything printed before
    code = _main(argv)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


Cli = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """`cli("jobs", "list")` → Result, through `_main` in this process."""

    def invoke(*argv: str) -> Result:
        return run_in_process(list(argv), capsys)

    return invoke


def run_process(
    *argv: str, env: dict[str, str] | None = None, module: bool = False, stdin: str = ""
) -> Result:
    """The CLI as a separate process: the `cronkeeper` script, or `python -m cronkeeper`."""
    command = [sys.executable, "-m", "cronkeeper"] if module else [CRONKEEPER]
    done = subprocess.run(
        [*command, *argv],
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        input=stdin,
        timeout=60,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def create_key(db: str, project: str, role: str = "write", name: str = "ci") -> str:
    """A new key through `cronkeeper keys create` in this process (setup, not under test)."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = _main(
            ["keys", "create", "--db", db, "--project", project, "--role", role, "--name", name]
        )
    assert code == 0
    return out.getvalue().strip()


@pytest.fixture
def project(server: Server) -> Project:
    """A project of its own on the shared server, with a write key for it."""
    slug = f"p-{uuid.uuid4().hex[:10]}"
    return Project(slug=slug, key=create_key(server.db, slug))


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch, server: Server, project: Project) -> Project:
    """CRONKEEPER_URL / CRONKEEPER_API_KEY / project as a user would export them."""
    monkeypatch.setenv("CRONKEEPER_URL", server.url)
    monkeypatch.setenv("CRONKEEPER_API_KEY", project.key)
    return project


def assert_one_error_line(result: Result) -> str:
    """The single `error: …` line on stderr, with no traceback anywhere."""
    assert "Traceback" not in result.err
    assert "Traceback" not in result.out
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith("error: "), line
    return line
