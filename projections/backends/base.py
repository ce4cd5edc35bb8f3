"""What every projection backend does (``projections.backends``), and its errors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import msgspec

from ledger.errors import (
    ConflictError,
    InternalError,
    InvalidInputError,
    LedgerError,
    UnavailableError,
)
from projections.tables import BatchWrite

REBUILD_SUFFIX = "~rebuild"
"""The name of a projection rebuilt online is its own and this (``rebuild_online``)."""
PART_SUFFIX = "~part"
"""The name of a part of a rebuild in parts is the rebuilt projection's, this and its
number (``projections.partitions``)."""


def rebuilt_home(name: str) -> str | None:
    """The rebuild whose tables the projection ``name`` writes (a rebuild's own name, or the
    rebuild a part belongs to), or None for a projection that serves (or a part of one)."""
    home = name.split(PART_SUFFIX)[0]
    return home if home.endswith(REBUILD_SUFFIX) else None


class ProjectionError(LedgerError):
    """The projections' errors (a group: each is also one kind)."""


class ProjectionUnavailableError(ProjectionError, UnavailableError):
    """The projection's database connection was lost (and, for a leader, its lead)."""


class ProjectionConflictError(ProjectionError, ConflictError):
    """The projection's tables are not where this runner left them: another runner wrote
    them, or they are of another log."""


class ProjectionFailedError(ProjectionError, InternalError):
    """The projections could not fold part of the log: a bug in cardledger, never bad input
    (an event the rules cannot apply is quarantined instead). Nothing of that span was
    written and the log is intact: ``verify`` and ``replay`` still work, and the next
    attempt starts again from the checkpoint."""


class ProjectionUsageError(ProjectionError, InvalidInputError):
    """A backend used before ``open``, or for a store that cannot keep projections."""


class Stored(msgspec.Struct):
    """A projection as stored: its checkpoint and what the runner's books restart from."""

    position: int
    model: int | None
    """The version of the model that wrote it (None: nothing written yet, or before versions)."""
    quarantined: int
    """How many events it quarantined."""
    accounts: list[tuple[str, bytes]]
    entities: list[tuple[str, str, str, bytes]]


class Snapshot(msgspec.Struct):
    """The view tables' rows and the checkpoint they are consistent with, read at once."""

    position: int
    rows: dict[str, set[tuple[Any, ...]]]


class ProjectionBackend(ABC):
    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    async def open(self) -> None:
        """Connect and create the tables if they are missing."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def try_lead(self) -> bool:
        """Take the projection's lead if no other runner holds it; never waits."""

    @abstractmethod
    async def resign(self) -> None: ...

    @abstractmethod
    async def checkpoint(self) -> int: ...

    @abstractmethod
    async def load(self) -> Stored: ...

    @abstractmethod
    async def commit(self, write: BatchWrite, expected: int, position: int) -> None:
        """Write the batch and move the checkpoint from ``expected`` to ``position``, in one
        transaction; ProjectionError (and nothing written) if it was not at ``expected``."""

    @abstractmethod
    async def clear(self) -> None:
        """Empty the tables and reset the checkpoint, in one transaction."""

    rebuilds_online = False
    """Whether a projection rebuilt beside this one can be swapped in (``adopt``)."""

    async def has_projection(self, name: str) -> bool:
        """Whether the projection ``name`` of the same log has tables (a rebuild's, left)."""
        return False

    async def adopt(self, rebuilt: ProjectionBackend, expected: int) -> None:
        """Replace this projection's rows and checkpoint with those of ``rebuilt`` (of the
        same log), in one transaction; a ``ProjectionConflictError`` if this checkpoint is
        not at ``expected`` (another runner wrote)."""
        raise ProjectionUsageError(f"{type(self).__name__} cannot swap in a projection "
                                   "rebuilt beside it: use rebuild()")

    async def discard(self) -> None:
        """Delete this projection's tables (one rebuilt beside another, once adopted); the
        lead stays held until ``close``."""
        raise ProjectionUsageError(f"{type(self).__name__} cannot discard its tables")

    @abstractmethod
    async def merge(self, parts: list[str], position: int, model: int) -> None:
        """Take the rows of the projections ``parts`` as this one's, at checkpoint
        ``position``, in one transaction; then forget the parts. Each part holds the rows of
        its own accounts, folded from their events up to ``position`` by a worker of a
        partitioned rebuild. This projection must be empty (at position 0): otherwise a
        ``ProjectionConflictError`` and nothing changes."""

    @abstractmethod
    async def drop_parts(self, parts: list[str]) -> None:
        """Forget the projections ``parts`` (a partitioned rebuild's, left by a crash)."""

    @abstractmethod
    async def account_records(self, account_id: str, after: int, upto: int,
                              recorded_by: int) -> list[bytes]:
        """The account's event records after position ``after``, up to ``upto``, recorded by
        ``recorded_by`` (microseconds since the epoch), in log order."""

    @abstractmethod
    async def snapshot(self) -> Snapshot: ...

    @abstractmethod
    async def settled_facts(self, groups: list[str]) -> list[tuple[str, str, str, bytes]]:
        """(entity id, kind, account id, facts) of the settled entities of those groups."""

    @abstractmethod
    async def account_facts(self, account_id: str) -> list[tuple[str, str, str, bytes]]:
        """Every entity's facts of one account, settled or not."""

    @abstractmethod
    async def holds_of_cards(self, card_ids: list[str]) -> list[tuple[str, str]]:
        """(authorisation id, account id) of the holds of those cards (the ``holds`` table)."""

    @abstractmethod
    async def card_ids(self, account_id: str) -> list[str]:
        """The account's cards in the ``cards`` table (an index: not a list of its cards'
        states, which the log holds)."""


def moved(expected: int, found: int) -> ProjectionConflictError:
    return ProjectionConflictError(f"the projection's checkpoint is at {found}, not {expected}: "
                           "another runner wrote it (only the leading runner may write)")
