"""The property-based toolkit as its users meet it: ids drawn and never repeated within a
test case, histories that hold what real programmes hold, anchored where the caller says."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ledger.observations import AccountSnapshot, AnySnapshot, AuthorisationSnapshot, CardSnapshot
from ledger.observations import TransactionSnapshot as Tx
from ledger.testing import (
    FundedProgramme,
    TransferRequest,
    funded_programmes,
    paths,
    programme_histories,
    transfer_requests,
    webhook_payloads,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def _entity_ids(history: list[AnySnapshot]) -> set[str]:
    return {s.id for s in history}


@FAST
@given(histories=st.lists(programme_histories(), min_size=2, max_size=3), data=st.data())
def test_no_id_repeats_across_the_histories_and_deliveries_of_a_test_case(
        histories: list[list[AnySnapshot]], data: st.DataObject) -> None:
    entity_ids: list[set[str]] = [_entity_ids(h) for h in histories]
    assert sum(map(len, entity_ids)) == len(set().union(*entity_ids))
    event_ids: dict[str, str] = {}
    for n, history in enumerate(histories):
        for body in data.draw(webhook_payloads(history)):
            fields = json.loads(body)
            assert event_ids.setdefault(fields["eventId"], f"{n}:{fields['id']}") == (
                f"{n}:{fields['id']}")  # one eventId, one history's snapshot
        for _, snapshot, body in data.draw(paths(history)):
            assert json.loads(body)["id"] == snapshot.id


@FAST
@given(first=transfer_requests(["a1"]), second=transfer_requests(["a1"]))
def test_two_draws_of_transfers_never_share_a_chain_transaction(
        first: list[TransferRequest], second: list[TransferRequest]) -> None:
    assert not {r.chain_transaction for r in first} & {r.chain_transaction for r in second}


def _late_capture(history: list[AnySnapshot]) -> bool:
    terminated = {s.id: s.updated_at for s in history
                  if isinstance(s, CardSnapshot) and s.status == "terminated"}
    return any(isinstance(s, AuthorisationSnapshot) and s.status == "captured"
               and s.card_id in terminated and s.updated_at > terminated[s.card_id]
               for s in history)


def _captured_after_expiry(history: list[AnySnapshot]) -> bool:
    return any(isinstance(s, AuthorisationSnapshot) and s.status == "captured"
               and s.updated_at >= s.created_at + timedelta(days=30) for s in history)


KINDS: dict[str, Callable[[list[AnySnapshot]], bool]] = {
    "a capture after termination": _late_capture,
    "a capture after expiry": _captured_after_expiry,
    "a debit with no authorisation": lambda h: any(
        isinstance(s, Tx) and s.direction == "debit" and s.authorisation_id is None
        for s in h),
    "two accounts": lambda h: len({s.id for s in h if isinstance(s, AccountSnapshot)}) > 1,
}


def test_histories_hold_what_real_programmes_hold() -> None:
    seen: set[str] = set()

    # Derandomized, and 1,000 of them: in 300, a capture after expiry (a terminated card,
    # a pending hold, a late capture) came twice, and one CI run saw it none.
    @settings(max_examples=1_000, deadline=None, database=None, phases=[Phase.generate],
              derandomize=True, suppress_health_check=list(HealthCheck))
    @given(history=programme_histories())
    def look(history: list[AnySnapshot]) -> None:
        seen.update(kind for kind, has in KINDS.items() if has(history))

    look()
    assert seen == set(KINDS)


@FAST
@given(history=programme_histories())
def test_a_history_without_a_start_ends_near_now(history: list[AnySnapshot]) -> None:
    now = datetime.now(UTC)
    assert now - timedelta(days=3, hours=2) <= history[-1].updated_at <= now
    assert [s.updated_at for s in history] == sorted(s.updated_at for s in history)


@FAST
@given(history=programme_histories(start=datetime(2030, 6, 1, tzinfo=UTC)))
def test_a_history_starts_where_it_is_told(history: list[AnySnapshot]) -> None:
    assert min(s.created_at for s in history) >= datetime(2030, 6, 1, tzinfo=UTC)


@FAST
@given(programme=funded_programmes())
def test_funded_programmes_fund_their_accounts_once_each(programme: FundedProgramme) -> None:
    accounts = {s.id: s for s in programme.snapshots if isinstance(s, AccountSnapshot)}
    end = programme.snapshots[-1].updated_at
    assert len({t.chain_transaction for t in programme.transfers}) == len(programme.transfers)
    for transfer in programme.transfers:
        assert transfer.at is not None
        assert accounts[transfer.account_id].created_at <= transfer.at <= end


@FAST
@given(history=programme_histories())
def test_a_falsifying_example_prints_one_short_line_per_snapshot(
        history: list[AnySnapshot]) -> None:
    for snapshot in history:
        line = repr(snapshot)
        assert "\n" not in line and len(line) <= 120, line
        assert snapshot.id[:8] in line and f"{snapshot.updated_at:%Y-%m-%dT%H:%M:%S}" in line
