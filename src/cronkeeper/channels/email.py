"""E-mail channel: SMTP with the standard library, in a worker thread.

Config: `{"to": ["ops@example.com"], "smtp_url": "smtp://user:pass@host:port",
"from": "cronkeeper@example.com"}`. `smtp://` is plain SMTP (port 25; add
`?starttls=true` to upgrade), `smtp+starttls://` upgrades with STARTTLS (port 587),
`smtps://` is implicit TLS (port 465). The message has a plain-text and an HTML part.

Refusals that retrying cannot fix are permanent: authentication failed, a 5xx answer
(sender, recipients or data refused), a server without STARTTLS or AUTH when the URL
asks for them. Connection errors, timeouts and 4xx answers are retried.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cronkeeper.channels.render import html_body, text_body
from cronkeeper.domain.notifications import Delivery, Message, subject

TIMEOUT = 20.0
DEFAULT_FROM = "cronkeeper@localhost"
_PORTS = {"plain": 25, "starttls": 587, "tls": 465}
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    security: str  # plain | starttls | tls
    username: str | None = None
    password: str | None = None


def parse_smtp_url(url: str) -> SmtpTarget:
    """`smtp[s]://[user[:password]@]host[:port][?starttls=true]`; ValueError says what is wrong."""
    parts = urlsplit(url)
    schemes = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "tls"}
    if parts.scheme not in schemes:
        raise ValueError("must start with smtp://, smtp+starttls:// or smtps://")
    if not parts.hostname:
        raise ValueError("must name a host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    security = schemes[parts.scheme]
    starttls = parse_qs(parts.query).get("starttls", [""])[0].lower()
    if security == "plain" and starttls in _TRUE:
        security = "starttls"
    return SmtpTarget(
        host=parts.hostname,
        port=port or _PORTS[security],
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def build_email(config: Mapping[str, Any], message: Message) -> EmailMessage:
    """The e-mail for a message: subject, text part, HTML alternative."""
    mail = EmailMessage()
    sender = str(config.get("from") or DEFAULT_FROM)
    mail["Subject"] = subject(message)
    mail["From"] = sender
    mail["To"] = ", ".join(config["to"])
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "cronkeeper")
    mail.set_content(text_body(message))
    mail.add_alternative(html_body(message), subtype="html")
    return mail


def _deliver(target: SmtpTarget, mail: EmailMessage, timeout: float) -> None:
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if target.security == "tls":
        client = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(target.host, target.port, timeout=timeout)
    with client:
        client.ehlo()
        if target.security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if target.username:
            client.login(target.username, target.password or "")
        client.send_message(mail)


def classify_smtp_error(error: Exception) -> tuple[str, bool]:
    """One line describing an SMTP failure, and whether it is permanent."""
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return f"authentication failed: {_reply(error.smtp_code, error.smtp_error)}", True
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        refused = ", ".join(
            f"{who} ({_reply(code, text)})" for who, (code, text) in error.recipients.items()
        )
        return f"recipients refused: {refused}", all(code >= 500 for code in codes)
    if isinstance(error, smtplib.SMTPResponseException):
        return f"SMTP refused: {_reply(error.smtp_code, error.smtp_error)}", error.smtp_code >= 500
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return f"SMTP server does not support what the URL asks: {error}", True
    if isinstance(error, TimeoutError):
        return "SMTP server did not answer in time", False
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:500], False


def _reply(code: int, text: bytes | str) -> str:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(message.split())}"[:300]


class EmailSender:
    """Delivers messages over SMTP; each delivery opens its own connection in a thread."""

    def __init__(self, timeout: float = TIMEOUT) -> None:
        self._timeout = timeout

    async def send(self, config: Mapping[str, Any], message: Message) -> Delivery:
        """Deliver one message; never raises but CancelledError."""
        started = time.monotonic()
        try:
            target = parse_smtp_url(str(config["smtp_url"]))
            mail = build_email(config, message)
            await asyncio.to_thread(_deliver, target, mail, self._timeout)
        except Exception as error:
            text, permanent = classify_smtp_error(error)
            return Delivery(False, _ms(started), text, permanent or isinstance(error, ValueError))
        return Delivery(ok=True, latency_ms=_ms(started))

    async def close(self) -> None:
        """Nothing to close: connections live for one delivery."""


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
