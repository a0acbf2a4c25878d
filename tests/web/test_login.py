"""Logging in to the dashboard: keys and users, the session cookie, CSRF, logout."""

from __future__ import annotations

import pytest

from cronkeeper.domain.models import Actor
from cronkeeper.domain.states import KeyRole
from cronkeeper.errors import Conflict, InvalidInput
from cronkeeper.service import keys as key_service
from cronkeeper.service import users as user_service
from cronkeeper.service.context import Context

from .conftest import Browser, Keys, LogIn, csrf_of, log_in, page_csrf


async def test_pages_send_a_visitor_without_session_to_login(browser: Browser) -> None:
    client = browser()
    response = await client.get("/jobs/x?cursor=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fjobs%2Fx%3Fcursor%3D1"
    htmx = await client.get("/", headers={"HX-Request": "true"})
    assert htmx.status_code == 204
    assert htmx.headers["HX-Redirect"].startswith("/login")


async def test_an_api_key_logs_in_with_a_signed_httponly_lax_cookie(
    browser: Browser, keys: Keys
) -> None:
    client = browser()
    response = await log_in(client, api_key=keys.write)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = next(c for c in response.headers.get_list("set-cookie") if "ck_session=" in c)
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
    assert "Secure" not in cookie
    assert keys.write not in cookie and keys.write.split("_", 2)[2] not in cookie
    home = await client.get("/")
    assert home.status_code == 200
    assert "writer · write" in home.text


async def test_cookies_are_secure_over_https_and_behind_a_tls_proxy(
    browser: Browser, keys: Keys
) -> None:
    client = browser(base_url="https://testserver")
    response = await log_in(client, api_key=keys.write)
    cookie = next(c for c in response.headers.get_list("set-cookie") if "ck_session=" in c)
    assert "Secure" in cookie
    proxied = await browser().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in proxied.headers["set-cookie"]


async def test_a_user_logs_in_with_a_password(ctx: Context, admin: Actor, browser: Browser) -> None:
    await user_service.create_user(
        ctx,
        admin,
        project_slug="default",
        role=KeyRole.READ,
        username="alice",
        password="pw-alice-1",
    )
    client = browser()
    wrong = await log_in(client, username="alice", password="nope-nope")
    assert wrong.status_code == 401
    assert "Unknown user name or wrong password" in wrong.text
    unknown = await log_in(client, username="bob", password="pw-alice-1")
    assert unknown.status_code == 401
    assert "Unknown user name or wrong password" in unknown.text
    right = await log_in(client, username="alice", password="pw-alice-1")
    assert right.status_code == 303
    home = await client.get("/")
    assert "alice · read" in home.text


async def test_bad_keys_and_empty_forms_are_refused_with_a_message(
    browser: Browser, keys: Keys
) -> None:
    client = browser()
    bad = await log_in(client, api_key="ck_abcdefgh_" + "x" * 32)
    assert bad.status_code == 401
    assert 'role="alert"' in bad.text
    empty = await log_in(client)
    assert empty.status_code == 422
    assert "Enter a user name and password, or an API key." in empty.text
    assert "ck_session=" not in ";".join(empty.headers.get_list("set-cookie"))


async def test_login_without_the_form_token_is_refused(browser: Browser, keys: Keys) -> None:
    client = browser()
    response = await client.post("/login", data={"api_key": keys.write})
    assert response.status_code == 403
    assert "ck_session=" not in ";".join(response.headers.get_list("set-cookie"))


async def test_login_goes_back_to_the_page_asked_for_but_never_off_site(
    browser: Browser, keys: Keys
) -> None:
    client = browser()
    form = await client.get("/login?next=/audit")
    csrf = csrf_of(form.text)
    response = await client.post(
        "/login", data={"csrf": csrf, "next": "/audit", "api_key": keys.read}
    )
    assert response.headers["location"] == "/audit"
    other = browser()
    form = await other.get("/login")
    data = {"csrf": csrf_of(form.text), "next": "//evil.example/x", "api_key": keys.read}
    response = await other.post("/login", data=data)
    assert response.headers["location"] == "/"


async def test_failed_logins_are_rate_limited_per_address(browser: Browser) -> None:
    client = browser()
    statuses = []
    for _ in range(12):
        response = await log_in(client, api_key="ck_abcdefgh_" + "y" * 32)
        statuses.append(response.status_code)
    assert statuses[:10] == [401] * 10
    assert statuses[-1] == 429


async def test_a_tampered_cookie_is_no_session(logged_in: LogIn, keys: Keys) -> None:
    client = await logged_in(keys.write)
    value = client.cookies["ck_session"]
    payload, _, signature = value.partition(".")
    client.cookies.clear()
    client.cookies.set("ck_session", payload + "x." + signature)
    response = await client.get("/")
    assert response.status_code == 303


async def test_revoking_the_key_ends_its_sessions(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cronkeeper.web.auth.RECHECK_SECONDS", 0.0)  # no grace period
    client = await logged_in(keys.write)
    assert (await client.get("/")).status_code == 200
    await key_service.revoke_key(ctx, admin, keys.write)
    assert (await client.get("/")).status_code == 303


async def test_logout_needs_the_token_and_ends_the_session(logged_in: LogIn, keys: Keys) -> None:
    client = await logged_in(keys.write)
    refused = await client.post("/logout")
    assert refused.status_code == 403
    csrf = await page_csrf(client)
    response = await client.post("/logout", data={"csrf": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert (await client.get("/")).status_code == 303


async def test_admins_switch_projects_and_others_cannot(logged_in: LogIn, keys: Keys) -> None:
    boss = await logged_in(keys.admin)
    home = await boss.get("/")
    assert 'id="project-switch"' in home.text
    response = await boss.post("/project", data={"csrf": csrf_of(home.text), "project": "other"})
    assert response.status_code == 303
    assert '<span class="muted">in other</span>' in (await boss.get("/")).text
    writer = await logged_in(keys.write)
    home = await writer.get("/")
    assert 'id="project-switch"' not in home.text
    refused = await writer.post("/project", data={"csrf": csrf_of(home.text), "project": "other"})
    assert refused.status_code == 404


async def test_users_are_created_with_checked_names_and_passwords(
    ctx: Context, admin: Actor
) -> None:
    with pytest.raises(InvalidInput) as error:
        await user_service.create_user(
            ctx, admin, project_slug="default", role=KeyRole.READ, username="-x", password="short"
        )
    assert {e.field for e in error.value.errors} == {"name", "password"}
    user = await user_service.create_user(
        ctx,
        admin,
        project_slug="team",
        role=KeyRole.WRITE,
        username="carol",
        password="long-enough",
    )
    assert user.project_slug == "team"
    assert user.password_hash.startswith("$argon2")
    with pytest.raises(Conflict):
        await user_service.create_user(
            ctx, admin, project_slug="team", role=KeyRole.READ, username="carol", password="x" * 9
        )
