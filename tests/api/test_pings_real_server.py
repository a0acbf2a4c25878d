"""Pings to a real `cronkeeper serve` with curl, exactly as the Healthchecks recipes send
them (docs/heartbeats.md): GET, HEAD, POST with a body, `?rid=`, exit statuses,
`?create=1`; the runs they leave are read back through the API."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
import uuid

import httpx
import pytest

from .conftest import JOBS, RealServer, bearer

pytestmark = pytest.mark.slow
CURL = ["curl", "-fsS", "-m", "10", "--retry", "5"]


def curl(*args: str, stdin_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CURL, *args], input=stdin_text, capture_output=True, text=True, timeout=30
    )


def status_of(url: str) -> str:
    """The HTTP status curl sees (no -f, so error answers are not curl failures)."""
    done = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout


def api_client(server: RealServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=bearer(server.admin_key))


def test_curl_recipes_record_heartbeat_runs(real_server: RealServer) -> None:
    with api_client(real_server) as api:
        created = api.post(JOBS, json={"slug": "backup", "kind": "heartbeat"})
    assert created.status_code == 201, created.text
    url = created.json()["data"]["ping_url"]
    assert url.startswith(f"{real_server.url}/ping/")
    rid = str(uuid.uuid4())

    assert curl(f"{url}/start?rid={rid}").stdout == "OK"
    time.sleep(0.3)
    assert curl("--data-raw", "dumped 12 tables", f"{url}?rid={rid}").stdout == "OK"
    head = curl("-I", url)
    assert head.returncode == 0 and "ping-body-limit: 100000" in head.stdout.lower()
    assert curl("--data-binary", "@-", f"{url}/3", stdin_text="pg_dump: error").stdout == "OK"
    assert curl(f"{url}/fail").stdout == "OK"
    refused = curl(f"{url}/256")
    assert refused.returncode == 22 and "400" in refused.stderr
    assert status_of(f"{real_server.url}/ping/{uuid.uuid4()}") == "404"

    with api_client(real_server) as api:
        runs = api.get(f"{JOBS}/backup/runs", params={"order": "asc"}).json()["data"]["items"]
        detail = api.get(f"/api/v1/projects/default/runs/{runs[0]['id']}").json()["data"]
        exited = api.get(f"/api/v1/projects/default/runs/{runs[2]['id']}").json()["data"]
    summary = [(r["status"], r["failure_reason"], r["source"]) for r in runs]
    assert summary == [
        ("succeeded", None, "heartbeat"),
        ("succeeded", None, "heartbeat"),  # the HEAD ping
        ("failed", "exit_code", "heartbeat"),
        ("failed", "unknown", "heartbeat"),
    ]
    assert runs[0]["duration_ms"] >= 300
    assert detail["attempt_details"][0]["body_preview"] == "dumped 12 tables"
    assert exited["attempt_details"][0]["exit_code"] == 3

    real_server.process.send_signal(signal.SIGTERM)  # the ping writer drains on shutdown
    assert real_server.process.wait(timeout=10) == 0
    assert "Traceback" not in real_server.output()


def test_curl_with_create_1_provisions_a_job_by_slug(real_server: RealServer) -> None:
    path = real_server.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        (ping_key,) = db.execute("SELECT ping_key FROM projects WHERE slug = 'default'").fetchone()
    base = f"{real_server.url}/ping/{ping_key}/nightly-sync"

    assert status_of(base) == "404"
    assert curl(f"{base}/start?create=1").stdout == "Created"
    assert curl(f"{base}/0").stdout == "OK"

    with api_client(real_server) as api:
        job = api.get(f"{JOBS}/nightly-sync").json()["data"]
    assert (job["kind"], job["last_run"]["status"]) == ("heartbeat", "succeeded")
