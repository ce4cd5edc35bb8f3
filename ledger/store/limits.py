"""Every limit the store enforces, in one place (TigerBeetle style: put a limit on everything).

Appends that break a limit are refused with ``LimitExceededError`` before anything is written.
"""

from __future__ import annotations

import re

from ledger.errors import InvalidPositionError, InvalidStreamNameError

MAX_EVENT_BYTES = 64 * 1024
"""Encoded payload plus metadata of one event. A card event is well under 2 KiB."""

MAX_BATCH_EVENTS = 10_000
"""Events in one ``append`` call."""

MAX_BATCH_BYTES = 16 * 1024 * 1024
"""Encoded size of one ``append`` call."""

MAX_GROUP_EVENTS = 20_000
"""Events the writer puts in one shared transaction; more wait for the next one."""

WRITE_QUEUE_DEPTH = 4_096
"""Appends waiting for the writer; further callers wait (back-pressure, not unbounded memory)."""

INLINE_COMMIT_SECONDS = 0.001
"""How long, on average, a commit may take and still be made by the appending task itself when
no other append waits (``EventStore._write``). A slower disk is not waited on by the event loop:
its commits go to the writer's thread."""

MAX_SECONDS_WITHOUT_TURN = 0.001
"""How long appends committed in their caller's task may go on without giving the event loop a
turn (``EventStore._commits_alone``): a task that only appends would otherwise keep it from
polling sockets, and every request waiting there."""

READ_BATCH_EVENTS = 5_000
"""Rows fetched per query when reading the log: bounded memory, few round trips."""

MAX_STREAM_NAME = 256

_STREAM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}-[!-~]+")
"""``category-id``: a category of letters, digits and ``_``, a dash, then printable ASCII."""


def check_stream_name(stream: str) -> str:
    """Return ``stream`` unchanged, or raise ``InvalidStreamNameError`` saying why."""
    if not isinstance(stream, str) or not _STREAM_NAME.fullmatch(stream):
        raise InvalidStreamNameError(
            f"bad stream name {stream!r}: expected 'category-id', a category of letters, digits "
            "and '_' (at most 64) and an id of printable ASCII without spaces"
        )
    if len(stream) > MAX_STREAM_NAME:
        raise InvalidStreamNameError(
            f"stream name is {len(stream)} characters long; the limit is {MAX_STREAM_NAME}"
        )
    return stream


MAX_POSITION = 2**63 - 1
"""Positions and versions are SQL BIGINTs."""


def check_position(value: object, name: str, *, least: int = 0) -> int:
    """``value`` if it is an int in [``least``, ``MAX_POSITION``] (a position, a version, a
    count); else ``InvalidPositionError`` naming the argument."""
    if type(value) is not int or not least <= value <= MAX_POSITION:
        raise InvalidPositionError(f"{name}: {value!r} is not an int in [{least}, 2**63 - 1]")
    return value


def check_category(category: str) -> str:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", category):
        raise InvalidStreamNameError(f"bad stream category {category!r}")
    return category


MAX_CONSUMER_NAME = 200


def check_consumer(consumer: str) -> str:
    """A consumer's name (``Tracking``): printable, 1 to 200 characters."""
    if (not isinstance(consumer, str) or not 0 < len(consumer) <= MAX_CONSUMER_NAME
            or not consumer.isprintable()):
        raise InvalidStreamNameError(f"bad consumer name {consumer!r}: 1 to "
                                     f"{MAX_CONSUMER_NAME} printable characters")
    return consumer
