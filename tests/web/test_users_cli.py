"""`cronkeeper users create`: a user who can then log in to the dashboard."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from cronkeeper.cli.main import _main
from cronkeeper.domain.models import Actor
from cronkeeper.service import users as user_service
from cronkeeper.service.setup import open_context


def _create(monkeypatch: pytest.MonkeyPatch, db: str, password: str, *args: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return _main(["users", "create", "--db", db, "--password-stdin", *args])


def test_users_create_makes_a_user_who_can_log_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "ck.db")
    code = _create(monkeypatch, db, "pw-alice-123", "--name", "alice", "--role", "admin")
    assert code == 0
    assert "created user alice (admin in project default)" in capsys.readouterr().out
    assert _create(monkeypatch, db, "short", "--name", "bob") == 2
    assert "password: must be at least 8 characters" in capsys.readouterr().err
    assert _create(monkeypatch, db, "pw-alice-123", "--name", "alice") == 1
    assert "already exists" in capsys.readouterr().err

    async def log_in() -> Actor:
        ctx = await open_context(db)
        try:
            return await user_service.log_in(ctx, "alice", "pw-alice-123", "127.0.0.1")
        finally:
            await ctx.db.dispose()

    actor = asyncio.run(log_in())
    assert (actor.name, actor.role.value, actor.project_slug) == ("alice", "admin", "default")
