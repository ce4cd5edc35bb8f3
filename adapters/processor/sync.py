"""Pull sync: fetch what the processor holds and record only what changed.

Accounts, cards, every account's transactions, the authorisations those reference, and the
authorisations the caller knows to be open (there is no list of authorisations). Each
snapshot goes through the same ``Observer`` as webhooks, so reports already known record
nothing: running it twice in a row records nothing new.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from adapters.processor.client import ProcessorClient
from adapters.processor.observer import Observer
from ledger.observations import AnySnapshot


class SyncReport(msgspec.Struct):
    fetched: int = 0
    recorded: int = 0


async def pull(client: ProcessorClient, observer: Observer,
               open_authorisations: Iterable[str] = ()) -> SyncReport:
    report = SyncReport()

    async def record(snapshots: Iterable[AnySnapshot]) -> None:
        for snapshot in snapshots:
            report.fetched += 1
            result = await observer.record(snapshot, correlation_id="pull-sync")
            report.recorded += result is not None and not result.duplicate

    accounts = await client.accounts()
    await record(accounts)
    await record(await client.cards())  # cards before the holds whose rules need them
    transactions = [t for a in accounts for t in await client.account_transactions(a.id)]
    wanted = {t.authorisation_id for t in transactions if t.authorisation_id}
    wanted |= set(open_authorisations)
    await record([await client.authorisation(a) for a in sorted(wanted)])
    await record(transactions)
    return report
