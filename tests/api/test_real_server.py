"""The real `cronkeeper serve` process: first-start key on stdout, jobs over real HTTP,
and a clean exit on SIGTERM."""

from __future__ import annotations

import signal
import subprocess

import httpx
import pytest

from .conftest import JOBS, RealServer, bearer, http_job

pytestmark = pytest.mark.slow


def test_a_served_api_creates_and_lists_jobs_with_the_first_start_admin_key(
    real_server: RealServer,
) -> None:
    with httpx.Client(base_url=real_server.url, headers=bearer(real_server.admin_key)) as http:
        created = http.post(JOBS, json=http_job("nightly"))
        listed = http.get(JOBS)
        anonymous = http.get(JOBS, headers={"Authorization": ""})

    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{JOBS}/nightly"
    assert created.json()["data"]["next_fires"]
    assert [job["slug"] for job in listed.json()["data"]["items"]] == ["nightly"]
    assert anonymous.status_code == 401


def test_sigterm_drains_and_exits_0_within_10_seconds(real_server: RealServer) -> None:
    with httpx.Client(base_url=real_server.url, headers=bearer(real_server.admin_key)) as http:
        assert http.post(JOBS, json=http_job("nightly")).status_code == 201

    real_server.process.send_signal(signal.SIGTERM)
    try:
        code = real_server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"cronkeeper serve ignored SIGTERM for 10s:\n{real_server.output()}")

    assert "Application shutdown complete" in real_server.output()
    assert "Traceback" not in real_server.output()
    assert code == 0, real_server.output()
