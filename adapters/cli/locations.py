"""Where a ledger lives, as the command line names it: a SQLite file or a PostgreSQL URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ledger import open_store
from ledger.errors import NotFoundError
from ledger.store import EventStore, parse_store_url


def check_exists(db: str) -> None:
    """``NotFoundError`` unless ``db`` names an existing ledger (a server's is assumed)."""
    path = parse_store_url(db).path
    if path is not None and not path.exists():
        raise NotFoundError(f"no ledger at {path} (give --db or set CARDLEDGER_DB)")


@asynccontextmanager
async def existing_store(db: str, *, must_exist: bool = True) -> AsyncIterator[EventStore]:
    """The store at ``db``; a SQLite file must exist unless the command creates one."""
    if must_exist:
        check_exists(db)
    async with open_store(db) as store:
        yield store
