from cronkeeper.domain.models import Actor
from cronkeeper.domain.states import KeyRole
from cronkeeper.service import jobs, keys
from cronkeeper.service.context import Context


async def test_a_job_created_through_the_service_is_listed_on_both_databases(
    ctx: Context, admin: Actor
) -> None:
    await keys.create_key(ctx, admin, project_slug="default", role=KeyRole.WRITE, name="ci")
    body = {
        "slug": "nightly",
        "kind": "http",
        "schedule": "0 2 * * *",
        "target": {"url": "https://example.com/run"},
    }
    created = await jobs.create_job(ctx, admin, "default", body)
    page = await jobs.list_jobs(ctx, admin, "default", jobs.JobQuery())
    assert [job.slug for job in page.items] == ["nightly"]
    assert created.next_fires[0].isoformat() == "2026-03-02T02:00:00+00:00"
