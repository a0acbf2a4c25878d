"""Schemathesis against the real server: generated requests for every documented operation
must never get a 5xx, and every answer must match the OpenAPI document (status, media type,
body schema).

The run is seeded so CI is reproducible; change SEED locally to explore further.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from .conftest import AUDIT, BIN, RealServer, bearer, serve

pytestmark = pytest.mark.slow

SEED = 20260301
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
]
# The key belongs to project `default`; any other project only ever answers 403. A run
# that authenticated nowhere would pass every check while testing nothing, so the
# missing_auth warning fails it.
CONFIG = """\
[parameters]
"path.project" = "default"

[warnings]
fail-on = ["missing_auth"]

# Channel changes need an admin key (DESIGN §2): with this write key they must answer 403.
[[operations]]
include-tag = "channels"
include-method-regex = "^(POST|PATCH|DELETE)$"
warnings = false
"""


def create_write_key(server: RealServer) -> str:
    command = [
        str(BIN / "cronkeeper"),
        "keys",
        "create",
        "--db",
        server.db_url,
        "--project",
        "default",
        "--role",
        "write",
        "--name",
        "schemathesis",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def run_schemathesis(server: RealServer, key: str, workdir: Path) -> tuple[int, str, float]:
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(BIN / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        f"{server.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        "10",
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
        "--no-color",
    ]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=workdir, capture_output=True, text=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"schemathesis ran for more than 120s:\n{error.stdout!r}")
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def test_generated_requests_never_break_the_server_or_its_openapi_contract(
    tmp_path: Path,
) -> None:
    # Schemathesis sends keyless requests on purpose; the failed-auth lockout (tested in
    # test_auth_api) would turn the rest of its run into 429s.
    with serve(tmp_path, CRONKEEPER_AUTH_FAILURES_PER_MINUTE="100000") as server:
        key = create_write_key(server)

        code, output, seconds = run_schemathesis(server, key, tmp_path)

        assert code == 0, (
            f"schemathesis found problems:\n{output}\n\nserver log:\n{server.output()}"
        )
        assert seconds < 90, output
        with httpx.Client(base_url=server.url, headers=bearer(server.admin_key)) as http:
            params = {"action": "job.", "outcome": "success", "limit": 100}
            changes = http.get(AUDIT, params=params).json()["data"]["items"]
        actors = {entry["actor"] for entry in changes}
        assert actors == {"schemathesis"}, "schemathesis never got a change through"
