"""The channel body of DESIGN §3 as pydantic models, and the masking of channel secrets.

`parse_channel_body` validates `{"name", "kind", "config", "default"}` and the config of
its kind, naming every field at fault (`config.url`, `config.to[0]`, …). Masking hides
webhook header values and URL passwords / secret query values, SMTP passwords, and
Apprise tokens (Apprise's own privacy form); `unmask_config` puts stored secrets back
where a client echoed a masked value.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import AfterValidator, BaseModel, Field, ValidationError

from cronkeeper.channels.apprise import is_valid_url, mask_apprise_url
from cronkeeper.channels.email import parse_smtp_url
from cronkeeper.domain.masking import MASK, is_secret_name, mask_url
from cronkeeper.errors import FieldError, InvalidInput
from cronkeeper.service.schemas import HeaderName, HeaderValue, Strict, _check_http_url
from cronkeeper.service.validation import field_errors, load_body

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+$")
Template = Annotated[str | None, Field(max_length=65536)]


def _check_smtp_url(url: str) -> str:
    parse_smtp_url(url)
    return url


def _check_address(address: str) -> str:
    if not _EMAIL.match(address):
        raise ValueError("must be an e-mail address such as ops@example.com")
    return address


def _check_apprise_url(url: str) -> str:
    if not is_valid_url(url):
        raise ValueError("is not a URL Apprise can use (see the Apprise wiki for its services)")
    return url


Address = Annotated[str, Field(max_length=320), AfterValidator(_check_address)]


class WebhookConfig(Strict):
    url: Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_check_http_url)]
    method: Literal["POST", "PUT", "PATCH", "GET", "DELETE"] = "POST"
    headers: Annotated[dict[HeaderName, HeaderValue], Field(max_length=50, default_factory=dict)]
    body_down: Template = None
    body_up: Template = None


class EmailConfig(Strict):
    to: Annotated[list[Address], Field(min_length=1, max_length=50)]
    smtp_url: Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_check_smtp_url)]
    from_: Annotated[Address | None, Field(alias="from")] = None


class AppriseConfig(Strict):
    urls: Annotated[
        list[
            Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_check_apprise_url)]
        ],
        Field(min_length=1, max_length=20),
    ]


CONFIG_MODELS: dict[str, type[Strict]] = {
    "webhook": WebhookConfig,
    "email": EmailConfig,
    "apprise": AppriseConfig,
}


class ChannelIn(Strict):
    """A channel as users declare it; unknown fields are rejected."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    kind: Literal["webhook", "email", "apprise"]
    config: dict[str, Any]
    default: bool = False


class ChannelOut(BaseModel):
    """A channel as the API returns it (secrets masked)."""

    id: str
    name: str
    kind: str
    config: dict[str, Any]
    default: bool
    disabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


class NotificationOut(BaseModel):
    """One delivery (with its retries) of one message to one channel."""

    id: str
    alert_id: int | None
    channel: str
    event: str
    status: str
    attempts: int
    error: str | None
    latency_ms: int | None
    payload: dict[str, Any] | None
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None


def parse_channel_body(body: object) -> tuple[str, str, dict[str, Any], bool]:
    """Validate a channel body into (name, kind, config, default); InvalidInput otherwise."""
    body = load_body(body)
    if not isinstance(body, dict):
        raise InvalidInput(FieldError("body", "must be a JSON object"))
    try:
        channel = ChannelIn.model_validate(body)
    except ValidationError as error:
        raise InvalidInput(field_errors(error)) from None
    model = CONFIG_MODELS[channel.kind]
    try:
        config = model.model_validate(channel.config).model_dump(by_alias=True)
    except ValidationError as error:
        raise InvalidInput(field_errors(error, prefix="config")) from None
    if _has_unstorable(config):
        raise InvalidInput(FieldError("config", "must not contain NUL characters"))
    return channel.name, channel.kind, config, channel.default


def _has_unstorable(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_unstorable(k) or _has_unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_unstorable(item) for item in value)
    return False


def mask_query(url: str) -> str:
    """`mask_url`, plus the values of query parameters with secret-looking names."""
    url = mask_url(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(is_secret_name(name) for name, _ in pairs):
        return url
    query = urlencode([(n, MASK if is_secret_name(n) else v) for n, v in pairs], safe="*")
    return urlunsplit(parts._replace(query=query))


def mask_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a channel config with every secret replaced (responses, audit diffs)."""
    masked = dict(config)
    if kind == "webhook":
        masked["url"] = mask_query(str(config.get("url", "")))
        masked["headers"] = dict.fromkeys(config.get("headers") or {}, MASK)
    elif kind == "email":
        masked["smtp_url"] = mask_url(str(config.get("smtp_url", "")))
    elif kind == "apprise":
        masked["urls"] = [mask_apprise_url(str(url)) for url in config.get("urls") or []]
    return masked


def unmask_config(kind: str, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """Where a client sent back a masked value (it echoed a GET), keep the stored secret."""
    restored = dict(new)
    if kind == "webhook":
        if "url" in old and restored.get("url") == mask_query(str(old["url"])):
            restored["url"] = old["url"]
        old_headers, new_headers = old.get("headers") or {}, restored.get("headers")
        if isinstance(new_headers, dict):
            restored["headers"] = {
                name: old_headers.get(name, value) if value == MASK else value
                for name, value in new_headers.items()
            }
    elif kind == "email":
        if "smtp_url" in old and restored.get("smtp_url") == mask_url(str(old["smtp_url"])):
            restored["smtp_url"] = old["smtp_url"]
    elif kind == "apprise" and isinstance(restored.get("urls"), list):
        originals = {mask_apprise_url(str(url)): url for url in old.get("urls") or []}
        restored["urls"] = [originals.get(url, url) for url in restored["urls"]]
    return restored
