"""Errors the processor client raises: each carries the HTTP status and the response body."""

from __future__ import annotations

from ledger.errors import LedgerError


class ProcessorError(LedgerError):
    def __init__(self, status: int, body: bytes, method: str, path: str) -> None:
        self.status, self.body, self.method, self.path = status, body, method, path
        super().__init__(f"{method} {path} -> {status}: {body[:300].decode(errors='replace')}")


class InvalidRequest(ProcessorError):
    """400: the request is malformed."""


class NotAuthorised(ProcessorError):
    """401: bad credentials, token or signature."""


class NotFound(ProcessorError):
    """404."""


class Conflict(ProcessorError):
    """409: an invalid state transition, a duplicate, or an idempotency key still in flight."""


class Refused(ProcessorError):
    """422: declined, or an idempotency key reused with another payload."""


class ServerError(ProcessorError):
    """5xx, after every retry."""


class DeadlineExceeded(LedgerError):
    """The request kept failing (network, 5xx, 409) until its deadline."""


def error_for(status: int, body: bytes, method: str, path: str) -> ProcessorError:
    kind = {400: InvalidRequest, 401: NotAuthorised, 404: NotFound, 409: Conflict,
            422: Refused}.get(status, ServerError if status >= 500 else ProcessorError)
    return kind(status, body, method, path)
