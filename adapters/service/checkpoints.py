"""``cardledger serve --checkpoint-file``: a signed checkpoint written to a file every N
minutes or M events, whichever comes first (and only when the log has grown), so that
something outside the database remembers what the log was."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import anyio.to_thread

from adapters.service.card_ledger import CardLedger
from ledger.logs import get_logger
from ledger.transparency.note import SigningKey

log = get_logger("checkpoints")


async def publish_checkpoints(ledger: CardLedger, key: SigningKey, path: Path, *,
                              every_seconds: float, every_events: int) -> None:
    """Forever (cancel to stop)."""
    published = -1
    while True:
        head = await ledger.store.head()
        if head != published:
            note = await ledger.checkpoint(key)
            await anyio.to_thread.run_sync(_write, path, note)
            published = int(note.split("\n")[1])
            log.info("checkpoint published", size=published, path=str(path))
        with anyio.move_on_after(every_seconds):
            await ledger.store.wait_for_position(published + every_events)


def _write(path: Path, note: str) -> None:
    """Whole or not at all: a reader never sees half a checkpoint."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(note, encoding="utf-8")
    os.replace(partial, path)
