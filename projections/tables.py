"""The read models' tables: their columns, their SQL for each backend, and one batch's writes.

Views (``balances``, ``holds``, ``cards``, ``anomalies``, ``token_totals``) are what readers
query. ``projection_facts`` and ``projection_accounts`` keep each entity's facts, so a
runner restarts from its checkpoint without replaying the log; ``account_events`` indexes the
log by account, so a point-in-time query for one account reads only that account's events.
The tables live in the PostgreSQL database of the log, or in a SQLite file of their own beside
the log's; every batch's rows and its checkpoint are written in one transaction (see
``projections.backends``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from ledger.money import format_amount
from projections.views import (
    AccountView,
    AnomalyView,
    Balance,
    CardView,
    HoldView,
    TokenTotal,
)

Rows = dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]
Dialect = Literal["sqlite", "postgres"]


class Table(msgspec.Struct, frozen=True):
    columns: tuple[tuple[str, str], ...]
    """(name, type) in row order; types: text, text? (nullable), int, bytes."""
    key: tuple[str, ...]


TABLES: dict[str, Table] = {
    "projection_checkpoints": Table((("name", "text"), ("position", "int")), ("name",)),
    "projection_models": Table((("name", "text"), ("version", "int")), ("name",)),
    # ``grp``: the entities that leave memory together (a hold and the debits that name it);
    # ``open``: 1 while the runner holds them in memory, 0 once settled (read back on demand).
    "projection_facts": Table((("entity_id", "text"), ("kind", "text"), ("account_id", "text"),
                               ("grp", "text"), ("open", "int"), ("facts", "bytes")),
                              ("kind", "entity_id")),
    "projection_accounts": Table((("account_id", "text"), ("facts", "bytes")), ("account_id",)),
    "account_events": Table((("account_id", "text"), ("position", "int")),
                            ("account_id", "position")),
    "balances": Table(tuple((c, "text") for c in (
        "account_id", "currency", "deposits", "debits", "credits", "posted", "held",
        "available")), ("account_id", "currency")),
    "holds": Table((*((c, "text") for c in (
        "authorisation_id", "account_id", "card_id", "currency", "amount", "remaining",
        "status", "created_at", "expires_at", "card_status")), ("closed", "text?")),
        ("authorisation_id",)),
    "cards": Table((("card_id", "text"), ("account_id", "text"), ("status", "text"),
                    ("capture_window_until", "text?")), ("card_id",)),
    "anomalies": Table((("kind", "text"), ("entity", "text"), ("entity_id", "text"),
                        ("account_id", "text?"), ("at", "text")), ("kind", "entity_id")),
    "quarantined": Table((("position", "int"), ("entity", "text"), ("entity_id", "text"),
                          ("account_id", "text?"), ("reason", "text")), ("position",)),
    "token_totals": Table((("account_id", "text"), ("token", "text"), ("kind", "text"),
                           ("token_amount", "text")), ("account_id", "token", "kind")),
}
NAMED_TABLES = ("projection_models", "projection_checkpoints")
"""The tables with a row per projection name (the others hold one projection's rows)."""
VIEW_TABLES = ("balances", "holds", "cards", "token_totals", "anomalies", "quarantined")
ALL_TABLES = ("projection_models", "projection_facts", "projection_accounts",
              "account_events", *VIEW_TABLES)

_TYPES = {"sqlite": {"text": "TEXT", "int": "INTEGER", "bytes": "BLOB"},
          "postgres": {"text": "TEXT", "int": "BIGINT", "bytes": "BYTEA"}}


def schema(dialect: Dialect) -> list[str]:
    """The statements that create every table (if missing)."""
    statements = []
    for name, table in TABLES.items():
        columns = [f"{column} {_TYPES[dialect][kind.rstrip('?')]}"
                   + ("" if kind.endswith("?") else " NOT NULL") for column, kind in table.columns]
        # An index-only table where the key is the whole row (SQLite stores it once).
        compact = dialect == "sqlite" and len(table.key) == len(table.columns)
        statements.append(f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(columns)}, "
                          f"PRIMARY KEY ({', '.join(table.key)})){' WITHOUT ROWID' * compact}")
    statements.append("CREATE INDEX IF NOT EXISTS holds_account ON holds (account_id)")
    statements.append("CREATE INDEX IF NOT EXISTS cards_account ON cards (account_id)")
    statements.append("CREATE INDEX IF NOT EXISTS holds_card ON holds (card_id)")
    statements.append("CREATE INDEX IF NOT EXISTS projection_facts_grp ON projection_facts (grp)")
    return statements


