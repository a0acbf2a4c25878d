"""What the dashboard's buttons do: trigger, pause, resume, edit destination, delete, and
replay/cancel a run. Each is a plain form POST (CSRF-checked, write role) that redirects
back; Trigger also answers htmx with a message fragment so the page stays put."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from cronkeeper.errors import InvalidInput, RateLimited
from cronkeeper.service import jobs as job_service
from cronkeeper.service import runs as run_service
from cronkeeper.web.app import Web, get, post, redirect
from cronkeeper.web.auth import Viewer
from cronkeeper.web.forms import (
    HTTP_METHODS,
    attach_errors,
    form_from_job,
    form_from_post,
    patch_from_form,
    target_errors,
)
from cronkeeper.web.views import render


def _slug(request: Request) -> str:
    return str(request.path_params["slug"])


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


async def trigger(web: Web, request: Request, viewer: Viewer) -> Response:
    slug = _slug(request)
    try:
        run = await run_service.trigger_job(web.ctx, viewer.actor, viewer.project, slug)
    except RateLimited as error:
        wait = max(1, int(error.retry_after + 0.999))
        message = (
            f"Easy there: this job was triggered several times just now. "
            f"Try again in {wait} s (the run already queued will go ahead)."
        )
        if _is_htmx(request):
            return render("fragments/flash.html", {"message": message, "level": "warn"})
        return await web.error(request, viewer, 429, message)
    if _is_htmx(request):
        values = {"message": f"Run queued ({run.id[:8]}…); it appears below.", "level": "ok"}
        return render("fragments/flash.html", values, headers={"HX-Trigger": "runs-changed"})
    return redirect(f"/jobs/{slug}?msg=triggered")


async def pause(web: Web, request: Request, viewer: Viewer) -> Response:
    slug = _slug(request)
    await job_service.set_paused(web.ctx, viewer.actor, viewer.project, slug, paused=True)
    return redirect(f"/jobs/{slug}?msg=paused")


async def resume(web: Web, request: Request, viewer: Viewer) -> Response:
    slug = _slug(request)
    await job_service.set_paused(web.ctx, viewer.actor, viewer.project, slug, paused=False)
    return redirect(f"/jobs/{slug}?msg=resumed")


async def edit_page(web: Web, request: Request, viewer: Viewer) -> Response:
    job = await job_service.get_job(web.ctx, viewer.actor, viewer.project, _slug(request))
    if not viewer.can_write:
        return await web.error(request, viewer, 403, "Your role is read-only.")
    values = await web.base(request, viewer, job=job, form=form_from_job(job), methods=HTTP_METHODS)
    return render("edit.html", values)


async def edit_submit(web: Web, request: Request, viewer: Viewer) -> Response:
    slug = _slug(request)
    job = await job_service.get_job(web.ctx, viewer.actor, viewer.project, slug)
    posted = {
        name: value for name, value in (await request.form()).items() if isinstance(value, str)
    }
    form = form_from_post(job.kind, posted)
    patch = patch_from_form(form, job)
    if patch is not None:
        try:
            await job_service.update_job(web.ctx, viewer.actor, viewer.project, slug, patch)
        except InvalidInput as error:
            found = error.errors
            if not any(e.field.startswith("target") for e in found):
                found = found + target_errors(job.kind, patch)
            attach_errors(form, found)
        else:
            return redirect(f"/jobs/{slug}?msg=updated")
    values = await web.base(request, viewer, job=job, form=form, methods=HTTP_METHODS)
    return render("edit.html", values)  # 200: browsers log 4xx pages as console errors


async def delete_page(web: Web, request: Request, viewer: Viewer) -> Response:
    job = await job_service.get_job(web.ctx, viewer.actor, viewer.project, _slug(request))
    values = await web.base(request, viewer, job=job, error=None)
    return render("delete.html", values)


async def delete_submit(web: Web, request: Request, viewer: Viewer) -> Response:
    slug = _slug(request)
    job = await job_service.get_job(web.ctx, viewer.actor, viewer.project, slug)
    typed = str((await request.form()).get("confirm") or "").strip()
    if typed != job.slug:
        error = f"type the job's slug, {job.slug}, to confirm"
        values = await web.base(request, viewer, job=job, error=error)
        return render("delete.html", values)
    await job_service.delete_job(web.ctx, viewer.actor, viewer.project, slug)
    return redirect("/?msg=deleted")


async def replay(web: Web, request: Request, viewer: Viewer) -> Response:
    run_id = str(request.path_params["run_id"])
    run = await run_service.replay_run(web.ctx, viewer.actor, viewer.project, run_id)
    return redirect(f"/runs/{run.id}?msg=replayed")


async def cancel(web: Web, request: Request, viewer: Viewer) -> Response:
    run_id = str(request.path_params["run_id"])
    await run_service.cancel_run(web.ctx, viewer.actor, viewer.project, run_id)
    return redirect(f"/runs/{run_id}?msg=cancelled")


def routes(web: Web) -> list[BaseRoute]:
    return [
        post("/jobs/{slug}/trigger", web.page(trigger, write=True)),
        post("/jobs/{slug}/pause", web.page(pause, write=True)),
        post("/jobs/{slug}/resume", web.page(resume, write=True)),
        get("/jobs/{slug}/edit", web.page(edit_page)),
        post("/jobs/{slug}/edit", web.page(edit_submit, write=True)),
        get("/jobs/{slug}/delete", web.page(delete_page)),
        post("/jobs/{slug}/delete", web.page(delete_submit, write=True)),
        post("/runs/{run_id}/replay", web.page(replay, write=True)),
        post("/runs/{run_id}/cancel", web.page(cancel, write=True)),
    ]
