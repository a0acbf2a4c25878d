"""Process settings, read from flags or `CRONKEEPER_*` environment variables.

This is the only module that reads the environment.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Role = Literal["all", "api", "scheduler", "worker"]
EventLoop = Literal["auto", "uvloop", "asyncio"]


class Settings(BaseSettings):
    """Everything a `cronkeeper` process can be told; flags override the environment."""

    model_config = SettingsConfigDict(env_prefix="CRONKEEPER_", extra="ignore")

    db: str = Field(default="./cronkeeper.db", description="SQLite path or database URL")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    role: Role = "all"
    app: str | None = None
    public_url: str | None = Field(
        default=None, description="Base URL users reach this server at (ping URLs, links)"
    )
    allow_private: str = Field(
        default="",
        description="'1' to allow private/loopback HTTP targets, or a comma-separated CIDR list",
    )
    deny_hosts: str = Field(
        default="", description="Comma-separated host names (or *.suffix) HTTP jobs may not call"
    )
    deny_ips: str = Field(
        default="", description="Comma-separated IPs/CIDRs HTTP jobs may not call"
    )
    otel_endpoint: str | None = Field(
        default=None,
        validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description="Export spans over OTLP/HTTP to this collector (standard OTel variable)",
    )
    auth_failures_per_minute: int = Field(default=20, ge=1)
    url: str = Field(default="http://127.0.0.1:8080", description="Server URL for client commands")
    api_key: str | None = None
    ping_key: str | None = Field(default=None, description="Project ping key for `exec`/monitor")
    ping_url: str | None = Field(default=None, description="A job's ping URL for `exec`/monitor")
    event_loop: EventLoop = Field(
        default="auto", description="The server's event loop: uvloop when installed (auto)"
    )
    write_process: bool = Field(
        default=True,
        description="SQLite: write ping batches in a second process (uses a second core)",
    )
    outage_gap: float = Field(
        default=30.0, gt=0, description="Seconds without a monitor tick that are our own outage"
    )

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


def process_environment() -> dict[str, str]:
    """The environment a child process inherits (commands run by the command executor)."""
    return dict(os.environ)
