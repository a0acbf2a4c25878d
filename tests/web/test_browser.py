"""End to end in Chromium: a real `cronkeeper serve`, a real HTTP target on 127.0.0.1, and
a person clicking through the dashboard. Screenshots of every page at 1280 and 390 px go
to $WEB_ARTIFACTS (default: <tmp>/cronkeeper-web-artifacts).

Debian's Chromium is driven directly (never `playwright install`); one browser for the
module, a fresh context (cookies) per test."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

from .conftest import free_port  # noqa: E402

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(
    os.environ.get("WEB_ARTIFACTS", Path(tempfile.gettempdir()) / "cronkeeper-web-artifacts")
)
WIDTHS = {"desktop": (1280, 860), "phone": (390, 844)}


class _Target(BaseHTTPRequestHandler):
    """/ok answers 200 after a short pause (so a run is seen running); /fail answers 500."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/fail"):
            self._answer(500, b"boom: database unavailable")
            return
        time.sleep(0.6)
        self._answer(200, b'{"ok": true}')

    do_GET = do_POST

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@dataclass(frozen=True)
class Served:
    url: str
    key: str

    def api(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.url}/api/v1/projects/default{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=10,
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("serve")
    port = free_port()
    log = home / "serve.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CRONKEEPER_") or k == "CRONKEEPER_TEST_PG"
    }
    env.update(PYTHONUNBUFFERED="1", NO_COLOR="1", CRONKEEPER_ALLOW_PRIVATE="1")
    command = [
        str(Path(sys.executable).parent / "cronkeeper"),
        "serve",
        "--db",
        str(home / "ck.db"),
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        key = _wait_ready(url, process, log)
        yield Served(url, key)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"cronkeeper serve exited:\n{log.read_text()}")
        found = re.search(r"export CRONKEEPER_API_KEY=(\S+)", log.read_text())
        if found:
            assert f"{url}/login" in log.read_text()  # the banner says where to log in
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return found.group(1)
        time.sleep(0.05)  # polling a real process's readiness
    pytest.fail(f"cronkeeper serve was not ready:\n{log.read_text()}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Session:
    page: Page
    errors: list[str]


@pytest.fixture
def session(browser: Browser, served: Served) -> Iterator[Session]:
    """A logged-in page (fresh cookies) that records console errors and page errors."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 860}, timezone_id="Europe/Berlin"
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{served.url}/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    page.fill("input[name=api_key]", served.key)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Jobs")
    yield Session(page, errors)
    context.close()
    assert errors == [], errors


def shoot(page: Page, name: str) -> None:
    """Screenshots of the current page at desktop and phone widths."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 860})


def _job(served: Served, slug: str, url: str, **extra: Any) -> None:
    body = {
        "slug": slug,
        "name": slug.replace("-", " ").capitalize(),
        "kind": "http",
        "schedule": "*/2 * * * * *",
        "target": {"method": "POST", "url": url},
        "retry": {"max_attempts": 1},
        "tags": ["e2e"],
        **extra,
    }
    response = served.api("POST", "/jobs", body)
    assert response.status_code == 201, response.text


def test_trigger_watch_the_run_finish_and_read_why_a_run_failed(
    session: Session, served: Served, target: str
) -> None:
    page = session.page
    _job(served, "report", f"{target}/ok", schedule="@daily")
    _job(served, "flaky-sync", f"{target}/fail", schedule="@daily")
    page.goto(f"{served.url}/")
    expect(page.locator("a.job-link", has_text="Report")).to_be_visible()
    countdown = page.locator("tr", has_text="Report").locator(".countdown")
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first, timeout=3000)  # it ticks
    page.click("a.job-link:has-text('Report')")
    expect(page.locator("h1")).to_contain_text("Report")
    page.evaluate("window.__stayed = true")
    page.click("#trigger")
    expect(page.locator("#flash-zone")).to_contain_text("Run queued")
    row = page.locator("tr.run-row").first
    expect(row).to_be_visible(timeout=5000)
    expect(row.locator(".badge")).to_have_text("succeeded", timeout=15000)
    assert page.evaluate("window.__stayed") is True  # no reload happened
    expect(row).to_contain_text("manual")
    shoot(page, "job-detail")

    page.goto(f"{served.url}/jobs/flaky-sync")
    page.click("#trigger")
    failed = page.locator("tr.run-row").first
    expect(failed.locator(".badge")).to_have_text("failed", timeout=15000)
    failed.locator("button.expand").click()
    detail = page.locator("tr.detail").first
    expect(detail.locator(".why")).to_contain_text("http_5xx")
    expect(detail.locator(".explanation")).to_have_text(
        "The target answered with a 5xx server error."
    )
    expect(detail).to_contain_text("run_failed")
    shoot(page, "job-failed-expanded")
    failed.locator("button.expand").click()
    expect(page.locator("tr.detail")).to_have_count(0)
    page.goto(f"{served.url}/")
    shoot(page, "overview")
    run_link = page.locator("tr", has_text="Flaky sync").locator("a.tick").last
    run_link.click()
    expect(page.locator("h1")).to_contain_text("Run of flaky-sync")
    expect(page.locator("p.why")).to_contain_text("http_5xx")
    shoot(page, "run-detail")


