"""Bad input is a property, not a list: every public method of the front door (and of the
store), called with hostile arguments drawn from its own signature, returns or raises a
``LedgerError`` of a kind it documents, and a refused call leaves the log as it was."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import (
    CardLedger,
    ConflictError,
    InvalidInputError,
    LedgerError,
    NotFoundError,
    UnavailableError,
)
from ledger import NewEvent, StreamState, open_store
from tests.support.histories import one_hold
from tests.support.sample_events import REGISTRY, note

T0 = datetime.now(UTC) - timedelta(days=2)

JUNK = st.one_of(st.none(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                 st.binary(max_size=8), st.lists(st.integers(), max_size=2),
                 st.just(object()), st.dictionaries(st.text(max_size=3), st.integers(),
                                                   max_size=1))
"""Values of the wrong type for any parameter."""
TEXTS = st.one_of(st.sampled_from(["a1", "c1", "h1", "nobody", "", " ", "a1\x00", "é" * 70,
                                   "x" * 100_000, "a" * 65, "card-a1", "../etc/passwd",
                                   "eip155:1:0x1", "eip155:1:0x1 ", "EUR", "eur", "XXX"]),
                  st.text(max_size=80))
AMOUNTS = st.one_of(st.sampled_from([Decimal(v) for v in (
    "1E+40", "1E+2", "1E-9", "NaN", "sNaN", "Infinity", "-Infinity", "-1", "0", "-0",
    "10.001", "0.001", "999999999999.99", "1000000000000", "12.50", "1")]),
    st.decimals(allow_nan=True, allow_infinity=True))
MOMENTS = st.one_of(st.none(), st.datetimes(), st.datetimes(timezones=st.just(UTC)),
                    st.sampled_from([datetime(1, 1, 1, tzinfo=UTC),
                                     datetime(9999, 12, 31, tzinfo=UTC), T0,
                                     datetime(2026, 1, 1)]),
                    st.sampled_from(["2026-01-01", "2026-01-01T00:00:00Z", 0]))
POSITIONS = st.one_of(st.none(), st.integers(-5, 50), st.sampled_from([2**63, -(2**63)]))


def _snapshots() -> st.SearchStrategy[Any]:
    """Good snapshots with one field made hostile (or none)."""
    good = st.sampled_from(one_hold(T0, "20.00"))

    def spoil(snapshot: Any, field: str, value: Any) -> Any:
        if not field or field not in snapshot.__struct_fields__:
            return snapshot
        return msgspec.structs.replace(snapshot, **{field: value})

    return st.builds(
        lambda s, d: spoil(s, *d), good,
        st.tuples(st.sampled_from(["", "id", "status", "created_at", "updated_at", "amount",
                                   "currency", "account_id", "type", "currencies"]),
                  st.one_of(TEXTS, MOMENTS, AMOUNTS, JUNK)))


def _strategy(hint: Any, name: str) -> st.SearchStrategy[Any]:
    text = str(hint)
    if name == "snapshot":
        base: st.SearchStrategy[Any] = _snapshots()
    elif "Decimal" in text:
        base = AMOUNTS
    elif "datetime" in text:
        base = MOMENTS
    elif name in ("position", "after", "from_version"):
        base = POSITIONS
    elif hint is bool:
        base = st.booleans()
    elif "str" in text:
        base = TEXTS
    else:
        base = st.nothing()
    return st.one_of(base, JUNK) if base is not st.nothing() else JUNK


RAISES: dict[str, tuple[type[LedgerError], ...]] = {
    # What each method documents it may raise, beyond returning.
    "record": (InvalidInputError, ConflictError),
    "record_deposit": (InvalidInputError, NotFoundError, ConflictError),
    "record_withdrawal": (InvalidInputError, NotFoundError, ConflictError),
    "register_customer": (InvalidInputError, ConflictError),
    "open_account": (InvalidInputError, NotFoundError, ConflictError),
    "request_card": (InvalidInputError, NotFoundError, ConflictError),
    "freeze_card": (InvalidInputError, NotFoundError, ConflictError),
    "unfreeze_card": (InvalidInputError, NotFoundError, ConflictError),
    "terminate_card": (InvalidInputError, NotFoundError, ConflictError),
    "account": (InvalidInputError, NotFoundError),
    "accounts": (InvalidInputError, NotFoundError),
    "balances": (InvalidInputError, NotFoundError),
    "holds": (InvalidInputError, NotFoundError),
    "cards": (InvalidInputError, NotFoundError),
    "journal": (InvalidInputError, NotFoundError),
    "statement": (InvalidInputError, NotFoundError),
    "whole_statement": (InvalidInputError, NotFoundError),
    "stream_statement": (InvalidInputError, NotFoundError),
    "checkpoint": (InvalidInputError,),
    "anomalies": (InvalidInputError,),
    "wait_until_visible": (InvalidInputError,),
    "webhook_app": (InvalidInputError,),
    "pull": (InvalidInputError, UnavailableError),
    "expire_holds": (),
    "verify": (),
    "problems": (),
}
"""The public methods the property calls: all but ``open``, ``run_background`` (runs until
cancelled) and ``changes`` (follows for ever: its ``after`` is checked below)."""


def _calls() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    def arguments(name: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
        method = getattr(CardLedger, name)
        hints = typing.get_type_hints(method)
        parameters = [p for p in inspect.signature(method).parameters.values()
                      if p.name != "self"]
        return st.fixed_dictionaries(
            {p.name: _strategy(hints.get(p.name), p.name) for p in parameters
             if p.default is inspect.Parameter.empty},
            optional={p.name: _strategy(hints.get(p.name), p.name) for p in parameters
                      if p.default is not inspect.Parameter.empty},
        ).map(lambda kwargs: (name, kwargs))

    return st.one_of(*(arguments(name) for name in RAISES))


def test_the_property_covers_every_public_method() -> None:
    public = {name for name, _ in inspect.getmembers(CardLedger, callable)
              if not name.startswith("_")}
    assert public - set(RAISES) == {"open", "run_background", "changes"}


async def _seeded(ledger: CardLedger) -> None:
    for snapshot in one_hold(T0, "20.00"):
        await ledger.record(snapshot)
    await ledger.record_deposit("a1", Decimal("100"), "EUR", "eip155:1:0xfeed")


async def _call(ledger: CardLedger, name: str, kwargs: dict[str, Any]) -> None:
    head, refused, waiting = await ledger.store.head(), None, False
    try:
        with anyio.fail_after(0.3 if name == "wait_until_visible" else 5):
            result = getattr(ledger, name)(**kwargs)
            if inspect.isawaitable(result):
                await result
    except LedgerError as error:
        refused = error
    except TimeoutError:
        waiting = True
    if refused is not None:
        assert isinstance(refused, RAISES[name]), (name, kwargs, refused)
        assert await ledger.store.head() == head, (name, kwargs, "refused, but wrote")
    if waiting:  # only a wait for a position the log has not reached yet may wait
        assert name == "wait_until_visible" and kwargs["position"] > head, (name, kwargs)


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(calls=st.lists(_calls(), min_size=1, max_size=6))
def test_hostile_calls_raise_a_documented_kind_and_refusals_write_nothing(
        tmp_path_factory: pytest.TempPathFactory,
        calls: list[tuple[str, dict[str, Any]]]) -> None:
    async def run() -> None:
        path = tmp_path_factory.mktemp("hostile") / "l.db"
        async with CardLedger.open(path) as ledger:
            await _seeded(ledger)
            for name, kwargs in calls:
                await _call(ledger, name, kwargs)
            assert (await ledger.verify()).ok

    anyio.run(run)


@pytest.mark.anyio
@pytest.mark.parametrize("after", [-1, 2**63, None, 1.5, "0", True])
async def test_following_changes_from_a_hostile_position_is_refused(
        tmp_path: Path, after: Any) -> None:
    async with CardLedger.open(tmp_path / "l.db") as ledger:
        with pytest.raises(InvalidInputError, match="after"):
            await anext(aiter(ledger.changes(after)))


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(stream=st.one_of(TEXTS, JUNK), count=st.integers(0, 3), text=st.one_of(TEXTS, JUNK),
       expected=st.one_of(st.sampled_from(list(StreamState)), POSITIONS, JUNK),
       after=st.one_of(POSITIONS, JUNK))
def test_hostile_store_calls_raise_typed_errors_and_write_nothing(
        tmp_path_factory: pytest.TempPathFactory, stream: Any, count: int, text: Any,
        expected: Any, after: Any) -> None:
    async def run() -> None:
        path = tmp_path_factory.mktemp("store") / "l.db"
        async with open_store(path, registry=REGISTRY) as store:
            await store.append("notes-1", [NewEvent(payload=note("first"))])
            attempts: list[tuple[bool, Callable[[], Awaitable[object]]]] = [
                (False, lambda: store.append(stream, [NewEvent(payload=note(text))] * count,
                                             expected=expected)),
                (False, lambda: store.read_stream(stream, from_version=after)),
                (False, lambda: store.stream_version(stream)),
                (False, lambda: _drain(store.read_all(after))),
                (True, lambda: store.wait_for_position(after))]
            for waits, attempt in attempts:
                head = await store.head()
                try:
                    with anyio.fail_after(0.3 if waits else 10):
                        await attempt()
                except LedgerError:
                    assert await store.head() == head
                except TimeoutError:  # only a wait for a position not reached yet may wait
                    assert waits and isinstance(after, int) and after > head
            assert (await store.verify()).ok

    anyio.run(run)


async def _drain(events: Any) -> None:
    async for _ in events:
        pass
