"""Alert channels: deliver one notification and report a `Delivery`; they never write rows.

`Dispatcher` holds one sender per kind (webhook, email, apprise) and routes a message to
the sender of the channel's kind. The notifier loop keeps one for the process; a
one-off delivery (`channels test`) opens its own with `async with`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from cronkeeper import __version__
from cronkeeper.channels.apprise import AppriseSender
from cronkeeper.channels.email import EmailSender
from cronkeeper.channels.webhook import WebhookSender
from cronkeeper.domain.notifications import Delivery, Message, Sender
from cronkeeper.domain.ssrf import SsrfPolicy

KINDS = ("webhook", "email", "apprise")
USER_AGENT = f"Cronkeeper/{__version__} (alerts)"


class Dispatcher:
    """Routes each message to the sender of its channel's kind."""

    def __init__(self, policy: SsrfPolicy) -> None:
        self.webhook = WebhookSender(policy, user_agent=USER_AGENT)
        self.email = EmailSender()
        self.apprise = AppriseSender(policy)

    async def send(self, kind: str, config: Mapping[str, Any], message: Message) -> Delivery:
        """Deliver with the channel's sender; an unknown kind is a permanent error."""
        senders: dict[str, Sender] = {
            "webhook": self.webhook,
            "email": self.email,
            "apprise": self.apprise,
        }
        sender = senders.get(kind)
        if sender is None:
            return Delivery(ok=False, error=f"unknown channel kind {kind!r}", permanent=True)
        return await sender.send(config, message)

    async def close(self) -> None:
        await self.webhook.close()

    async def __aenter__(self) -> Dispatcher:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
