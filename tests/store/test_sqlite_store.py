"""The conformance suite on the embedded SQLite backend, plus what only SQLite has."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from ledger import EventStore, open_store
from ledger.errors import StoreUrlError
from ledger.store.sqlite import SqliteEventStore
from tests.support.sample_events import REGISTRY
from tests.support.store_conformance import StoreConformance, StoreFactory


@pytest.fixture
def store_factory(tmp_path: Path) -> StoreFactory:
    @asynccontextmanager
    async def factory(**options: Any) -> AsyncIterator[EventStore]:
        options.setdefault("registry", REGISTRY)
        async with open_store(f"sqlite:///{tmp_path}/ledger.db", **options) as store:
            yield store

    return factory


class TestSqliteConformance(StoreConformance):
    pass


def test_urls_and_paths(tmp_path: Path) -> None:
    plain = open_store(tmp_path / "a.db", registry=REGISTRY)
    relative = open_store("sqlite:///rel.db", registry=REGISTRY)
    absolute = open_store(f"sqlite:///{tmp_path}/b.db?synchronous=normal", registry=REGISTRY)
    assert isinstance(plain, SqliteEventStore) and plain.path == tmp_path / "a.db"
    assert isinstance(relative, SqliteEventStore) and str(relative.path) == "rel.db"
    assert isinstance(absolute, SqliteEventStore) and absolute.synchronous == "normal"
    assert absolute.path == tmp_path / "b.db"
    for bad in ("sqlite://", "sqlite:///:memory:", "sqlite://host/x.db",
                f"sqlite:///{tmp_path}/c.db?cache=big", "mysql://x/y"):
        with pytest.raises(StoreUrlError):
            open_store(bad, registry=REGISTRY)
