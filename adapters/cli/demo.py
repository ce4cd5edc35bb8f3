"""``cardledger demo``: the main job, on the embedded SQLite store.

The sandbox and the ledger's webhook receiver are served on loopback ports; a seeded,
realistic programme runs end to end through them (webhooks with light faults, the outbox,
pull sync); then come the balances, holds and their windows, anomalies, reconciliation, the
chain verification and the replay check.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import click

from adapters.cli import output
from adapters.cli.report import write_report
from adapters.processor.reconcile import Difference
from adapters.sandbox import Faults, Sandbox, SandboxConfig
from adapters.testing.scenario import Comparison, ScenarioConfig, compare, stack
from adapters.testing.scenario import run as run_programme
from adapters.testing.servers import free_port, serving
from ledger.store import VerifyReport
from projections import ProjectionRunner
from projections.backends.sqlite import projection_file
from projections.replay import stored_drift
from projections.views import AccountView

HOOKS = ["customer.updated", "account.updated", "card.updated", "authorisation.updated",
         "transaction.updated"]


def remove_database(db: str) -> None:
    """The ledger's files: the log's and its projection's (SQLite's -wal and -shm with each)."""
    for base in (db, str(projection_file(Path(db), ProjectionRunner.name))):
        for suffix in ("", "-wal", "-shm"):
            Path(base + suffix).unlink(missing_ok=True)
    report_path(db).unlink(missing_ok=True)


def report_path(db: str) -> Path:
    """Where the demo writes its audit report: beside its ledger."""
    return Path(db).with_suffix(".report.html")


async def run(db: str, seed: int, payments: int) -> int:
    started = time.perf_counter()
    faults = Faults(duplicate=0.05, reorder_window=3, drop=0.05)
    box = Sandbox(SandboxConfig(seed=seed, faults=faults))
    sandbox_port, ledger_port = free_port(), free_port()
    async with serving(box.app, sandbox_port), stack(
            Path(db), box, base_url=f"http://127.0.0.1:{sandbox_port}") as s, serving(
            s.receiver.app, ledger_port):
        click.echo(f"sandbox on http://127.0.0.1:{sandbox_port}, ledger receiving webhooks "
                   f"on http://127.0.0.1:{ledger_port}/webhooks, ledger in {db}")
        await s.client.subscribe_webhooks(f"http://127.0.0.1:{ledger_port}/webhooks", HOOKS)
        # Enough funds for most payments (about 100 each), so that a few are still declined.
        deposit = Decimal(max(5_000, payments * 20))
        await run_programme(s, ScenarioConfig(seed=seed, customers=5, payments=payments,
                                              deposit=deposit))
        comparisons, differences = await compare(s)
        now = box.clock.now()
        views = [await s.runner.view_as_of(a, as_of=now) for a in s.accounts]
        report = await s.store.verify()
        problems = await stored_drift(s.store, s.runner)
        events = await s.store.head()
    elapsed = time.perf_counter() - started
    _report(comparisons, differences, views, report, problems, events,
            f"{s.approved} authorisations approved ({s.declined} declined)", now, elapsed,
            box.webhooks.delivered)
    audit = report_path(db)
    await write_report(db, None, now, None, audit, f"cardledger demo --db {db}", differences)
    click.echo(f"audit report (HTML, opens offline): {audit}")
    good = (all(c.equal for c in comparisons) and not differences and report.ok
            and not problems)
    return 0 if good else 1


def _report(comparisons: list[Comparison], differences: list[Difference],
            views: list[AccountView], report: VerifyReport, problems: list[str], events: int,
            payments: str, now: datetime, elapsed: float, delivered: int) -> None:
    click.echo(f"\n{payments}, {delivered} webhook deliveries, {events} events "
               f"in the log, {elapsed:.1f}s; sandbox clock now {now:%Y-%m-%d %H:%M} UTC\n")
    output.table("Balances: the ledger beside the sandbox's own count",
                 ["account", "deposits", "debits", "credits", "posted", "held", "available",
                  "sandbox agrees"],
                 [[c.account_id[:8], *(c.ledger[k] for k in ("deposits", "debits", "credits",
                                                             "posted", "held", "available")),
                   "yes" if c.equal else "NO"] for c in comparisons])
    holds = sorted((h for v in views for h in v.holds), key=lambda h: h.created_at)
    shown = [h for h in holds if "terminated" in h.card_status][:6] + holds[-4:]
    output.table(f"Holds and their windows ({len(holds)} in all; some shown)",
                 ["authorisation", "amount", "remaining", "status", "created", "expires",
                  "closed", "card"],
                 [[h.authorisation_id[:8], h.amount, h.remaining, h.status,
                   f"{h.created_at.astimezone(UTC):%Y-%m-%d}",
                   f"{h.expires_at.astimezone(UTC):%Y-%m-%d}", h.closed or "",
                   h.card_status] for h in shown])
    anomalies = [a for v in views for a in v.anomalies]
    output.table(f"Anomalies ({len(anomalies)}): recorded, counted, and listed",
                 ["kind", "entity", "id", "at"],
                 [[a.kind, a.entity, a.entity_id[:8], f"{a.at:%Y-%m-%d %H:%M}"]
                  for a in anomalies[:10]])
    click.echo(f"reconciliation with the processor: "
               f"{'no difference' if not differences else f'{len(differences)} DIFFERENCES'}")
    click.echo(f"hash chain: {'intact' if report.ok else 'BROKEN'} over "
               f"{report.checked} events, head {report.last_hash}")
    click.echo("replay from the log: " + ("identical to the stored projections" if not problems
                                          else f"{len(problems)} rows DRIFT"))
