"""The library's exceptions: one family, backend-neutral.

Every error is a ``LedgerError`` and exactly one of its **kinds**, by what the caller can do
about it: ``InvalidInputError`` (fix the input), ``NotFoundError`` (name something that
exists), ``ConflictError`` (read again and decide again), ``UnauthorisedError`` (fix the
credentials or the signature), ``UnavailableError`` (try again later),
``VerificationFailedError`` (the log or an export does not verify) and ``InternalError`` (a bug
in cardledger). The command line's exit codes and the HTTP statuses are derived from the kind
alone, in one table (``adapters.errors``). Errors are grouped by where they come from too
(``StoreError``, ``DomainError``, and outside this layer ``ProjectionError`` and
``ProcessorError``); such a group is never raised itself.

Every error carries the facts needed to act on it (the actual stream version, the
conflicting event id, ...). Nothing here is SQLite-specific, so code written against one
backend catches the same errors on another.
"""

from __future__ import annotations

import uuid


class LedgerError(Exception):
    """Base class of every error raised by cardledger."""


# --- what a caller can do about it -------------------------------------------------------------
# Each error below is also one of these, whichever layer raised it: catch the kind you can act
# on (retry later; fix the input; read again and decide again).


class InvalidInputError(LedgerError, ValueError):
    """The input breaks a rule (an amount, an id, a currency, a snapshot, an append). Nothing
    was written; the same input will fail again."""


class ConflictError(LedgerError):
    """What the caller asked for conflicts with what is recorded (a stream moved, an id reused
    with other content, a transfer recorded differently, a forbidden transition). Nothing
    was written."""


class NotFoundError(LedgerError, LookupError):
    """The ledger has no such thing (a request, an account, a ledger file...) to act on.
    Nothing was written."""


class UnauthorisedError(LedgerError):
    """Credentials or a signature were refused (a webhook's signature, the processor's
    answer to ours). Nothing was written."""


class UnavailableError(LedgerError):
    """Something the ledger needs (the database, the processor) cannot be reached or keeps
    failing: an outage, not bad input; trying again later may succeed."""


class VerificationFailedError(LedgerError):
    """The log does not verify: its hash chain is broken, or an export disagrees with it."""


class InternalError(LedgerError):
    """A bug in cardledger (or a database failing in a way the code does not expect): not
    the caller's doing. The message names where; report it."""


KINDS: tuple[type[LedgerError], ...] = (
    InvalidInputError, NotFoundError, ConflictError, UnauthorisedError, UnavailableError,
    VerificationFailedError, InternalError)
"""Every error is exactly one of these (``kind_of``)."""


def kind_of(error: LedgerError) -> type[LedgerError]:
    """The one kind ``error`` is."""
    (kind,) = [kind for kind in KINDS if isinstance(error, kind)]
    return kind


# --- store ---------------------------------------------------------------------------------


class StoreError(LedgerError):
    """The event store's errors (a group: each is also one kind)."""


class StoreUnavailableError(StoreError, UnavailableError):
    """The database cannot be reached (refused, timed out, gone away): an outage, not bad
    input; trying again later may succeed."""


class StoreFailedError(StoreError, InternalError):
    """The database failed in a way the store does not expect (a corrupt file, a full disk,
    a constraint the store's own checks should have kept)."""


class StoreClosedError(StoreError, InvalidInputError):
    """The store was used outside its ``async with`` block."""


class InvalidAppendError(StoreError, InvalidInputError):
    """An append was refused before anything was written: the input itself is wrong."""


class EmptyBatchError(InvalidAppendError):
    """An append must carry at least one event."""


class InvalidStreamNameError(InvalidAppendError):
    """A stream name does not follow ``category-id`` (see ``ledger.store.limits``)."""


class LimitExceededError(InvalidAppendError):
    """An event or a batch is larger than the documented limits."""


class UnknownEventTypeError(InvalidAppendError):
    """The event's type is not in the store's registry."""


class InvalidPayloadError(InvalidAppendError):
    """The payload cannot be stored as it is: a wrong type, a float for an amount, ..."""


