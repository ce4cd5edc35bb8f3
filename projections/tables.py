"""The read models' tables, in the same SQLite database as the log.

Views (``balances``, ``holds``, ``cards``, ``anomalies``, ``token_totals``) are what readers
query. ``projection_entities`` and ``projection_accounts`` keep each entity's facts, so a
runner restarts from its checkpoint without replaying the log; ``account_events`` indexes the
log by account, so a point-in-time query for one account reads only that account's events.
Every batch's rows and its checkpoint are written in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from projections.views import AccountView

Rows = dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]

SCHEMA = """
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name TEXT PRIMARY KEY, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS projection_entities (
    entity_id TEXT NOT NULL, kind TEXT NOT NULL, account_id TEXT NOT NULL, facts BLOB NOT NULL,
    PRIMARY KEY (kind, entity_id));
CREATE TABLE IF NOT EXISTS projection_accounts (
    account_id TEXT PRIMARY KEY, facts BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS account_events (
    account_id TEXT NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (account_id, position)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS balances (
    account_id TEXT NOT NULL, currency TEXT NOT NULL, deposits TEXT NOT NULL,
    debits TEXT NOT NULL, credits TEXT NOT NULL, posted TEXT NOT NULL, held TEXT NOT NULL,
    available TEXT NOT NULL, PRIMARY KEY (account_id, currency));
CREATE TABLE IF NOT EXISTS holds (
    authorisation_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, card_id TEXT NOT NULL,
    currency TEXT NOT NULL, amount TEXT NOT NULL, remaining TEXT NOT NULL,
    status TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
    card_status TEXT NOT NULL, closed TEXT);
CREATE INDEX IF NOT EXISTS holds_account ON holds (account_id);
CREATE TABLE IF NOT EXISTS cards (
    card_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, status TEXT NOT NULL,
    capture_window_until TEXT);
CREATE TABLE IF NOT EXISTS anomalies (
    kind TEXT NOT NULL, entity TEXT NOT NULL, entity_id TEXT NOT NULL, account_id TEXT,
    at TEXT NOT NULL, PRIMARY KEY (kind, entity_id));
CREATE TABLE IF NOT EXISTS token_totals (
    account_id TEXT NOT NULL, token TEXT NOT NULL, kind TEXT NOT NULL,
    token_amount TEXT NOT NULL, PRIMARY KEY (account_id, token, kind));
"""

VIEW_TABLES = ("balances", "holds", "cards", "token_totals", "anomalies")
ALL_TABLES = ("projection_entities", "projection_accounts", "account_events", *VIEW_TABLES)

# Each view table: its key columns, then the other columns, in row order.
VIEW_KEYS = {"balances": ("account_id", "currency"), "holds": ("authorisation_id",),
             "cards": ("card_id",), "token_totals": ("account_id", "token", "kind"),
             "anomalies": ("kind", "entity_id")}


class BatchWrite:
    """Everything one batch changes, written in one transaction with the checkpoint."""

    def __init__(self) -> None:
        self.entities: list[tuple[str, str, str, bytes]] = []
        self.accounts: list[tuple[str, bytes]] = []
        self.account_events: list[tuple[str, int]] = []
        self.anomalies: list[tuple[Any, ...]] = []
        self.upserts: dict[str, list[tuple[Any, ...]]] = {t: [] for t in VIEW_TABLES}
        self.deletes: dict[str, list[tuple[Any, ...]]] = {t: [] for t in VIEW_TABLES}

    def commit(self, db: sqlite3.Connection, name: str, position: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO projection_entities VALUES (?, ?, ?, ?)",
                           self.entities)
            db.executemany("INSERT OR REPLACE INTO projection_accounts VALUES (?, ?)",
                           self.accounts)
            db.executemany("INSERT OR IGNORE INTO account_events VALUES (?, ?)",
                           self.account_events)
            db.executemany("INSERT OR IGNORE INTO anomalies VALUES (?, ?, ?, ?, ?)",
                           self.anomalies)
            for table in VIEW_TABLES:
                _delete(db, table, self.deletes[table])
                _upsert(db, table, self.upserts[table])
            db.execute("INSERT OR REPLACE INTO projection_checkpoints VALUES (?, ?)",
                       (name, position))
        except BaseException:
            db.rollback()
            raise
        db.execute("COMMIT")


def _upsert(db: sqlite3.Connection, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        db.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", rows)


def _delete(db: sqlite3.Connection, table: str, keys: Iterable[tuple[Any, ...]]) -> None:
    where = " AND ".join(f"{column} = ?" for column in VIEW_KEYS[table])
    db.executemany(f"DELETE FROM {table} WHERE {where}", list(keys))


def create(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)


def clear(db: sqlite3.Connection, name: str) -> None:
    db.execute("BEGIN IMMEDIATE")
    for table in ALL_TABLES:
        db.execute(f"DELETE FROM {table}")
    db.execute("DELETE FROM projection_checkpoints WHERE name = ?", (name,))
    db.execute("COMMIT")


def rows_of(account: AccountView) -> Rows:
    """An account's view as rows of the view tables, by key."""
    rows: Rows = {table: {} for table in VIEW_TABLES}
    for b in account.balances:
        rows["balances"][(b.account_id, b.currency)] = (
            b.account_id, b.currency, str(b.deposits), str(b.debits), str(b.credits),
            str(b.posted), str(b.held), str(b.available))
    for h in account.holds:
        rows["holds"][(h.authorisation_id,)] = (
            h.authorisation_id, h.account_id, h.card_id, h.currency, str(h.amount),
            str(h.remaining), h.status, h.created_at.isoformat(), h.expires_at.isoformat(),
            h.card_status, h.closed)
    for c in account.cards:
        rows["cards"][(c.card_id,)] = (
            c.card_id, c.account_id, c.status,
            c.capture_window_until.isoformat() if c.capture_window_until else None)
    for t in account.tokens:
        rows["token_totals"][(t.account_id, t.token, t.kind)] = (
            t.account_id, t.token, t.kind, str(t.token_amount))
    for a in account.anomalies:
        rows["anomalies"][(a.kind, a.entity_id)] = (a.kind, a.entity, a.entity_id, a.account_id,
                                                    a.at.isoformat())
    return rows
