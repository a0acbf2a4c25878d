"""`cronkeeper channels …` against a real `cronkeeper serve` (allowed to reach 127.0.0.1)
and a real webhook receiver: create, list, show, edit, test, delete; errors are one line."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from cronkeeper.cli.main import _main

from .peers import free_port

BIN = Path(sys.executable).parent


class _Hook(BaseHTTPRequestHandler):
    bodies: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        type(self).bodies.append(self.rfile.read(length).decode())
        status = 404 if self.path.startswith("/gone") else 200
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok" if status == 200 else b"no such hook")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def hook() -> Iterator[str]:
    """A threaded webhook receiver on 127.0.0.1 (the server process posts to it)."""
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`cronkeeper serve` with CRONKEEPER_ALLOW_PRIVATE=127.0.0.1/32; (url, admin key)."""
    home = tmp_path_factory.mktemp("serve")
    port, log = free_port(), home / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONKEEPER_")}
    env.update(PYTHONUNBUFFERED="1", NO_COLOR="1", CRONKEEPER_ALLOW_PRIVATE="127.0.0.1/32")
    command = [str(BIN / "cronkeeper"), "serve", "--db", str(home / "ck.db"), "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=home
        )
    url = f"http://127.0.0.1:{port}"
    try:
        key = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and key is None:
            assert process.poll() is None, log.read_text()
            found = re.search(r"export CRONKEEPER_API_KEY=(\S+)", log.read_text())
            with contextlib.suppress(httpx.TransportError):
                if found and httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    key = found.group(1)
            time.sleep(0.05)  # polling a real server's readiness
        assert key, log.read_text()
        yield url, key
    finally:
        process.terminate()
        process.wait(timeout=15)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = _main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, served: tuple[str, str]) -> None:
    monkeypatch.setenv("CRONKEEPER_URL", served[0])
    monkeypatch.setenv("CRONKEEPER_API_KEY", served[1])


def test_create_list_show_test_edit_and_delete_a_webhook_channel(
    env: None, hook: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(
        capsys, "channels", "create", "--name", "ops", "--kind", "webhook",
        "--webhook-url", f"{hook}/in", "-H", "Authorization: Bearer s3cret", "--default",
    )  # fmt: skip
    assert (code, err) == (0, ""), err
    assert "created channel ops" in out and "s3cret" not in out

    code, out, _ = cli(capsys, "channels", "list")
    row = next(line for line in out.splitlines() if line.strip().startswith("ops"))
    assert code == 0 and row.split("│")[1:4] == [" webhook ", " yes     ", " enabled "]

    code, out, _ = cli(capsys, "channels", "show", "ops", "--json")
    shown = json.loads(out)["data"]
    assert shown["config"]["headers"] == {"Authorization": "********"}

    _Hook.bodies.clear()
    code, out, err = cli(capsys, "channels", "test", "ops")
    assert code == 0, err
    assert out.startswith("sent a test message to ops in ")
    assert json.loads(_Hook.bodies[-1])["event"] == "test"

    code, out, _ = cli(capsys, "channels", "edit", "ops", "--no-default", "--json")
    assert code == 0 and json.loads(out)["data"]["default"] is False

    code, out, _ = cli(capsys, "channels", "delete", "ops", "--yes")
    assert code == 0 and out.strip() == "deleted channel ops"


def test_a_failing_test_prints_the_channels_error_and_exits_1(
    env: None, hook: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "channels", "create", "--name", "gone", "--kind", "webhook",
        "--webhook-url", f"{hook}/gone")  # fmt: skip
    code, out, err = cli(capsys, "channels", "test", "gone")
    assert code == 1 and out == ""
    assert err.strip() == ("error: test message to gone failed: HTTP 404 Not Found: no such hook")


def test_bad_input_is_one_line_and_exit_2_and_server_refusals_exit_1(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "channels", "create", "--name", "m", "--kind", "email",
                       "--to", "nobody", "--smtp-url", "smtp://127.0.0.1")  # fmt: skip
    assert code == 1  # the server refused it (422)
    assert err.count("\n") == 1 and "config.to[0]" in err and "Traceback" not in err
    code, _, err = cli(capsys, "channels", "edit", "m")
    assert code == 2 and err.startswith("error: nothing to change")
    code, _, err = cli(capsys, "channels", "show", "missing")
    assert code == 1 and err.strip() == "error: channel 'missing' not found"
    code, _, err = cli(capsys, "channels", "create", "-H", "no colon here", "--name", "x")
    assert code == 2 and err.count("\n") == 1


def test_an_unknown_key_is_one_error_line_and_exit_1(
    served: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRONKEEPER_URL", served[0])
    monkeypatch.setenv("CRONKEEPER_API_KEY", "ck_aaaaaaaa_" + "b" * 32)
    code, _, err = cli(capsys, "channels", "list")
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