def test_pause_resume_edit_and_delete_then_read_the_audit_log(
    session: Session, served: Served, target: str
) -> None:
    page = session.page
    _job(served, "nightly-export", f"{target}/ok", schedule="0 2 * * *")
    page.goto(f"{served.url}/jobs/nightly-export")
    page.click("#pause")
    expect(page.locator(".flash.ok")).to_contain_text("Job paused")
    expect(page.locator("h1 .badge").first).to_have_text("paused")
    page.click("#resume")
    expect(page.locator(".flash.ok")).to_contain_text("Job resumed")
    expect(page.locator("h1 .badge").first).to_have_text("active")

    page.click("#edit")
    page.fill("#f-target-url", "ftp://files.example.com/x")
    page.click("button:has-text('Save')")
    expect(page.locator("#e-target-url")).to_contain_text("http:// or https://")
    expect(page.locator("#form-errors")).to_contain_text("Nothing was saved")
    shoot(page, "edit-errors")
    page.fill("#f-target-url", f"{target}/ok?v=2")
    page.click("button:has-text('Save')")
    expect(page.locator(".flash.ok")).to_contain_text("Job updated")
    expect(page.locator(".facts")).to_contain_text("/ok?v=2")

    page.click("#delete")
    dialog = page.locator("#delete-dialog")
    expect(dialog).to_be_visible()
    confirm = dialog.locator("button[data-confirm-button]")
    expect(confirm).to_be_disabled()
    dialog.locator("input[name=confirm]").fill("nightly-expor")
    expect(confirm).to_be_disabled()
    dialog.locator("input[name=confirm]").fill("nightly-export")
    shoot(page, "delete-dialog")
    confirm.click()
    expect(page.locator(".flash.ok")).to_contain_text("Job deleted")
    expect(page.locator("a.job-link", has_text="Nightly export")).to_have_count(0)

    page.goto(f"{served.url}/audit")
    table = page.locator("table.audit")
    for action in ("job.create", "job.pause", "job.resume", "job.update", "job.delete"):
        expect(
            table.locator("code", has_text=re.compile(f"^{re.escape(action)}$")).first
        ).to_be_visible()
    expect(table).to_contain_text("job:nightly-export")
    expect(table).to_contain_text("127.0.0.1")
    page.select_option("select[name=action]", "job.pause")
    page.click("button:has-text('Filter')")
    expect(page.locator("table.audit > tbody > tr")).to_have_count(1)
    page.goto(f"{served.url}/audit")
    shoot(page, "audit")
    page.goto(f"{served.url}/queue")
    expect(page.locator("h1")).to_contain_text("Queue")
    shoot(page, "queue")


def test_topology_click_through_keyboard_and_phone_width(
    session: Session, served: Served, target: str
) -> None:
    page = session.page
    _job(served, "billing-sync", f"{target}/ok", schedule="@hourly")
    hb = served.api(
        "POST", "/jobs", {"slug": "backup-heartbeat", "kind": "heartbeat", "schedule": "@daily"}
    )
    assert hb.status_code == 201
    httpx.get(hb.json()["data"]["ping_url"].replace("http://127.0.0.1:8080", served.url), timeout=5)
    page.goto(f"{served.url}/topology")
    node = page.locator("a.node.job[data-job=billing-sync]")
    expect(node).to_be_visible()
    expect(page.locator("path.edge.cron_trigger").first).to_be_attached()
    dash = page.locator("path.edge.cron_trigger").first.evaluate(
        "e => [getComputedStyle(e).strokeDasharray, getComputedStyle(e).animationName]"
    )
    assert dash[0] not in ("none", "") and dash[1] == "none"
    expect(page.locator("[data-node='source:127.0.0.1']")).to_contain_text("pings from 127.0.0.1")
    shoot(page, "topology")
    node.click()
    expect(page).to_have_url(f"{served.url}/jobs/billing-sync")

    # keyboard: Tab from the top of the page reaches the Trigger button
    page.locator("body").focus()
    reached = False
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == "trigger":
            reached = True
            break
    assert reached

    # times show in the viewer's zone, UTC on hover
    stamp = page.locator("time[datetime]").first
    expect(stamp).to_have_attribute("title", re.compile(r"^UTC: "))

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{served.url}/")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1  # tables scroll inside their box, the page does not
    page.goto(f"{served.url}/login")  # logged in already: back to the jobs


def test_login_page_screenshot_and_json_topology(browser: Browser, served: Served) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.goto(f"{served.url}/login")
    shoot(page, "login")
    page.fill("input[name=api_key]", "ck_wrongkey_" + "x" * 32)
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_be_visible()
    context.close()
    assert [e for e in errors if "401" not in e] == []
    data = served.api("GET", "/topology").json()["data"]
    assert json.dumps(data)  # serialisable, and drawn from the same service as the page
