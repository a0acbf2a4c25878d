"""Response envelopes and the problem document (RFC 9457)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Data(BaseModel, Generic[T]):
    data: T


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end")


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] = []
    retry_after: float | None = None


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    ip: str | None
    action: str
    target: str
    diff: dict[str, Any]
    outcome: str
    detail: str | None


class HealthOut(BaseModel):
    status: str
    version: str
    database: str | None = None
