from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the session; the suite skips only where none can be run."""
    from tests.postgres_cluster import Cluster, binaries

    found = binaries()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL suite, but no server binaries were found")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed here: "
                    "the PostgreSQL suite is skipped (apt-get install postgresql to run it)")
    cluster = Cluster(found)
    url = cluster.start()
    try:
        yield url
    finally:
        cluster.stop()


@pytest.fixture
def postgres_database(postgres_server: str) -> str:
    """A fresh, empty database on the session's server: its URL."""
    import anyio
    import asyncpg

    name = f"t_{uuid.uuid4().hex}"

    async def create() -> None:
        db = await asyncpg.connect(postgres_server)
        try:
            await db.execute(f'CREATE DATABASE "{name}"')
        finally:
            await db.close()

    anyio.run(create)
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"