def marks(dialect: Dialect, count: int) -> list[str]:
    """The dialect's parameter placeholders: ? in SQLite, $1, $2... in PostgreSQL."""
    return ["?"] * count if dialect == "sqlite" else [f"${n}" for n in range(1, count + 1)]


def copy_sql(dialect: Dialect, table: str, columns: Sequence[str], source: str,
             *, named: bool, into: str | None = None) -> tuple[str, str]:
    """Replace a projection's rows of ``table`` (in ``into``, or where names resolve) with
    those of the same table in ``source`` (a schema, or an attached database): a DELETE, then
    an INSERT ... SELECT. In a table of rows per projection name (``named``), only the rows of
    this projection's name (the first parameter), from those of the source's (the second)."""
    target = table if into is None else f"{into}.{table}"
    listed = ", ".join(columns)
    if not named:
        return (f"DELETE FROM {target}",
                f"INSERT INTO {target} ({listed}) SELECT {listed} FROM {source}.{table}")
    mine, theirs = marks(dialect, 2)
    chosen = ", ".join(mine if c == "name" else c for c in columns)
    return (f"DELETE FROM {target} WHERE name = {mine}",
            f"INSERT INTO {target} ({listed}) SELECT {chosen} FROM {source}.{table} "
            f"WHERE name = {theirs}")


def insert_sql(dialect: Dialect, name: str, *, replace: bool) -> str:
    """Insert a row; on the same key, replace it (``replace``) or keep the first one."""
    table = TABLES[name]
    values = ", ".join(marks(dialect, len(table.columns)))
    others = [c for c, _ in table.columns if c not in table.key]
    # An upsert, not SQLite's INSERT OR REPLACE: that deletes the row and inserts it anew,
    # under a new rowid, so every index of the table is written twice.
    action = (f"UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in others)}"
              if replace and others else "NOTHING")
    return (f"INSERT INTO {name} VALUES ({values}) "
            f"ON CONFLICT ({', '.join(table.key)}) DO {action}")


def delete_sql(dialect: Dialect, name: str) -> str:
    """Delete the row with the given key."""
    key = TABLES[name].key
    return f"DELETE FROM {name} WHERE " + " AND ".join(
        f"{column} = {mark}" for column, mark in zip(key, marks(dialect, len(key)), strict=True))


def settle_sql(dialect: Dialect) -> str:
    kind, entity_id = marks(dialect, 2)
    return f"UPDATE projection_facts SET open = 0 WHERE kind = {kind} AND entity_id = {entity_id}"


def open_facts_sql() -> str:
    """The facts a runner restarts from: those of the entities it held in memory."""
    return "SELECT entity_id, kind, account_id, facts FROM projection_facts WHERE open = 1"


def settled_facts_sql(dialect: Dialect, groups: int) -> str:
    """The settled facts of the given groups (the grp column), to read back."""
    return ("SELECT entity_id, kind, account_id, facts FROM projection_facts "
            f"WHERE open = 0 AND grp IN ({', '.join(marks(dialect, groups))})")


def account_facts_sql(dialect: Dialect) -> str:
    """All of an account's facts, settled ones included."""
    return ("SELECT entity_id, kind, account_id, facts FROM projection_facts "
            f"WHERE account_id = {marks(dialect, 1)[0]}")


def holds_of_cards_sql(dialect: Dialect, cards: int) -> str:
    return ("SELECT authorisation_id, account_id FROM holds "
            f"WHERE card_id IN ({', '.join(marks(dialect, cards))})")


def card_ids_sql(dialect: Dialect) -> str:
    """The ids of an account's cards, as the projection knows them."""
    return f"SELECT card_id FROM cards WHERE account_id = {marks(dialect, 1)[0]}"


def model_sql(dialect: Dialect) -> str:
    """The version of the model that wrote a projection's rows."""
    return f"SELECT version FROM projection_models WHERE name = {marks(dialect, 1)[0]}"


