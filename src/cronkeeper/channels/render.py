"""Rendering a message for a channel: webhook body templates (JSON-escaped placeholders)
and the plain-text / HTML bodies of e-mail and Apprise notifications."""

from __future__ import annotations

import html
import json
from typing import Any

from cronkeeper.domain.notifications import Message, detail_lines, template_variables
from cronkeeper.domain.templates import render_template


def json_escaped(value: Any) -> Any:
    """Strings escaped for the inside of a JSON string literal (quotes, backslashes,
    control characters); containers recursively; other values unchanged."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)[1:-1]
    if isinstance(value, dict):
        return {key: json_escaped(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_escaped(item) for item in value]
    return value


def render_body(template: str, message: Message) -> str:
    """A body template with every `{{ placeholder }}` replaced by its JSON-escaped value,
    so `{"text": "{{ job.name }}"}` stays valid JSON whatever the job is called."""
    return render_template(template, json_escaped(template_variables(message)))


def text_body(message: Message) -> str:
    """The plain-text body (e-mail, Apprise)."""
    return "\n".join(detail_lines(message)) + "\n"


def html_body(message: Message) -> str:
    """A simple HTML body: the same lines, escaped; the output tail preformatted."""
    lines = detail_lines(message)
    title, rest = lines[0], lines[1:]
    output: list[str] = []
    if "Output (tail):" in rest:
        cut = rest.index("Output (tail):")
        rest, output = rest[:cut], rest[cut + 1 :]
    paragraphs = "<br>\n".join(html.escape(line) for line in rest if line)
    block = f"<pre>{html.escape(chr(10).join(output))}</pre>" if output else ""
    return (
        f"<html><body><h2>{html.escape(title)}</h2>\n<p>{paragraphs}</p>\n{block}</body></html>\n"
    )
