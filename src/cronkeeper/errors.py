"""The whole exception tree of Cronkeeper.

    CronkeeperError
    ├── InvalidInput            bad input; carries FieldError(s) naming the field at fault
    │   └── MalformedBody       the request body is not JSON at all
    ├── NotFound                the named project/job/run/key does not exist (or is not yours)
    ├── Conflict                unique name taken (slug, channel name, project)
    ├── IllegalTransition       a state change the state machine forbids
    ├── AuthError
    │   ├── Unauthenticated     no key, malformed key, unknown or revoked key
    │   └── Forbidden           the key's role or project does not allow this
    ├── RateLimited             too many requests; carries retry_after seconds
    └── ClientError             the CLI/SDK got an error answer from the server

Adapters map each class to one outcome: the API to a problem+json status, the CLI to an
exit code and one line on stderr. Nothing else should escape to a user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field; `field` is a dotted path such as `retry.backoff`."""

    field: str
    message: str


class CronkeeperError(Exception):
    """Base of every error Cronkeeper raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled whole (its fields, not the constructor's arguments): the ping writer
        # process (store/write_process.py) sends these back as results.
        return _restore, (type(self), self.args, dict(self.__dict__))


def _restore(kind: type[CronkeeperError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = kind.__new__(kind)
    error.args = args
    error.__dict__.update(state)
    return error


class InvalidInput(CronkeeperError):
    def __init__(self, errors: list[FieldError] | FieldError, detail: str | None = None) -> None:
        self.errors = [errors] if isinstance(errors, FieldError) else list(errors)
        self.detail = detail or "; ".join(f"{e.field}: {e.message}" for e in self.errors)
        super().__init__(self.detail)


class MalformedBody(InvalidInput):
    """The request body is not JSON at all (HTTP 400 rather than 422)."""


class NotFound(CronkeeperError):
    def __init__(self, what: str, name: str) -> None:
        self.what, self.name = what, name
        super().__init__(f"{what} {name!r} not found")


class Conflict(CronkeeperError):
    def __init__(self, detail: str, field: str | None = None) -> None:
        self.detail, self.field = detail, field
        super().__init__(detail)


class IllegalTransition(CronkeeperError):
    pass


class AuthError(CronkeeperError):
    pass


class Unauthenticated(AuthError):
    pass


class Forbidden(AuthError):
    pass


@dataclass
class RateLimited(CronkeeperError):
    detail: str
    retry_after: float = field(default=1.0)

    def __post_init__(self) -> None:
        super().__init__(self.detail)


class ClientError(CronkeeperError):
    """An error answer from a Cronkeeper server (CLI and SDK side)."""

    def __init__(self, status: int, detail: str, body: object = None) -> None:
        self.status, self.detail, self.body = status, detail, body
        super().__init__(detail)
