"""The event store's conformance suite: every backend subclasses ``StoreConformance`` unchanged.

A subclass provides one fixture, ``store_factory``: an async context manager factory that
opens a store on a fresh, empty database (the same database on every call within one test,
so reopening can be tested).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import anyio
import pytest

from ledger import (
    EventRegistry,
    EventStore,
    Metadata,
    NewEvent,
    StoredEvent,
    StreamState,
    Upcaster,
)
from ledger.errors import (
    ConflictError,
    DuplicateInBatchError,
    DuplicateStreamError,
    EmptyBatchError,
    EventIdConflictError,
    InvalidAppendError,
    InvalidInputError,
    InvalidPayloadError,
    InvalidPositionError,
    InvalidStreamNameError,
    LimitExceededError,
    PartialDuplicateError,
    SchemaError,
    StoreClosedError,
    TrackingConflictError,
    UnknownEventTypeError,
    WrongExpectedVersionError,
)
from ledger.store import (
    AccountRange,
    Event,
    StreamAppend,
    Tracking,
    account_of,
    consume,
    limits,
)
from tests.support import rfc9162
from tests.support.sample_events import Deposited, Fee, Noted, note

StoreFactory = Callable[..., AbstractAsyncContextManager[EventStore]]


def new(text: str = "x", **fields: Any) -> NewEvent[Event]:
    return NewEvent(payload=note(text, **fields))


async def everything(store: EventStore) -> list[StoredEvent[Any]]:
    return [e async for e in store.read_all()]


async def _event_at(store: EventStore, position: int) -> StoredEvent[Any]:
    (found,) = [e for e in await everything(store) if e.position == position]
    return found


def text_of(event: StoredEvent[Event]) -> str:
    assert isinstance(event.payload, Noted)
    return event.payload.text


class StoreConformance:
    pytestmark = pytest.mark.anyio  # a class attribute, so subclasses in other modules inherit it

    # --- appending ----------------------------------------------------------------------

    async def test_positions_and_versions_start_at_one_and_zero(
        self, store_factory: StoreFactory
    ) -> None:
        async with store_factory() as store:
            first = await store.append("note-a", [new("1"), new("2")])
            second = await store.append("note-b", [new("3")])
            third = await store.append("note-a", [new("4")])
        assert (first.positions, first.versions) == ((1, 2), (0, 1))
        assert (second.positions, second.versions) == ((3,), (0,))
        assert (third.positions, third.versions) == ((4,), (2,))
        assert not first.duplicate

    async def test_stored_event_carries_everything_appended(
        self, store_factory: StoreFactory
    ) -> None:
        at = datetime(2024, 1, 12, 15, 12, 26, 923705, tzinfo=UTC)
        metadata = Metadata(occurred_at=at, correlation_id="c-1", causation_id="e-0",
                            source="offblocks:event:42")
        payload = Deposited(account_id="a1", amount=Decimal("0.000000000000000001"),
                            fees=[Fee(kind="network", amount=Decimal("0.10"))])
        event = NewEvent(payload=payload, metadata=metadata)
        async with store_factory() as store:
            await store.append("account-a1", [event])
            (stored,) = await store.read_stream("account-a1")
        assert stored.event_id == event.event_id
        assert stored.event_id.version == 7
        assert stored.payload == payload
        assert stored.payload.amount.as_tuple() == Decimal("0.000000000000000001").as_tuple()
        assert stored.metadata == metadata
        assert (stored.type, stored.schema_version, stored.category) == ("Deposited", 1, "account")
        assert stored.recorded_at.tzinfo is not None

    @pytest.mark.parametrize(
        ("expected", "existing", "ok"),
        [
            (StreamState.ANY, 0, True), (StreamState.ANY, 2, True),
            (StreamState.NO_STREAM, 0, True), (StreamState.NO_STREAM, 1, False),
            (StreamState.EXISTS, 0, False), (StreamState.EXISTS, 1, True),
            (0, 1, True), (1, 1, False), (0, 0, False), (1, 2, True), (0, 2, False),
        ],
    )
    async def test_expected_version(self, store_factory: StoreFactory,
                                    expected: StreamState | int, existing: int, ok: bool) -> None:
        async with store_factory() as store:
            for i in range(existing):
                await store.append("note-s", [new(str(i))])
            head = await store.head()
            if ok:
                result = await store.append("note-s", [new("next")], expected=expected)
                assert result.versions == (existing,)
            else:
                with pytest.raises(WrongExpectedVersionError) as caught:
                    await store.append("note-s", [new("next")], expected=expected)
                assert caught.value.actual == (existing - 1 if existing else None)
                assert caught.value.stream == "note-s"
                assert await store.head() == head  # nothing written

    async def test_reappending_identical_events_returns_original_positions(
        self, store_factory: StoreFactory
    ) -> None:
        batch = [new("a"), new("b")]
        async with store_factory() as store:
            first = await store.append("note-x", batch, expected=StreamState.NO_STREAM)
            await store.append("note-y", [new("other")])
            # A retry after a lost acknowledgement: its expected version is stale by now.
            again = await store.append("note-x", batch, expected=StreamState.NO_STREAM)
            assert again.positions == first.positions and again.versions == first.versions
            assert again.duplicate
            assert await store.head() == 3
            assert len(await everything(store)) == 3

    async def test_same_id_with_other_content_is_a_conflict(
        self, store_factory: StoreFactory
    ) -> None:
        original = new("a")
        async with store_factory() as store:
            await store.append("note-x", [original])
            variants = [
                NewEvent(payload=note("changed"), event_id=original.event_id),
                NewEvent(payload=original.payload, event_id=original.event_id,
                         metadata=Metadata(source="elsewhere")),
            ]
            for variant in variants:
                with pytest.raises(EventIdConflictError) as caught:
                    await store.append("note-x", [variant])
                assert (caught.value.event_id, caught.value.position) == (original.event_id, 1)
            with pytest.raises(EventIdConflictError):  # same content, other stream
                await store.append("note-other", [original])
            assert await store.head() == 1

    async def test_batch_that_partly_overlaps_an_earlier_one_writes_nothing(
        self, store_factory: StoreFactory
    ) -> None:
        stored, fresh = new("stored"), new("fresh")
        async with store_factory() as store:
            await store.append("note-x", [stored])
            for batch in ([stored, fresh], [fresh, stored]):
                with pytest.raises(PartialDuplicateError) as caught:
                    await store.append("note-x", batch)
                assert caught.value.stored == (stored.event_id,)
            assert await store.head() == 1
            assert await store.stream_version("note-x") == 0

    async def test_bad_input_is_refused_with_a_typed_error_and_writes_nothing(
        self, store_factory: StoreFactory
    ) -> None:
        class Unregistered(Event, frozen=True):
            text: str

        naive = Metadata(occurred_at=datetime(2024, 1, 1))
        cases: list[tuple[type[Exception], str, list[Any]]] = [
            (EmptyBatchError, "note-x", []),
            (InvalidStreamNameError, "no_dash", [new()]),
            (InvalidStreamNameError, "-x", [new()]),
            (InvalidStreamNameError, "note-has space", [new()]),
            (InvalidStreamNameError, "note-" + "x" * 300, [new()]),
            (UnknownEventTypeError, "note-x", [NewEvent(payload=Unregistered(text="x"))]),
            (InvalidPayloadError, "account-x",
             [NewEvent(payload=Deposited(account_id="a", amount=1.5))]),  # type: ignore[arg-type]
            (InvalidPayloadError, "account-x",
             [NewEvent(payload=Deposited(account_id="a", amount=Decimal("NaN")))]),
            (InvalidPayloadError, "account-x", [NewEvent(payload=Deposited(
                account_id="a", amount=Decimal(1), fees=[Fee(kind="x", amount=0.1)]))]),  # type: ignore[arg-type]
            (InvalidPayloadError, "note-x", [NewEvent(payload=Noted(text=5))]),  # type: ignore[arg-type]
            (InvalidPayloadError, "note-x", [NewEvent(payload=Noted(text=object()))]),  # type: ignore[arg-type]
            (InvalidPayloadError, "note-x", [NewEvent(payload=note(), metadata=naive)]),
            (InvalidAppendError, "note-x", [note()]),
            (LimitExceededError, "note-x", [new("x" * (limits.MAX_EVENT_BYTES + 1))]),
            (LimitExceededError, "note-x", [new() for _ in range(limits.MAX_BATCH_EVENTS + 1)]),
        ]
        async with store_factory() as store:
            for error, stream, batch in cases:
                with pytest.raises(error):
                    await store.append(stream, batch)
            event = new()
            with pytest.raises(DuplicateInBatchError):
                await store.append("note-x", [event, event])
            for expected in (-1, True, "any", 1.0):
                with pytest.raises(InvalidAppendError):
                    await store.append("note-x", [new()], expected=expected)  # type: ignore[arg-type]
            assert await store.head() == 0

    # --- group commit -------------------------------------------------------------------

    async def test_a_conflict_in_a_shared_transaction_fails_only_its_caller(
        self, store_factory: StoreFactory
    ) -> None:
        outcomes: dict[str, Any] = {}

        async def append(name: str, stream: str, expected: StreamState | int) -> None:
            try:
                outcomes[name] = await store.append(stream, [new(name)], expected=expected)
            except WrongExpectedVersionError as exc:
                outcomes[name] = exc

        async with store_factory() as store:
            async with anyio.create_task_group() as group:
                for i in range(40):
                    group.start_soon(append, f"race{i}", "note-contested", StreamState.NO_STREAM)
                    group.start_soon(append, f"free{i}", f"note-free{i}", StreamState.NO_STREAM)
            winners = [n for n, o in outcomes.items() if n.startswith("race")
                       and not isinstance(o, Exception)]
            losers = [o for o in outcomes.values() if isinstance(o, WrongExpectedVersionError)]
            assert len(winners) == 1
            assert len(losers) == 39 and all(e.actual == 0 for e in losers)
            assert all(not isinstance(outcomes[f"free{i}"], Exception) for i in range(40))
            positions = sorted(p for o in outcomes.values() if not isinstance(o, Exception)
                               for p in o.positions)
            assert positions == list(range(1, 42))  # no hole where the losers were

    async def test_concurrent_appends_of_the_same_event_store_it_once(
        self, store_factory: StoreFactory
    ) -> None:
        event = new("once")
        results: list[Any] = []

        async def append() -> None:
            results.append(await store.append("note-once", [event]))

        async with store_factory() as store:
            async with anyio.create_task_group() as group:
                for _ in range(10):
                    group.start_soon(append)
            assert {r.positions for r in results} == {(1,)}
            assert sum(not r.duplicate for r in results) == 1
            assert await store.head() == 1

    async def test_each_caller_gets_its_own_positions(self, store_factory: StoreFactory) -> None:
        results: dict[int, Any] = {}

        async def append(i: int) -> None:
            results[i] = await store.append(f"note-{i % 7}", [new(str(i), index=i)])

        async with store_factory() as store:
            async with anyio.create_task_group() as group:
                for i in range(300):
                    group.start_soon(append, i)
            by_position = {e.position: e for e in await everything(store)}
        assert sorted(by_position) == list(range(1, 301))
        for i, result in results.items():
            assert by_position[result.positions[0]].payload.index == i

    async def test_appends_that_wait_together_share_a_transaction(
        self, store_factory: StoreFactory
    ) -> None:
        # The store reads its clock once per transaction. Appends made one after another
        # each have their own; appends that are waiting at once are committed together.
        commits = 0

        def clock() -> datetime:
            nonlocal commits
            commits += 1
            return datetime.now(UTC)

        async with store_factory(clock=clock) as store:
            for i in range(5):
                await store.append("note-alone", [new(f"alone{i}")])
            assert commits == 5
            async with anyio.create_task_group() as group:
                for i in range(100):
                    group.start_soon(store.append, f"note-{i}", [new(f"together{i}")])
            assert commits <= 5 + 3, "100 appends waiting at once took a transaction each"
            assert await store.head() == 105

    # --- reading ------------------------------------------------------------------------

    async def test_events_are_read_by_account_each_one_in_log_order(
        self, store_factory: StoreFactory
    ) -> None:
        accounts = ["acc-b", "acc-a", "acc-c", "acc-é"]
        async with store_factory() as store:
            for i in range(40):  # interleaved: 4 accounts, and a note of no account every 5th
                account = accounts[i % 4]
                await store.append(f"account-{i % 4}", [NewEvent(payload=Deposited(
                    account_id=account, amount=Decimal(i)))])
                if i % 5 == 0:
                    await store.append("note-x", [new(str(i))])
            head = await store.head()
            assert await store.account_sizes(head) == [
                (None, 8), ("acc-a", 10), ("acc-b", 10), ("acc-c", 10), ("acc-é", 10)]
            assert await store.account_sizes(6) == [(None, 1), ("acc-a", 1), ("acc-b", 2),
                                                    ("acc-c", 1), ("acc-é", 1)]

            async def read(part: AccountRange, upto: int = head) -> list[StoredEvent[Any]]:
                return [e async for batch in store.read_accounts(part, upto=upto, batch_size=3)
                        for e in batch]

            everyone = await read(AccountRange("acc-a", "acc-é", unowned=True))
            assert len(everyone) == head
            assert [account_of(e.payload) for e in everyone] == sorted(
                (account_of(e.payload) for e in everyone), key=lambda a: (a is not None, a or ""))
            for owner in [None, *accounts]:
                own = [e.position for e in everyone if account_of(e.payload) == owner]
                assert own == sorted(own)
            middle = await read(AccountRange("acc-b", "acc-c"))
            assert {account_of(e.payload) for e in middle} == {"acc-b", "acc-c"}
            assert len(middle) == 20
            assert [e.position for e in await read(AccountRange(None, None, unowned=True), 8)] \
                == [2, 8]
            assert await read(AccountRange("acc-x", "acc-z")) == []

    async def test_read_stream_from_a_version(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            for i in range(5):
                await store.append("note-s", [new(str(i))])
            await store.append("note-t", [new("t")])
            texts = [text_of(e) for e in await store.read_stream("note-s", from_version=2)]
            assert texts == ["2", "3", "4"]
            limited = await store.read_stream("note-s", limit=2)
            assert [e.version for e in limited] == [0, 1]
            assert await store.read_stream("note-none") == []
            assert await store.stream_version("note-s") == 4
            assert await store.stream_version("note-none") is None

    async def test_read_all_in_bounded_batches_and_filtered(
        self, store_factory: StoreFactory
    ) -> None:
        async with store_factory() as store:
            for i in range(30):
                await store.append(f"note-{i % 3}", [new(str(i))])
                await store.append(f"account-{i % 2}",
                                   [NewEvent(payload=Deposited(account_id="a",
                                                               amount=Decimal(i)))])
            batches = [b async for b in store.read_batches(10, batch_size=7)]
            assert max(len(b) for b in batches) <= 7
            assert [e.position for b in batches for e in b] == list(range(11, 61))
            notes = [e async for e in store.read_all(categories=["note"])]
            assert [text_of(e) for e in notes] == [str(i) for i in range(30)]
            deposits = [e async for e in store.read_all(types=["Deposited"])]
            assert len(deposits) == 30 and all(e.stream.startswith("account-") for e in deposits)
            both = [e async for e in store.read_all(20, categories=["note", "account"])]
            assert [e.position for e in both] == list(range(21, 61))
            none = [e async for e in store.read_all(categories=["note"], types=["Deposited"])]
            assert none == []
            with pytest.raises(UnknownEventTypeError):
                [e async for e in store.read_all(types=["Nope"])]

    async def test_category_filter_does_not_match_longer_categories(
        self, store_factory: StoreFactory
    ) -> None:
        async with store_factory() as store:
            for stream in ("card-1", "cards-1", "card_x-1", "cardA-1", "car-1"):
                await store.append(stream, [new(stream)])
            found = [e.stream async for e in store.read_all(categories=["card"])]
        assert found == ["card-1"]

    async def test_subscription_catches_up_then_follows_live_commits(
        self, store_factory: StoreFactory
    ) -> None:
        async with store_factory() as store:
            for i in range(5):
                await store.append("note-s", [new(str(i))])
            await store.append("account-a", [NewEvent(payload=Deposited(account_id="a",
                                                                       amount=Decimal(1)))])
            seen: list[str] = []
            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:

                    async def follow() -> None:
                        async for batch in store.subscribe(2, categories=["note"], batch_size=2):
                            seen.extend(text_of(e) for e in batch)
                            if len(seen) == 6:
                                group.cancel_scope.cancel()

                    group.start_soon(follow)
                    await anyio.sleep(0.05)
                    await store.append("account-a", [NewEvent(payload=Deposited(
                        account_id="a", amount=Decimal(2)))])
                    for i in range(5, 8):
                        await store.append("note-s", [new(str(i))])
            assert seen == ["2", "3", "4", "5", "6", "7"]

    async def test_wait_for_position(self, store_factory: StoreFactory) -> None:
        reached: list[int] = []

        async def wait() -> None:
            await store.wait_for_position(2)
            reached.append(await store.head())

        async with store_factory() as store:
            with pytest.raises(TimeoutError), anyio.fail_after(0.05):
                await store.wait_for_position(1)
            with anyio.fail_after(5):
                async with anyio.create_task_group() as group:
                    group.start_soon(wait)
                    await anyio.sleep(0.01)
                    assert reached == []
                    await store.append("note-s", [new(), new()])
        assert reached == [2]

    # --- durability, time, schema -------------------------------------------------------

    async def test_events_survive_reopening(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            result = await store.append("note-s", [new("kept")])
        async with store_factory() as store:
            (event,) = await store.read_stream("note-s")
            assert (event.position, text_of(event)) == (result.positions[0], "kept")
            assert (await store.append("note-s", [new()])).positions == (2,)
            assert (await store.verify()).ok

    async def test_recorded_at_never_decreases_when_the_clock_steps_back(
        self, store_factory: StoreFactory
    ) -> None:
        times = iter([datetime(2030, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC),
                      datetime(2031, 1, 1, tzinfo=timezone(timedelta(hours=5)))])
        async with store_factory(clock=lambda: next(times)) as store:
            for i in range(3):
                await store.append("note-s", [new(str(i))])
            stamps = [e.recorded_at for e in await everything(store)]
        assert stamps[0] == stamps[1] == datetime(2030, 1, 1, tzinfo=UTC)
        assert stamps[2] == datetime(2030, 12, 31, 19, tzinfo=UTC)

    async def test_store_refuses_to_open_on_a_log_it_cannot_decode(
        self, store_factory: StoreFactory
    ) -> None:
        async with store_factory() as store:
            await store.append("account-a", [NewEvent(payload=Deposited(account_id="a",
                                                                       amount=Decimal(1)))])
        with pytest.raises(SchemaError, match="Deposited"):
            async with store_factory(registry=EventRegistry([Noted])):
                pass

    async def test_older_schemas_are_upcast_when_read(self, store_factory: StoreFactory) -> None:
        class NotedV2(Event, tag="Noted@2", frozen=True):
            words: list[str]

        registry = EventRegistry([NotedV2, Deposited], upcasters=[
            Upcaster(Noted, NotedV2, lambda old: NotedV2(words=old.text.split()))])
        async with store_factory() as store:
            await store.append("note-s", [new("two words")])
        async with store_factory(registry=registry) as store:
            await store.append("note-s", [NewEvent(payload=NotedV2(words=["new"]))])
            old, current = await store.read_stream("note-s")
            assert old.payload == NotedV2(words=["two", "words"])
            assert (old.type, old.schema_version) == ("Noted", 1)
            assert (current.type, current.schema_version) == ("Noted", 2)
            assert len([e async for e in store.read_all(types=["Noted"])]) == 2
            assert (await store.verify()).ok

    def test_registry_refuses_broken_upcaster_chains(self) -> None:
        class NotedV2(Event, tag="Noted@2", frozen=True):
            words: list[str]

        class NotedV3(Event, tag="Noted@3", frozen=True):
            words: list[str]

        with pytest.raises(SchemaError, match="do not reach"):
            EventRegistry([NotedV3], upcasters=[Upcaster(Noted, NotedV2, lambda e: e)])
        with pytest.raises(SchemaError, match="newer version"):
            EventRegistry([NotedV2], upcasters=[Upcaster(NotedV2, Noted, lambda e: e)])
        with pytest.raises(SchemaError, match="two current"):
            EventRegistry([Noted, NotedV2])

    async def test_verify_passes_on_an_untouched_log(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            empty = await store.verify()
            for i in range(12):
                await store.append(f"note-{i % 3}", [new(str(i)), new(str(i))])
            report = await store.verify()
        assert empty.ok and empty.checked == 0
        assert report.ok and report.checked == 24 and report.first_bad_position is None
        assert report.last_hash is not None and len(report.last_hash) == 64

    async def test_the_merkle_tree_is_the_rfcs_over_the_records(
        self, store_factory: StoreFactory
    ) -> None:
        """Appended in groups of odd sizes across reopenings (the writer resumes the tree
        from the database), the tree's roots and proofs at every size asked equal a naive
        RFC 9162 computation over the stored records."""
        for group in (3, 250, 1, 300, 17):
            async with store_factory() as store:
                await store.append("note-t", [new(str(i)) for i in range(group)])
        async with store_factory() as store:
            records = [row.record async for rows in store.raw_rows() for row in rows]
            size = len(records)
            report = await store.verify()
            assert report.ok and report.root == rfc9162.mth(records).hex()
            for n in (1, 3, 255, 256, 257, 554, size):
                assert await store.tree_root(n) == (n, rfc9162.mth(records[:n]))
            for position in (1, 256, 257, 553, size):
                assert await store.inclusion_proof(position, size) == rfc9162.path(
                    position - 1, records)
            for old in (1, 253, 256, 512, size):
                assert await store.consistency_proof(old, size) == rfc9162.proof(old, records)
            assert (await store.tree_root(0))[1] == rfc9162.mth([])
            with pytest.raises(InvalidPositionError, match="past the end"):
                await store.inclusion_proof(size + 1, size)
            with pytest.raises(InvalidPositionError, match="past the end"):
                await store.consistency_proof(1, size + 1)
            with pytest.raises(InvalidPositionError):
                await store.inclusion_proof(0, size)
            origin = await store.origin()
        async with store_factory() as store:
            assert await store.origin() == origin and origin.startswith("cardledger/")

    # --- atomic appends across streams -------------------------------------------------

    async def test_append_many_writes_every_stream_or_none(
        self, store_factory: StoreFactory
    ) -> None:
        async with store_factory() as store:
            first = await store.append_many([StreamAppend("note-a", [new("1"), new("2")]),
                                             StreamAppend("note-b", [new("3")],
                                                          StreamState.NO_STREAM)])
            assert [(r.stream, r.positions, r.versions) for r in first] == [
                ("note-a", (1, 2), (0, 1)), ("note-b", (3,), (0,))]
            head = await store.head()
            moved = [StreamAppend("note-c", [new("4")], StreamState.NO_STREAM),
                     StreamAppend("note-b", [new("5")], 7)]
            with pytest.raises(WrongExpectedVersionError) as refused:
                await store.append_many(moved)
            assert refused.value.stream == "note-b" and refused.value.actual == 0
            assert await store.head() == head and await store.stream_version("note-c") is None
            retried = await store.append_many([StreamAppend("note-a", [new("x")])])
            again = await store.append_many([StreamAppend(
                "note-a", [NewEvent(payload=e.payload, event_id=e.event_id)
                           for e in [await _event_at(store, retried[0].positions[0])]])])
            assert again[0].duplicate and again[0].positions == retried[0].positions
            assert (await store.verify()).ok

    async def test_append_many_refuses_bad_input_and_writes_nothing(
        self, store_factory: StoreFactory
    ) -> None:
        async with store_factory() as store:
            over = limits.MAX_BATCH_EVENTS // 2 + 1
            shared = new("same")
            for bad, error in [
                ([StreamAppend("note-a", [new()]), StreamAppend("note-a", [new()])],
                 DuplicateStreamError),
                ([], EmptyBatchError),
                ([StreamAppend("note-a", [])], EmptyBatchError),
                ([StreamAppend("note-a", [new() for _ in range(over)]),
                  StreamAppend("note-b", [new() for _ in range(over)])], LimitExceededError),
                ([StreamAppend("note-a", [shared]), StreamAppend("note-b", [shared])],
                 DuplicateInBatchError),
                ([("note-a", [new()])], InvalidAppendError),
            ]:
                with pytest.raises(error):
                    await store.append_many(bad)  # type: ignore[arg-type]
                assert issubclass(error, InvalidInputError)
            assert await store.head() == 0

    async def test_an_atomic_append_that_fails_fails_only_its_caller(
        self, store_factory: StoreFactory
    ) -> None:
        """In one group commit: a multi-stream append whose second stream moved writes
        nothing of its first, and the appends beside it go ahead."""
        async with store_factory() as store:
            await store.append("note-b", [new()])
            outcomes: dict[str, object] = {}

            async def call(name: str, coroutine: Any) -> None:
                try:
                    outcomes[name] = await coroutine
                except WrongExpectedVersionError as exc:
                    outcomes[name] = exc

            async with anyio.create_task_group() as group:
                group.start_soon(call, "alone", store.append("note-x", [new()]))
                group.start_soon(call, "atomic", store.append_many([
                    StreamAppend("note-a", [new()], StreamState.NO_STREAM),
                    StreamAppend("note-b", [new()], StreamState.NO_STREAM)]))
                group.start_soon(call, "after", store.append("note-y", [new()]))
            assert isinstance(outcomes["atomic"], WrongExpectedVersionError)
            assert await store.stream_version("note-a") is None
            assert {e.stream for e in await everything(store)} == {"note-b", "note-x",
                                                                   "note-y"}

    # --- consumers' positions (tracking) ---------------------------------------------

    async def test_a_consumer_position_is_committed_with_its_writes_once(
        self, store_factory: StoreFactory
    ) -> None:
        async with store_factory() as store:
            await store.append("note-in", [new("1"), new("2")])
            assert await store.tracked_position("doubler") == 0
            await store.append("note-out", [new("1.1")], tracking=Tracking("doubler", 1))
            assert await store.tracked_position("doubler") == 1
            head = await store.head()
            with pytest.raises(TrackingConflictError) as twice:
                await store.append_many([StreamAppend("note-out", [new("1.1 again")])],
                                        tracking=Tracking("doubler", 1))
            assert isinstance(twice.value, ConflictError) and twice.value.recorded == 1
            assert await store.head() == head  # nothing of the repeated work was written
            await store.track(Tracking("doubler", 2))  # handled, nothing to write
            with pytest.raises(TrackingConflictError):
                await store.track(Tracking("doubler", 2))
            with pytest.raises(InvalidPositionError, match="past the end"):
                await store.track(Tracking("doubler", head + 5))
            with pytest.raises(InvalidInputError):
                await store.track(Tracking("", 1))
        async with store_factory() as store:
            assert await store.tracked_position("doubler") == 2
            assert await store.tracked_position("another") == 0

    async def test_a_consumer_that_crashes_before_committing_repeats_nothing(
        self, store_factory: StoreFactory
    ) -> None:
        """A consumer that handled an event and died before its commit wrote nothing; the
        next start resumes from its tracked position and writes each output once."""
        async with store_factory() as store:
            await store.append("note-in", [new(str(i)) for i in range(5)])

            async def run(crash_at: int | None) -> None:
                after = await store.tracked_position("copier")
                async for batch in store.read_batches(after, categories=["note"]):
                    for event in batch:
                        if event.stream != "note-in":
                            continue
                        output = [new(f"copy of {text_of(event)}")]
                        if event.position == crash_at:
                            raise RuntimeError("crashed between handling and commit")
                        await store.append("note-out", output,
                                           tracking=Tracking("copier", event.position))

            with pytest.raises(RuntimeError):
                await run(crash_at=3)
            assert await store.tracked_position("copier") == 2
            await run(crash_at=None)
            copies = [text_of(e) for e in await store.read_stream("note-out")]
            assert copies == [f"copy of {i}" for i in range(5)]

    async def test_consume_handles_each_event_once_across_a_crash(
        self, store_factory: StoreFactory
    ) -> None:
        async with store_factory() as store:
            await store.append("note-in", [new(str(i)) for i in range(6)])
            crash = {"at": 4}

            def copy(event: StoredEvent[Event]) -> list[StreamAppend]:
                if event.position == crash["at"]:
                    raise RuntimeError("the process died here")
                if event.stream != "note-in" or int(text_of(event)) % 2:  # nothing to write
                    return []
                return [StreamAppend(f"note-copy{text_of(event)}", [new(text_of(event))])]

            with pytest.raises(RuntimeError):
                await consume(store, "copier", copy, categories=["note"], follow=False)
            assert await store.tracked_position("copier") == 3
            crash["at"], head = -1, await store.head()
            assert await consume(store, "copier", copy, categories=["note"],
                                 follow=False) == head
            copies = sorted(e.stream for e in await everything(store)
                            if e.stream.startswith("note-copy"))
            assert copies == ["note-copy0", "note-copy2", "note-copy4"]

    async def test_a_closed_store_says_so(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            pass
        with pytest.raises(StoreClosedError):
            await store.append("note-x", [new()])
        with pytest.raises(StoreClosedError):
            await store.head()

