"""Rendering for the dashboard: the Jinja2 environment, its filters, and the small inline
SVG charts. No logic beyond presentation: pages hand in ready service results."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.responses import HTMLResponse

from cronkeeper import __version__

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def utc_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def time_tag(value: datetime | None, empty: str = "—") -> Markup:
    """`<time>` in UTC; the page script rewrites the text in the viewer's timezone and
    keeps UTC on hover."""
    if value is None:
        return Markup(empty)  # noqa: S704  (a constant or the caller's plain text)
    iso = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    text = utc_text(value)
    return Markup(f'<time datetime="{iso}" title="{text}">{text}</time>')  # noqa: S704


def countdown(value: datetime | None) -> Markup:
    """A live "in 3m 12s" for an instant; the page script ticks it every second."""
    if value is None:
        return Markup('<span class="muted">not scheduled</span>')
    iso = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    seconds = max(0, int((value - datetime.now(UTC)).total_seconds()))
    return Markup(  # noqa: S704
        f'<span class="countdown" data-at="{iso}" title="{utc_text(value)}">'
        f"in {span_text(seconds)}</span>"
    )


def span_text(seconds: float) -> str:
    """A short human span: 45s, 3m 12s, 2h 5m 9s, 3d 4h 10m."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m {seconds % 60}s"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h {seconds % 3600 // 60}m"


def duration(ms: int | float | None) -> str:
    """Milliseconds as people read them: 85ms, 1.2s, 3m04s."""
    if ms is None:
        return "—"
    if abs(ms) < 1000:
        return f"{int(ms)}ms"
    seconds = ms / 1000
    if abs(seconds) < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def strip(outcomes: list[Any]) -> Markup:
    """The last outcomes of a job as a row of coloured ticks, each a link to its run.
    Built in Python, not a template loop: the overview draws a thousand of them."""
    ticks = []
    for run in outcomes:
        status = escape(run.status)
        title = f"{status} · {utc_text(run.created_at)}"
        ticks.append(
            f'<a class="tick s-{status}" href="/runs/{escape(run.id)}" title="{title}">'
            f'<span class="sr-only">{status}</span></a>'
        )
    label = f"last {len(ticks)} outcomes"
    return Markup(f'<span class="strip" aria-label="{label}">{"".join(ticks)}</span>')  # noqa: S704


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    status: str
    label: str


@dataclass(frozen=True)
class Chart:
    """Bars of one value per run, oldest on the left, scaled to the largest."""

    bars: list[Bar]
    width: int
    height: int
    top_label: str
    baseline: float


def bar_chart(
    runs: list[Any], field: str, width: int = 600, height: int = 90, label: str = ""
) -> Chart | None:
    """A chart of `field` (duration_ms or drift_ms) of runs given newest first; None when
    no run has a value."""
    points = [(run, getattr(run, field)) for run in reversed(runs)]
    values = [value for _, value in points if value is not None]
    if not values:
        return None
    top = max(max(values), 1)
    step = width / max(len(points), 1)
    bars = []
    for index, (run, value) in enumerate(points):
        if value is None:
            continue
        shown = max(0, value)
        bar_height = max(1.0, (height - 4) * shown / top)
        bars.append(
            Bar(
                x=round(index * step + 1, 1),
                y=round(height - bar_height, 1),
                width=round(max(step - 2, 1), 1),
                height=round(bar_height, 1),
                status=run.status,
                label=f"{label} {duration(value)} · {run.status}",
            )
        )
    return Chart(bars, width, height, duration(top), height)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        time=time_tag,
        countdown=countdown,
        duration=duration,
        pretty_json=pretty_json,
        span=span_text,
        strip=strip,
    )
    env.globals.update(version=__version__, escape=escape)
    return env


ENV = _environment()

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(
    template: str, context: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """A page or fragment as an HTML response with the dashboard's security headers."""
    body = ENV.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})
