"""Status badges (SVG, JSON, shields.io endpoint JSON), as Healthchecks draws them.

A badge sums up jobs — one job, or every job with a tag — as the worst state among
them: `down` beats `late` beats `up` (new, paused and started jobs count as up). The
two-state variant reports `late` as `up`. Pure: the caller hands in monitor states.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any, Literal

BadgeStatus = Literal["up", "late", "down"]

#: shields.io "flat" colours, as Healthchecks uses them.
COLOURS: dict[str, str] = {"up": "#4c1", "late": "#fe7d37", "down": "#e05d44"}
SHIELDS_COLOURS: dict[str, str] = {"up": "success", "late": "important", "down": "critical"}
FORMATS = ("svg", "json", "shields")
MAX_LABEL = 64

# Approximate advance widths (px) of DejaVu Sans / Verdana at 11 px; others count as 7.
_NARROW = dict.fromkeys("il.,:;|!'`", 3.5)
_SMALL = dict.fromkeys("fjrtI()[]{}/\\- ", 4.5)
_WIDE = dict.fromkeys("mwMW@%", 10.0)
_CAPITALS = dict.fromkeys("ABCDEFGHJKLNOPQRSTUVXYZ&", 7.8)
_WIDTHS = {**_CAPITALS, **_NARROW, **_SMALL, **_WIDE}


@dataclass(frozen=True)
class BadgeSummary:
    """What a badge says: its status and the counts behind it (Healthchecks' JSON)."""

    status: BadgeStatus
    total: int
    grace: int
    down: int

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "total": self.total, "grace": self.grace, "down": self.down}


def summarise(states: list[str], *, two_states: bool = False) -> BadgeSummary:
    """The badge of jobs in these monitor states (`late` counts as `grace`); an empty
    list is `up`, as Healthchecks answers for a tag no check carries."""
    down = sum(1 for state in states if state == "down")
    grace = sum(1 for state in states if state == "late")
    status: BadgeStatus = "down" if down else "late" if grace else "up"
    if two_states and status == "late":
        status = "up"
    return BadgeSummary(status, len(states), grace, down)


def text_width(text: str) -> int:
    """Estimated rendered width of `text` in px (no font metrics needed)."""
    return round(sum(_WIDTHS.get(char, 6.5 if char.islower() else 7.0) for char in text))


def shown_label(label: str) -> str:
    """The label as drawn: at most MAX_LABEL characters."""
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def render_svg(label: str, status: BadgeStatus) -> str:
    """A shields-style flat badge: grey label on the left, coloured status on the right."""
    label = shown_label(label)
    label_w, status_w = text_width(label) + 10, text_width(status) + 10
    width = label_w + status_w
    label_x, status_x = label_w / 2, label_w + status_w / 2
    text, colour = escape(label), COLOURS[status]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{text}: {status}"><title>{text}: {status}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<mask id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></mask>'
        f'<g mask="url(#r)"><rect width="{label_w}" height="20" fill="#555"/>'
        f'<rect x="{label_w}" width="{status_w}" height="20" fill="{colour}"/>'
        f'<rect width="{width}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" '
        'font-family="DejaVu Sans,Verdana,Geneva,sans-serif" font-size="11">'
        f'<text x="{label_x:g}" y="15" fill="#010101" fill-opacity=".3">{text}</text>'
        f'<text x="{label_x:g}" y="14">{text}</text>'
        f'<text x="{status_x:g}" y="15" fill="#010101" fill-opacity=".3">{status}</text>'
        f'<text x="{status_x:g}" y="14">{status}</text></g></svg>'
    )


def shields_json(label: str, status: BadgeStatus) -> dict[str, Any]:
    """The shields.io endpoint-badge document (https://shields.io/badges/endpoint-badge)."""
    return {
        "schemaVersion": 1,
        "label": shown_label(label),
        "message": status,
        "color": SHIELDS_COLOURS[status],
    }