class DuplicateStreamError(InvalidAppendError):
    """An atomic append names one stream twice (put its events in one batch)."""


class DuplicateInBatchError(InvalidAppendError):
    """One batch names the same event id twice."""


class InvalidPositionError(StoreError, InvalidInputError):
    """A position, version or count given to a read is not an int in range."""


class WrongExpectedVersionError(StoreError, ConflictError):
    """The stream was not at the version the caller expected. Nothing was written."""

    def __init__(self, stream: str, expected: object, actual: int | None) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual  # None: the stream does not exist
        shown = "no stream" if actual is None else f"version {actual}"
        super().__init__(f"stream {stream!r}: expected {expected}, found {shown}")


class TrackingConflictError(StoreError, ConflictError):
    """A consumer's position is already recorded at or beyond the one committed: the work
    was committed before (by this consumer after a crash, or by another instance). Nothing
    was written."""

    def __init__(self, consumer: str, position: int, recorded: int) -> None:
        self.consumer, self.position, self.recorded = consumer, position, recorded
        super().__init__(f"consumer {consumer!r} has recorded position {recorded} already; "
                         f"committing {position} again would repeat its work")


class EventIdConflictError(StoreError, ConflictError):
    """An event id is already stored with different content. Nothing was written."""

    def __init__(self, event_id: uuid.UUID, position: int) -> None:
        self.event_id = event_id
        self.position = position
        super().__init__(f"event {event_id} is stored at position {position} with other content")


class PartialDuplicateError(StoreError, ConflictError):
    """Some events of a batch are already stored, others are not. Nothing was written.

    A batch is atomic, so an earlier append either stored all of it or none of it: a retry
    is all duplicates. A batch that overlaps an earlier one in part is a different batch that
    reuses ids, and guessing which half the caller meant could count money twice.
    """

    def __init__(self, stream: str, stored: tuple[uuid.UUID, ...]) -> None:
        self.stream = stream
        self.stored = stored
        super().__init__(
            f"stream {stream!r}: {len(stored)} event(s) of the batch are already stored "
            f"(first {stored[0]}), the others are not"
        )


class SchemaError(StoreError, InvalidInputError):
    """The database is not one this program can read: its schema is newer, or the log holds
    event types it cannot decode (found when the store opens), or a registry is ill-made."""


class StoreUrlError(StoreError, InvalidInputError):
    """``open_store`` was given a URL it cannot open."""


# --- domain ----------------------------------------------------------------------------------


class DomainError(LedgerError):
    """The domain rules' errors (a group: each is also one kind)."""


class InvalidAmountError(DomainError, InvalidInputError):
    """An amount is not an exact, non-negative decimal string (or has too many decimals)."""


class UnknownCurrencyError(DomainError, InvalidInputError):
    """A currency code is not an ISO 4217 code."""


class CurrencyMismatchError(DomainError, InvalidInputError):
    """Amounts of different currencies were combined; the ledger never converts implicitly."""


class InvalidIdentifierError(DomainError, InvalidInputError):
    """A UUID or CAIP identifier is malformed."""


class InvalidSnapshotError(DomainError, InvalidInputError):
    """A processor snapshot that decodes but carries a value no processor sends (an id, a
    date, an amount out of range). Nothing was recorded."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        super().__init__(f"{field}: {reason}")


class TransferConflictError(DomainError, ConflictError):
    """An on-chain transfer already recorded, but with another account, amount or currency.
    Nothing was written."""


class InsufficientFundsError(DomainError, ConflictError):
    """A withdrawal larger than the account's available balance, refused by default (pass
    ``allow_overdraft=True`` to record it all the same). Nothing was written."""


class InvalidTransitionError(DomainError, ConflictError):
    """A local command asked for a transition the processor's state machine forbids.

    Nothing was decided: no event was produced.
    """

    def __init__(self, entity: str, entity_id: object, state: str, command: str,
                 reason: str = "") -> None:
        self.entity = entity
        self.entity_id = entity_id
        self.state = state
        self.command = command
        detail = f": {reason}" if reason else ""
        super().__init__(f"{entity} {entity_id} is {state}; cannot {command}{detail}")
