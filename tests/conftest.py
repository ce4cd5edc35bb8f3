from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the session; the suite skips only where none can be run."""
    from tests.support.postgres_cluster import Cluster, binaries

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
    from tests.support.postgres_cluster import new_database

    return new_database(postgres_server)
