"""Errors the processor client raises: each carries the HTTP status and the response body,
and each is one of the ledger's kinds (``ledger.errors``), so a caller, the command line and
the webhook receiver treat a processor's 404 as a ``NotFoundError``, its 5xx as an
``UnavailableError``, and so on, without knowing the processor."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import msgspec

from ledger.errors import (
    ConflictError,
    InvalidInputError,
    LedgerError,
    NotFoundError,
    UnauthorisedError,
    UnavailableError,
)


class ProcessorError(LedgerError):
    """The processor's answers (a group: each is also one kind). ``status`` 0: no answer."""

    def __init__(self, status: int, body: bytes, method: str, path: str,
                 retry_after: float | None = None) -> None:
        self.status, self.body, self.method, self.path = status, body, method, path
        self.retry_after = retry_after
        """Seconds the processor asked the caller to wait (its ``Retry-After``), if any."""
        super().__init__(f"{method} {path} -> {status}: {body[:300].decode(errors='replace')}")


class NotConfigured(ProcessorError, UnavailableError):
    """No processor (or no signing key) is configured yet: requests wait until there is."""


class InvalidRequest(ProcessorError, InvalidInputError):
    """400: the request is malformed."""


class NotAuthorised(ProcessorError, UnauthorisedError):
    """401: bad credentials, token or signature."""


class NotFound(ProcessorError, NotFoundError):
    """404."""


class Conflict(ProcessorError, ConflictError):
    """409: an invalid state transition, a duplicate, or an idempotency key still in flight."""


class Refused(ProcessorError, ConflictError):
    """422: declined, or an idempotency key reused with another payload."""


class RateLimited(ProcessorError, UnavailableError):
    """429: too many requests; ``retry_after`` says when to come back, if the processor did."""


class ServerError(ProcessorError, UnavailableError):
    """5xx, after every retry."""


class UnexpectedStatus(ProcessorError, InvalidInputError):
    """Another 4xx (403, 405, 413...): the processor refused the request as it is."""


class DeadlineExceeded(UnavailableError):
    """The request kept failing (network, 429, 5xx, 409) until its deadline."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        """The processor's last ``Retry-After``, in seconds, if it sent one."""


def error_for(status: int, body: bytes, method: str, path: str,
              retry_after: float | None = None) -> ProcessorError:
    kind = {400: InvalidRequest, 401: NotAuthorised, 404: NotFound, 409: Conflict,
            422: Refused, 429: RateLimited}.get(
        status, ServerError if status >= 500 else UnexpectedStatus)
    return kind(status, body, method, path, retry_after)


def retry_after_seconds(header: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header (RFC 9110: delay-seconds or an HTTP date) in seconds from
    now; None when absent or unreadable (the caller's own backoff applies then)."""
    if header is None:
        return None
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def is_transient(exc: LedgerError) -> bool:
    """Whether a failed request may succeed if sent again with the same idempotency key: a
    timeout or lost connection, 429, 5xx, a 401 (the token is refreshed before the next
    try; credentials may be rotated back), 408, or a 409 whose problem says the key is still
    in flight. Anything else is a definite refusal of this request."""
    if isinstance(exc, DeadlineExceeded):
        return True
    if not isinstance(exc, ProcessorError):
        return False
    if exc.status == 409:
        return _problem_code(exc.body) == "in_flight"
    return exc.status in (0, 401, 408, 429) or exc.status >= 500


def _problem_code(body: bytes) -> str | None:
    """The machine-readable code of a problem body (``error`` or ``code``), if any."""
    try:
        problem = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(problem, dict):
        return None
    code = problem.get("error", problem.get("code"))
    return code if isinstance(code, str) else None
