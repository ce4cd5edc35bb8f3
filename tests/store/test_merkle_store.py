"""What the SQLite file's Merkle tree does when someone edits the file: a changed or deleted
node fails ``verify``; a log written before the tree was kept gets its tree at open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from ledger import open_store
from tests.support import rfc9162
from tests.support.sample_events import REGISTRY
from tests.support.store_conformance import new


async def _fill(path: Path, count: int) -> None:
    async with open_store(path, registry=REGISTRY) as store:
        await store.append("note-m", [new(str(i)) for i in range(count)])


async def _verify(path: Path) -> tuple[bool, str | None, str | None]:
    async with open_store(path, registry=REGISTRY) as store:
        report = await store.verify()
    return report.ok, report.reason, report.root


def _sql(path: Path, *statements: str) -> None:
    db = sqlite3.connect(path)
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


@pytest.mark.parametrize(("change", "why"), [
    ("UPDATE merkle_nodes SET hash = zeroblob(32) WHERE level = 9", "does not match"),
    ("DELETE FROM merkle_nodes WHERE level = 8 AND idx = 0", "is missing"),
])
def test_an_edited_tree_node_fails_verify(tmp_path: Path, change: str, why: str) -> None:
    path = tmp_path / "ledger.db"
    anyio.run(_fill, path, 600)
    _sql(path, "DROP TRIGGER merkle_nodes_no_update", "DROP TRIGGER merkle_nodes_no_delete",
         change)
    ok, reason, _ = anyio.run(_verify, path)
    assert not ok and reason is not None and why in reason


def test_a_log_written_before_the_tree_gets_it_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    anyio.run(_fill, path, 700)
    _sql(path, "DROP INDEX events_account", "ALTER TABLE events DROP COLUMN account_id",
         "DROP TABLE merkle_nodes", "DROP TABLE merkle_frontier",
         "DROP TABLE ledger_identity", "DROP TABLE tracking", "PRAGMA user_version = 1")
    ok, _, root = anyio.run(_verify, path)
    records = [r[0] for r in sqlite3.connect(path).execute(
        "SELECT record FROM events ORDER BY position")]
    assert ok and root == rfc9162.mth(records).hex()
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM merkle_nodes").fetchone()[0] == 3


def test_writer_processes_sharing_a_file_keep_one_tree(tmp_path: Path) -> None:
    """Each writer catches its tree up with what the others wrote: the stored nodes are the
    ones the records make, and the root is the naive RFC computation's."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path}/shared.db"
    writers = [subprocess.Popen([sys.executable, "-m", "tests.store.pg_writer", url, str(n),
                                 "1.5"], cwd=Path(__file__).parents[2],
                                stdout=subprocess.DEVNULL) for n in range(3)]
    assert [w.wait(timeout=60) for w in writers] == [0, 0, 0]
    ok, reason, root = anyio.run(_verify, tmp_path / "shared.db")
    records = [r[0] for r in sqlite3.connect(tmp_path / "shared.db").execute(
        "SELECT record FROM events ORDER BY position")]
    assert ok, reason
    assert len(records) > 1_000 and root == rfc9162.mth(records).hex()
