"""Where a ledger lives, as the command line names it: a SQLite file or a PostgreSQL URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from ledger import open_store
from ledger.errors import NotFoundError
from ledger.store import EventStore


def sqlite_path(db: str) -> Path | None:
    """The file a SQLite URL names (its ``?options`` are not part of it), None for others."""
    if db.startswith(("postgresql://", "postgres://")):
        return None
    if db.startswith("sqlite:///"):
        return Path(db.removeprefix("sqlite:///").partition("?")[0])
    return Path(db)


def redacted(db: str) -> str:
    """``db`` fit to show: a PostgreSQL URL's password replaced by ``***``."""
    scheme, sep, rest = db.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return db
    return f"{scheme}://{credentials.partition(':')[0]}:***@{host}"


def check_exists(db: str) -> None:
    """``NotFoundError`` unless ``db`` names an existing ledger (a server's is assumed)."""
    path = sqlite_path(db)
    if path is not None and not path.exists():
        raise NotFoundError(f"no ledger at {path} (give --db or set CARDLEDGER_DB)")


@asynccontextmanager
async def existing_store(db: str, *, must_exist: bool = True) -> AsyncIterator[EventStore]:
    """The store at ``db``; a SQLite file must exist unless the command creates one."""
    if must_exist:
        check_exists(db)
    async with open_store(db) as store:
        yield store
