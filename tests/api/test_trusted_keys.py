"""A valid API key is read from the ledger at most every TRUST_SECONDS: a key revoked by
another process (here: straight in the ledger, as `cronkeeper keys revoke` does from its
own process) is refused once that time has passed; revoking through this process, or a
wrong secret with a trusted prefix, is refused at once."""

from __future__ import annotations

import httpx

from cronkeeper.domain.models import Actor
from cronkeeper.service import keys as key_service
from cronkeeper.service.context import Context
from cronkeeper.store import keys as key_store
from cronkeeper.testing import FakeClock

from .conftest import JOBS, Keys, bearer


async def revoke_elsewhere(ctx: Context, key: str) -> None:
    """What another process's revocation leaves in the ledger (this one is not told)."""
    prefix = key.split("_")[1]
    async with ctx.db.write() as conn:
        found = await key_store.get_key_by_prefix(conn, prefix)
        assert found is not None
        assert await key_store.revoke_key(conn, found.id, ctx.clock.now())


async def test_a_key_revoked_by_another_process_is_refused_within_the_trust_time(
    client: httpx.AsyncClient, keys: Keys, ctx: Context, clock: FakeClock
) -> None:
    assert (await client.get(JOBS, headers=bearer(keys.read))).status_code == 200
    await revoke_elsewhere(ctx, keys.read)

    clock.advance(key_service.TRUST_SECONDS)
    response = await client.get(JOBS, headers=bearer(keys.read))

    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


async def test_a_trusted_key_is_not_read_again_before_the_trust_time_has_passed(
    client: httpx.AsyncClient, keys: Keys, ctx: Context, clock: FakeClock
) -> None:
    assert (await client.get(JOBS, headers=bearer(keys.read))).status_code == 200
    await revoke_elsewhere(ctx, keys.read)

    clock.advance(key_service.TRUST_SECONDS / 2)

    assert (await client.get(JOBS, headers=bearer(keys.read))).status_code == 200


async def test_revoking_through_this_process_refuses_a_trusted_key_at_once(
    client: httpx.AsyncClient, keys: Keys, ctx: Context, admin: Actor
) -> None:
    for key in (keys.read, keys.write):
        assert (await client.get(JOBS, headers=bearer(key))).status_code == 200
    await key_service.revoke_key(ctx, admin, keys.read)

    revoked = await client.get(JOBS, headers=bearer(keys.read))
    other = await client.get(JOBS, headers=bearer(keys.write))

    assert revoked.status_code == 401
    assert other.status_code == 200


async def test_a_trusted_prefix_with_a_wrong_secret_is_refused(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    assert (await client.get(JOBS, headers=bearer(keys.read))).status_code == 200
    forged = keys.read[: -len("x" * 32)] + "x" * 32

    response = await client.get(JOBS, headers=bearer(forged))

    assert response.status_code == 401
    assert response.json()["detail"] == "unknown API key"


async def last_used(ctx: Context, key: str) -> object:
    found = {k.prefix: k.last_used_at for k in await key_service.list_keys(ctx)}
    return found[key.split("_")[1]]


async def test_a_trusted_key_records_its_last_use_once_a_minute(
    client: httpx.AsyncClient, keys: Keys, ctx: Context, clock: FakeClock
) -> None:
    first_use = clock.now()
    assert (await client.get(JOBS, headers=bearer(keys.read))).status_code == 200
    clock.advance(key_service.TRUST_SECONDS / 2)
    assert (await client.get(JOBS, headers=bearer(keys.read))).status_code == 200
    assert await last_used(ctx, keys.read) == first_use

    clock.advance(61)
    assert (await client.get(JOBS, headers=bearer(keys.read))).status_code == 200

    assert await last_used(ctx, keys.read) == clock.now()
