"""Rebuilds in parts (``projections.partitions``): how the accounts are cut, and what a part
refuses. That the parts' merge is the projection of the whole log is a property in
``test_projection_properties``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import open_store
from ledger.store import AccountRange
from projections import ProjectionFailedError, ProjectionRunner
from projections.backends import ProjectionUsageError
from projections.backends.sqlite import projection_file
from projections.partitions import plan_parts
from tests.projections.test_online_rebuild import (
    deposits,
    record,
    served,
    the_same_as_a_replay,
)
from tests.support.known_history import known_history


def _parts_left(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if "~part" in p.name]


_SIZES = st.tuples(st.integers(0, 50), st.dictionaries(
    st.text(min_size=1, max_size=3), st.integers(1, 100), max_size=30))


@given(sizes=_SIZES, workers=st.integers(1, 8))
def test_the_parts_cut_the_accounts_into_contiguous_ranges_of_about_equal_events(
        sizes: tuple[int, dict[str, int]], workers: int) -> None:
    unowned, owned = sizes
    ordered = sorted(owned.items())
    sizes_read: list[tuple[str | None, int]] = [(None, unowned)] if unowned else []
    parts = plan_parts([*sizes_read, *ordered], workers)
    assert 1 <= len(parts) <= max(1, min(workers, len(owned)))
    assert [p.unowned for p in parts] == [True] + [False] * (len(parts) - 1)
    members = [[a for a, _ in ordered if p.holds(a)] for p in parts]
    assert [a for m in members for a in m] == [a for a, _ in ordered]  # each once, in order
    assert all(members) or not owned
    total = unowned + sum(owned.values())
    biggest = max(owned.values(), default=0)
    for part, accounts in zip(parts, members, strict=True):
        share = sum(owned[a] for a in accounts) + (unowned if part.unowned else 0)
        # Cut where the running count passes each share: a part overshoots its share by
        # less than one account (the first part also holds the events of no account).
        assert share <= total / len(parts) + biggest + unowned


def test_no_accounts_make_one_part_of_what_has_none() -> None:
    assert plan_parts([(None, 5)], 4) == [AccountRange(None, None, unowned=True)]
    assert plan_parts([], 3) == [AccountRange(None, None, unowned=True)]


@pytest.mark.anyio
@pytest.mark.parametrize("workers", [0, 9, True, 2.0, "2"])
async def test_a_number_of_workers_out_of_range_is_refused_before_anything(
        tmp_path: Path, workers: object) -> None:
    async with open_store(tmp_path / "l.db") as store, ProjectionRunner(store) as runner:
        await record(store, deposits(20))
        await runner.catch_up()
        with pytest.raises(ProjectionUsageError, match="workers"):
            await runner.rebuild(workers=workers)  # type: ignore[arg-type]
        with pytest.raises(ProjectionUsageError, match="workers"):
            await runner.rebuild_online(workers=workers)  # type: ignore[arg-type]
        assert runner.position == 20 and not await runner.rebuild_left_off()


@pytest.mark.anyio
async def test_an_online_rebuild_in_parts_swaps_in_the_same_tables(tmp_path: Path) -> None:
    log = tmp_path / "l.db"
    async with open_store(log) as store, ProjectionRunner(store, commit_every=40) as runner:
        await record(store, [*known_history(), *deposits(200)])
        await runner.catch_up()
        before = served(log)
        assert await runner.rebuild_online(workers=3) == await store.head()
        assert served(log) == before
        await the_same_as_a_replay(store, runner)
    assert _parts_left(tmp_path) == []


@pytest.mark.anyio
async def test_a_part_reading_an_event_indexed_under_another_account_fails_the_rebuild(
        tmp_path: Path) -> None:
    """The account column is outside the hash chain: altered, the part that reads the event
    refuses, and the tables that serve are untouched."""
    log = tmp_path / "l.db"
    async with open_store(log) as store, ProjectionRunner(store) as runner:
        await record(store, deposits(70))  # accounts a0 .. a6
        await runner.catch_up()
        before = served(log)
        db = sqlite3.connect(log, isolation_level=None)
        db.execute("DROP TRIGGER events_no_update")
        (position,) = db.execute("SELECT MIN(position) FROM events WHERE account_id = 'a1'"
                                 ).fetchone()
        db.execute("UPDATE events SET account_id = 'a6' WHERE position = ?", (position,))
        db.close()
        with pytest.raises(ProjectionFailedError, match=f"position {position}: "):
            await runner.rebuild_online(workers=2)
        assert served(log) == before and runner.position == 70
        assert await runner.rebuild_left_off()  # the rebuild's own tables, still empty
    assert _parts_left(tmp_path) == []


def test_parts_left_by_a_crash_are_dropped_not_counted(tmp_path: Path) -> None:
    """A part's tables left behind (its rebuild killed) are begun anew by the next one."""
    log = tmp_path / "l.db"

    async def main() -> None:
        async with open_store(log) as store:
            await record(store, deposits(90))
            async with ProjectionRunner(store, name="ledger~part0") as stale:
                await stale.fold_part(AccountRange("a0", "a6", unowned=True), 90)
            async with ProjectionRunner(store) as runner:
                await runner.rebuild(workers=2)
                await the_same_as_a_replay(store, runner)

    anyio.run(main)
    assert not projection_file(log, "ledger~part0").exists()
