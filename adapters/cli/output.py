"""How the command line shows results: rich tables for people, JSON for machines."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ledger.money import format_amount

_ENCODER = msgspec.json.Encoder()


@contextmanager
def progress(description: str, total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for long work: only on a terminal, never with --json."""
    if not enabled or not sys.stderr.isatty():
        yield lambda advance: None
        return
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda advance: bar.advance(task, advance)


def builtins(value: Any) -> Any:
    """``value`` as JSON-ready builtins, amounts as plain decimal text (``str(Decimal)``, which
    msgspec uses, may print ``1E-18``: no amount field reads that back)."""
    return _plain(msgspec.to_builtins(value, builtin_types=(Decimal,)))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format_amount(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    sys.stdout.buffer.write(_ENCODER.encode(builtins(value)) + b"\n")
    sys.stdout.flush()


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    view = Table(title=title, title_justify="left")
    for column in columns:
        numeric = column.removeprefix("Δ ") in (
            "deposits", "debits", "credits", "posted", "held", "available", "amount",
            "remaining", "tokenAmount")
        view.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        view.add_row(*("" if cell is None else str(cell) for cell in row))
    Console(width=160).print(view)


def records(title: str, items: Sequence[msgspec.Struct], as_json: bool,
            columns: Sequence[str] | None = None) -> None:
    """A list of structs: a JSON array of their camelCase objects, or a table."""
    plain = [builtins(item) for item in items]
    if as_json:
        emit_json(plain)
        return
    keys = list(columns or (plain[0].keys() if plain else []))
    table(title, keys, [[b.get(k) for k in keys] for b in plain])
