"""Badge rendering and summaries (domain/badges.py): pure, no I/O."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from cronkeeper.domain.badges import (
    COLOURS,
    MAX_LABEL,
    BadgeSummary,
    render_svg,
    shields_json,
    summarise,
    text_width,
)

SVG = "{http://www.w3.org/2000/svg}"


def texts(svg: str) -> list[str]:
    return [node.text or "" for node in ET.fromstring(svg).iter(f"{SVG}text")]


def test_the_worst_state_wins() -> None:
    assert summarise(["up", "late", "down", "down"]) == BadgeSummary("down", 4, 1, 2)
    assert summarise(["up", "late", "new"]) == BadgeSummary("late", 3, 1, 0)
    assert summarise(["up", "new", "paused"]) == BadgeSummary("up", 3, 0, 0)


def test_no_jobs_is_up_as_in_healthchecks() -> None:
    assert summarise([]) == BadgeSummary("up", 0, 0, 0)


def test_two_state_badges_report_late_as_up_but_keep_the_counts() -> None:
    assert summarise(["late"], two_states=True) == BadgeSummary("up", 1, 1, 0)
    assert summarise(["late", "down"], two_states=True).status == "down"


def test_json_has_healthchecks_fields() -> None:
    assert summarise(["down"]).to_json() == {"status": "down", "total": 1, "grace": 0, "down": 1}


@pytest.mark.parametrize("status", ["up", "late", "down"])
def test_svg_is_well_formed_with_label_status_and_colour(status: str) -> None:
    svg = render_svg("backups", status)  # type: ignore[arg-type]

    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("height") == "20"
    assert texts(svg) == ["backups", "backups", status, status]
    assert f'fill="{COLOURS[status]}"' in svg


def test_svg_escapes_the_label() -> None:
    svg = render_svg('<script>"x" & y</script>', "up")

    assert "<script>" not in svg
    assert texts(svg)[0] == '<script>"x" & y</script>'


def test_width_follows_the_text() -> None:
    narrow, wide = render_svg("ill", "up"), render_svg("WWWWWWWW", "up")

    def width(svg: str) -> int:
        return int(ET.fromstring(svg).get("width") or 0)

    assert width(narrow) < width(wide)
    assert text_width("WWW") > text_width("iii") > 0
    assert width(narrow) == text_width("ill") + 10 + text_width("up") + 10


def test_long_labels_are_cut() -> None:
    label = texts(render_svg("x" * 500, "down"))[0]

    assert len(label) == MAX_LABEL and label.endswith("…")


def test_shields_endpoint_document() -> None:
    assert shields_json("prod", "late") == {
        "schemaVersion": 1,
        "label": "prod",
        "message": "late",
        "color": "important",
    }