def account_records_sql(dialect: Dialect) -> str:
    """One account's event records after a position and up to another, recorded by a
    time, in log order."""
    account, after, upto, recorded_by = marks(dialect, 4)
    events = "log.events" if dialect == "sqlite" else "events"  # SQLite: the attached log
    return (f"SELECT e.record FROM account_events a JOIN {events} e ON e.position = a.position "
            f"WHERE a.account_id = {account} AND a.position > {after} AND a.position <= {upto} "
            f"AND e.recorded_at <= {recorded_by} ORDER BY a.position")


class BatchWrite:
    """Everything one batch changes, written in one transaction with the checkpoint."""

    def __init__(self) -> None:
        self.models: list[tuple[str, int]] = []
        """(projection, version of its model): the rows were computed by that version."""
        self.entities: list[tuple[str, str, str, str, int, bytes]] = []
        self.settled: list[tuple[str, str]] = []
        """(kind, entity id) of the entities that leave memory with this commit."""
        self.accounts: list[tuple[str, bytes]] = []
        self.account_events: list[tuple[str, int]] = []
        self.anomalies: list[tuple[Any, ...]] = []
        self.quarantined: list[tuple[Any, ...]] = []
        self.upserts: dict[str, list[tuple[Any, ...]]] = {t: [] for t in VIEW_TABLES}
        self.deletes: dict[str, list[tuple[Any, ...]]] = {t: [] for t in VIEW_TABLES}

    def statements(self, dialect: Dialect) -> list[tuple[str, list[Any]]]:
        """The batch as (SQL, rows) pairs, in the order they must run."""
        steps: list[tuple[str, list[Any]]] = [
            (insert_sql(dialect, "projection_models", replace=True), self.models),
            (insert_sql(dialect, "projection_facts", replace=True), self.entities),
            (settle_sql(dialect), self.settled),
            (insert_sql(dialect, "projection_accounts", replace=True), self.accounts),
            (insert_sql(dialect, "account_events", replace=False), self.account_events),
            (insert_sql(dialect, "anomalies", replace=False), self.anomalies),
            (insert_sql(dialect, "quarantined", replace=False), self.quarantined)]
        for table in VIEW_TABLES:
            steps.append((delete_sql(dialect, table), self.deletes[table]))
            steps.append((insert_sql(dialect, table, replace=True), self.upserts[table]))
        return [(sql, rows) for sql, rows in steps if rows]


def balance_row(b: Balance) -> tuple[Any, ...]:
    money = format_amount
    return (b.account_id, b.currency, money(b.deposits), money(b.debits), money(b.credits),
            money(b.posted), money(b.held), money(b.available))


def hold_row(h: HoldView) -> tuple[Any, ...]:
    return (h.authorisation_id, h.account_id, h.card_id, h.currency, format_amount(h.amount),
            format_amount(h.remaining), h.status, h.created_at.isoformat(),
            h.expires_at.isoformat(), h.card_status, h.closed)


def card_row(c: CardView) -> tuple[Any, ...]:
    return (c.card_id, c.account_id, c.status,
            c.capture_window_until.isoformat() if c.capture_window_until else None)


def token_row(t: TokenTotal) -> tuple[Any, ...]:
    return (t.account_id, t.token, t.kind, format_amount(t.token_amount))


def anomaly_row(a: AnomalyView) -> tuple[Any, ...]:
    return (a.kind, a.entity, a.entity_id, a.account_id, a.at.isoformat())


_KEY_COLUMNS = {name: tuple(i for key in table.key for i, (column, _) in
                             enumerate(table.columns) if column == key)
                for name, table in TABLES.items()}


def key_of(table: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row's primary key."""
    return tuple(row[i] for i in _KEY_COLUMNS[table])


def rows_of(account: AccountView) -> Rows:
    """An account's view as rows of the view tables, by key."""
    rows: dict[str, list[tuple[Any, ...]]] = {
        "balances": [balance_row(b) for b in account.balances],
        "holds": [hold_row(h) for h in account.holds],
        "cards": [card_row(c) for c in account.cards],
        "token_totals": [token_row(t) for t in account.tokens],
        "anomalies": [anomaly_row(a) for a in account.anomalies], "quarantined": []}
    return {table: {key_of(table, row): row for row in rows[table]} for table in VIEW_TABLES}
