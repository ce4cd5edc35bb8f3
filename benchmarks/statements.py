"""Statements and the journal on one busy account: the first page, a whole statement as CSV
(lines a second and peak memory), and the Beancount export (entries a second), each beside
raw ``sqlite3`` reading and decoding the same account's events in the same run."""

from __future__ import annotations

import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import anyio

from adapters.service.card_ledger import CardLedger
from benchmarks.harness import Figure, benchmark
from benchmarks.projections import T0, hold_life
from ledger import NewEvent, open_store
from ledger.domain.programme import stream_for
from ledger.events import DOMAIN_REGISTRY, FundsDeposited
from projections import ProjectionRunner
from projections.backends.sqlite import projection_file

ACCOUNT = "acc00000"
SMALL = "acc00001"
"""An account with a tenth of the lines, in the same log: how a statement's memory grows."""
CLI = str(Path(sys.executable).parent / "cardledger")


async def _build(db: Path, holds: int) -> None:
    """Two accounts: a deposit, then ``holds`` holds captured (two statement lines each);
    and the same with a tenth of the holds."""
    async with open_store(db) as store:
        for account, count in ((ACCOUNT, holds), (SMALL, holds // 10)):
            deposit = FundsDeposited(account_id=account, amount=Decimal("10000000"),
                                     currency="EUR", chain_transaction=f"eip155:1:0x{account}",
                                     at=T0)
            await store.append(stream_for(deposit), [NewEvent(payload=deposit)])
            for n in range(count):
                for batch in hold_life(account, n, T0 + timedelta(minutes=7 * n)):
                    await store.append(stream_for(batch[0]),
                                       [NewEvent(payload=e) for e in batch])
    async with CardLedger.open(db) as ledger:  # the projection catches up once, here
        await ledger.wait_until_visible()


async def _first_pages(db: Path, rounds: int,
                       ) -> tuple[float, list[float], list[float], list[float]]:
    """The first page: asked first after opening (the account walked), asked again (kept
    lines), and asked after each of ``rounds`` new deposits (the walk carried on); and raw
    sqlite3 reading the same 100 rows by index and decoding them."""
    ours, after_event, raw_ms = [], [], []
    end = T0 + timedelta(days=3650)

    async def page(ledger: CardLedger) -> float:
        started = time.perf_counter()
        found = await ledger.statement(ACCOUNT, "EUR", T0 - timedelta(days=1), end)
        assert len(found.lines) == 100
        return (time.perf_counter() - started) * 1000

    async with CardLedger.open(db) as ledger:
        cold = await page(ledger)
        raw = sqlite3.connect(projection_file(db, ledger.runner.name))
        raw.execute("ATTACH DATABASE ? AS log", (str(db),))
        for n in range(rounds):
            ours.append(await page(ledger))
            started = time.perf_counter()
            rows = raw.execute("SELECT e.record FROM account_events a JOIN log.events e ON "
                               "e.position = a.position WHERE a.account_id = ? ORDER BY "
                               "a.position LIMIT 100", (ACCOUNT,)).fetchall()
            DOMAIN_REGISTRY.decode_records(r[0] for r in rows)
            raw_ms.append((time.perf_counter() - started) * 1000)
            deposit = FundsDeposited(account_id=ACCOUNT, amount=Decimal(1), currency="EUR",
                                     chain_transaction=f"eip155:1:0xb{n}",
                                     at=T0 + timedelta(days=3000, minutes=n))
            await ledger.store.append(stream_for(deposit), [NewEvent(payload=deposit)])
            after_event.append(await page(ledger))
        raw.close()
    return cold, ours, after_event, raw_ms


def _read_all_seconds(db: Path) -> tuple[float, int]:
    raw = sqlite3.connect(projection_file(db, ProjectionRunner.name))
    raw.execute("ATTACH DATABASE ? AS log", (str(db),))
    started = time.perf_counter()
    rows = raw.execute("SELECT e.record FROM account_events a JOIN log.events e ON "
                       "e.position = a.position WHERE a.account_id = ?", (ACCOUNT,)).fetchall()
    decoded = list(DOMAIN_REGISTRY.decode_records(r[0] for r in rows))
    raw.close()
    return time.perf_counter() - started, len(decoded)


_LAUNCHER = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)")
"""Runs a command and says its peak RSS (KiB). A child forked from this process would count
this one's pages too (the peak is kept across ``exec``): it starts from a small process."""


def _timed(command: list[str]) -> tuple[float, int, float]:
    """Seconds, output lines, and the command's peak RSS in MB."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, *command], capture_output=True,
                          check=True)
    seconds = time.perf_counter() - started
    peak = int(done.stderr.split()[-1])
    return seconds, done.stdout.count(b"\n"), peak / 1024


@benchmark("statements")
def statement_figures(quick: bool) -> list[Figure]:
    holds = 500 if quick else 50_000
    with tempfile.TemporaryDirectory() as directory:
        db = Path(directory) / "l.db"
        anyio.run(_build, db, holds)
        cold, ours, after_event, raw_ms = anyio.run(_first_pages, db, 5 if quick else 20)
        read_seconds, events = _read_all_seconds(db)
        period = ["--from", (T0 - timedelta(days=1)).isoformat(),
                  "--to", (T0 + timedelta(days=3650)).isoformat()]
        csv = [CLI, "statement", "--db", str(db), "--currency", "EUR", *period,
               "--format", "csv", "--account"]
        csv_seconds, csv_lines, csv_rss = _timed([*csv, ACCOUNT])
        _, small_lines, small_rss = _timed([*csv, SMALL])
        bean_seconds, bean_lines, _ = _timed([CLI, "export", "--db", str(db), "--format",
                                              "beancount", "--as-of", period[3]])
    entries = 2 * holds + 1 + 2 * (holds // 10) + 1  # both accounts' changes
    return [
        Figure("statements.first_page_ms", statistics.median(ours), "ms",
               "raw 100 rows by index", statistics.median(raw_ms),
               f"goal: 10 ms; an account with {2 * holds + 1:,} lines, limit 100, its lines "
               "kept"),
        Figure("statements.first_page_after_event_ms", statistics.median(after_event), "ms",
               "raw 100 rows by index", statistics.median(raw_ms),
               "the same page after a new deposit: the kept walk carried on"),
        Figure("statements.first_page_cold_ms", cold, "ms", "raw 100 rows by index",
               statistics.median(raw_ms), "the first ask after opening: the account walked"),
        Figure("statements.csv_lines_per_s", csv_lines / csv_seconds, "lines/s",
               "raw read+decode, events/s", events / read_seconds,
               f"goal: 100,000; peak RSS of the whole command {csv_rss:.0f} MB for "
               f"{csv_lines:,} lines, {small_rss:.0f} MB for {small_lines:,}"),
        Figure("statements.beancount_entries_per_s", entries / bean_seconds, "entries/s",
               "raw read+decode, events/s", events / read_seconds,
               f"goal: 50,000; {bean_lines:,} lines of Beancount"),
    ]
