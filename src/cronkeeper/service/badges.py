"""Status badges: public, read-only, behind the project's unguessable badge key.

    {base_url}/badge/{badge_key}/{job-slug}.svg|.json|.shields     one job
    {base_url}/badge/{badge_key}/tag/{tag}.svg|.json|.shields      every job with the tag
    {base_url}/badge/{badge_key}/tag/*.svg|…                       every job

`?states=2` reports `late` as `up` (Healthchecks' two-state badges). One indexed read.
"""

from __future__ import annotations

from dataclasses import dataclass

from cronkeeper.domain.badges import FORMATS, BadgeSummary, summarise
from cronkeeper.domain.models import Project
from cronkeeper.errors import NotFound
from cronkeeper.service.context import Context
from cronkeeper.store import healthchecks as hc_store

#: The tag that stands for every job of the project (no real tag can contain '*').
ALL_JOBS = "*"


@dataclass(frozen=True)
class Badge:
    label: str
    summary: BadgeSummary


def badge_prefix(ctx: Context, project: Project) -> str:
    """Where a project's badges live: append `/<job-slug>.svg` or `/tag/<tag>.svg`."""
    return f"{ctx.base_url}/badge/{project.badge_key}"


def job_badge_url(ctx: Context, project: Project, slug: str) -> str:
    return f"{badge_prefix(ctx, project)}/{slug}.svg"


def tag_badge_urls(ctx: Context, project: Project, tag: str) -> dict[str, str]:
    """The URLs of one tag's badges, keyed as Healthchecks' `GET /api/v3/badges/` keys
    them (`…3`: three states, up/late/down; the others two)."""
    base = f"{badge_prefix(ctx, project)}/tag/{tag}"
    urls: dict[str, str] = {}
    for fmt in FORMATS:
        urls[fmt] = f"{base}.{fmt}?states=2"
        urls[f"{fmt}3"] = f"{base}.{fmt}"
    return urls


async def get_badge(
    ctx: Context, badge_key: str, name: str, *, is_tag: bool, two_states: bool
) -> Badge:
    """The badge of a job (by slug) or a tag; NotFound for an unknown key or job. A tag
    no job carries is `up` with a total of 0, as in Healthchecks."""
    if not badge_key.isascii() or "\x00" in badge_key or "\x00" in name:
        raise NotFound("badge", "?")
    tag = None if name == ALL_JOBS else name
    async with ctx.db.read() as conn:
        if is_tag:
            rows = await hc_store.badge_states(conn, badge_key, tag=tag)
        else:
            rows = await hc_store.badge_states(conn, badge_key, slug=name)
    if rows is None:
        raise NotFound("badge", "?")
    if not is_tag and not rows:
        raise NotFound("job", name)
    states = ["paused" if status == "paused" else state for _, status, state in rows]
    label = (rows[0][0] or name) if not is_tag else name
    return Badge(label, summarise(states, two_states=two_states))
