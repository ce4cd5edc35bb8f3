"""``CardLedger.statement``'s paging: a statement pinned to the moment its first page was
asked for, so new events never move its lines, and cursors that are checked, never trusted.

A cursor names the statement it pages (account, currency, period, the pinned ``known_at``)
and the next line. It carries a digest of those: a cursor edited, cut or made for another
statement is an ``InvalidInputError``.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime

import msgspec

from ledger.errors import InvalidInputError
from ledger.interop import JSONReady
from projections.statement import Figures, StatementLine

MAX_LIMIT = 10_000


class Statement(msgspec.Struct, JSONReady, frozen=True, kw_only=True, rename="camel"):
    account_id: str
    currency: str
    start: datetime
    end: datetime
    known_at: datetime
    """What the statement knows: everything recorded by then (pinned by its first page)."""
    opening: Figures
    lines: list[StatementLine]
    """This page's lines."""
    closing: Figures
    next_cursor: str | None
    """Pass it back for the next page; None on the last one."""


class _Cursor(msgspec.Struct, array_like=True, frozen=True):
    account_id: str
    currency: str
    start: datetime
    end: datetime
    known_at: datetime
    offset: int


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=12, person=b"cardledger-stm").digest()


def make_cursor(account_id: str, currency: str, start: datetime, end: datetime,
                known_at: datetime, offset: int) -> str:
    body = msgspec.msgpack.encode(_Cursor(account_id, currency, start, end, known_at, offset))
    return base64.urlsafe_b64encode(_digest(body) + body).decode().rstrip("=")


def read_cursor(cursor: object, account_id: str, currency: str, start: datetime,
                end: datetime) -> tuple[datetime, int]:
    """The pinned ``known_at`` and the offset of a cursor for this statement, or
    ``InvalidInputError``."""
    if not isinstance(cursor, str) or len(cursor) > 2_000:
        raise InvalidInputError("cursor: not a cursor this ledger gave")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        digest, body = raw[:12], raw[12:]
        if _digest(body) != digest:
            raise ValueError("digest")
        found = msgspec.msgpack.decode(body, type=_Cursor)
    except (ValueError, msgspec.DecodeError):
        raise InvalidInputError("cursor: not a cursor this ledger gave (altered or cut)"
                                ) from None
    if (found.account_id, found.currency, found.start, found.end) != (
            account_id, currency, start, end) or found.offset < 0:
        raise InvalidInputError("cursor: it pages another statement (account, currency or "
                                "period)")
    return found.known_at, found.offset


def check_limit(limit: object) -> int:
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(f"limit: {limit!r} is not a number of lines from 1 to "
                                f"{MAX_LIMIT}")
    return limit
