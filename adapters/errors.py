"""How each kind of error is answered, in one table: the command line's exit code and the HTTP
status and problem code of the ledger's own endpoints. The kind (``ledger.errors.kind_of``)
alone decides; no caller rebuilds a check by hand."""

from __future__ import annotations

import socket
from typing import NamedTuple

from ledger.errors import (
    ConflictError,
    InternalError,
    InvalidInputError,
    LedgerError,
    NotFoundError,
    UnauthorisedError,
    UnavailableError,
    VerificationFailedError,
    kind_of,
)

EXIT_OK, EXIT_PROBLEM, EXIT_BAD_INPUT, EXIT_OUTAGE, EXIT_BUG = 0, 1, 2, 3, 4


class Answer(NamedTuple):
    exit_code: int
    http_status: int
    problem: str
    """The machine-readable ``error`` of a problem body."""


ANSWERS: dict[type[LedgerError], Answer] = {
    InvalidInputError: Answer(EXIT_BAD_INPUT, 400, "invalid_request"),
    NotFoundError: Answer(EXIT_BAD_INPUT, 404, "not_found"),
    ConflictError: Answer(EXIT_BAD_INPUT, 409, "conflict"),
    UnauthorisedError: Answer(EXIT_BAD_INPUT, 401, "not_authorised"),
    UnavailableError: Answer(EXIT_OUTAGE, 503, "unavailable"),
    VerificationFailedError: Answer(EXIT_PROBLEM, 422, "verification_failed"),
    InternalError: Answer(EXIT_BUG, 500, "internal_error"),
}

_FOREIGN_OUTAGES: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError,
                                                     socket.gaierror)
"""Errors from below the ledger that mean an outage, should one escape a wrapper."""


def answer_for(error: BaseException) -> Answer:
    """How ``error`` is answered: by its kind; anything else that reaches a front door (a
    missing file, bad usage) is bad input, unless it is an outage from below."""
    if isinstance(error, LedgerError):
        return ANSWERS[kind_of(error)]
    if any(_is_outage(e) for e in (error, error.__cause__) if e is not None):
        return ANSWERS[UnavailableError]
    return ANSWERS[InvalidInputError]


def _is_outage(error: BaseException) -> bool:
    import httpx

    return isinstance(error, (*_FOREIGN_OUTAGES, httpx.TransportError)) or (
        type(error).__module__.startswith("asyncpg"))  # the PostgreSQL driver's own errors
