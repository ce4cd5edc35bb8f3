"""Where a store lives, parsed from its URL once: every reader of a URL (``open_store``, the
command line's checks, what is shown in logs and reports) asks this module.

``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or a plain file path (SQLite
takes ``?synchronous=full``, the default, ``extra`` or ``normal``); ``postgresql://`` or
``postgres://user:password@host:port/database``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

import msgspec

from ledger.errors import StoreUrlError

_SQLITE_OPTIONS = {"synchronous"}


class StoreLocation(msgspec.Struct, frozen=True):
    backend: Literal["sqlite", "postgresql"]
    url: str
    """As given (for PostgreSQL, what the driver connects with: it holds the password)."""
    path: Path | None = None
    """The SQLite file (None for PostgreSQL)."""
    synchronous: str = "full"

    @property
    def shown(self) -> str:
        """The URL fit for a log or a report: a password replaced by ``***``."""
        return redacted(self.url)


def parse_store_url(url: str | os.PathLike[str]) -> StoreLocation:
    """The location ``url`` names, or ``StoreUrlError`` saying what is wrong with it."""
    text = os.fspath(url)
    scheme = text.partition("://")[0] if "://" in text else ""
    if scheme in ("postgresql", "postgres"):
        return StoreLocation("postgresql", text)
    if scheme not in ("", "sqlite"):
        raise StoreUrlError(f"no backend for {scheme!r} URLs (supported: sqlite:///PATH, a "
                            "path, postgresql://...)")
    path, query = _sqlite_location(text) if scheme else (text, {})
    unknown = set(query) - _SQLITE_OPTIONS
    if unknown:
        raise StoreUrlError(f"unknown SQLite option(s): {', '.join(sorted(unknown))}")
    if not path or path == ":memory:":
        raise StoreUrlError("the SQLite store needs a file path (':memory:' is not shared "
                            "between the writer and reader connections)")
    return StoreLocation("sqlite", text, Path(path), query.get("synchronous", "full"))


def _sqlite_location(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    if parts.netloc:
        raise StoreUrlError(f"{url!r}: write sqlite:///relative.db or sqlite:////abs/path.db")
    return parts.path[1:], dict(parse_qsl(parts.query))


def redacted(url: str) -> str:
    """``url`` fit to show: a password replaced by ``***`` (any text: a URL that does not
    parse is shown as it is, having no password to hide)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.partition(':')[0]}:***@{host}"
