"""Reconciliation: the ledger's view of every entity beside the processor's, and every
difference between them (missing on either side, a different state, a different amount)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

import msgspec

from adapters.processor.client import ProcessorClient
from ledger.domain.programme import Programme
from ledger.events import DomainEvent
from ledger.money import format_amount
from ledger.observations import AnySnapshot
from ledger.store import EventStore


class Difference(msgspec.Struct, frozen=True):
    entity: str
    entity_id: str
    kind: str
    """``missing_in_ledger``, ``missing_at_processor``, ``state_mismatch``, ``amount_mismatch``."""
    ledger: str | None = None
    processor: str | None = None


async def ledger_programme(store: EventStore) -> Programme:
    """Every entity's state, folded from the log."""
    programme = Programme()
    async for batch in store.read_batches():
        programme.apply_all(e.payload for e in batch if isinstance(e.payload, DomainEvent))
    return programme


async def reconcile(store: EventStore, client: ProcessorClient) -> list[Difference]:
    ledger = await ledger_programme(store)
    accounts = await client.accounts()
    cards = await client.cards()
    transactions = [t for a in accounts for t in await client.account_transactions(a.id)]
    holds = [await client.authorisation(h) for h in sorted(
        set(ledger.holds) | {t.authorisation_id for t in transactions if t.authorisation_id})]
    differences: list[Difference] = []
    differences += _compare("account", accounts, ledger.accounts)
    differences += _compare("card", cards, ledger.cards)
    differences += _compare("authorisation", holds, ledger.holds)
    differences += _compare("transaction", transactions, ledger.transactions)
    return differences


def _compare(entity: str, remote: Iterable[AnySnapshot], local: Mapping[str, object],
             ) -> list[Difference]:
    found: list[Difference] = []
    seen = set()
    for snapshot in remote:
        seen.add(snapshot.id)
        mine = local.get(snapshot.id)
        status = str(getattr(snapshot, "status", ""))
        if mine is None:
            found.append(Difference(entity, snapshot.id, "missing_in_ledger", None, status))
            continue
        if getattr(mine, "status", None) != status:
            found.append(Difference(entity, snapshot.id, "state_mismatch",
                                    str(getattr(mine, "status", None)), status))
        amount = getattr(snapshot, "amount", None)
        if amount is not None and Decimal(amount) != getattr(mine, "amount", None):
            found.append(Difference(entity, snapshot.id, "amount_mismatch",
                                    _shown(getattr(mine, "amount", None)), amount))
    found += [Difference(entity, entity_id, "missing_at_processor",
                         str(getattr(state, "status", None)), None)
              for entity_id, state in local.items() if entity_id not in seen]
    return found


def _shown(amount: object) -> str:
    return format_amount(amount) if isinstance(amount, Decimal) else str(amount)
