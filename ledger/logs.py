"""Logs that belong to the host. Every logger of the library is a stdlib ``logging`` logger
named ``cardledger.<part>`` (``cardledger.outbox``, ``cardledger.store``, ...): the library
configures nothing global, adds no handler, and leaves levels, format and destination to the
service that embeds it (or to the CLI, which configures them for itself).

A record's message reads ``event key=value ...``; the same fields, unrendered, are on the
record as ``record.fields`` (a dict) for a host that formats records as JSON."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog

ROOT = "cardledger"


def get_logger(part: str) -> Any:
    """A structlog-style logger (``log.info("event", key=value)``, ``.bind(...)``) emitting
    through the stdlib logger ``cardledger.<part>``, whatever structlog's global settings."""
    return structlog.wrap_logger(
        logging.getLogger(f"{ROOT}.{part}"),
        processors=[structlog.stdlib.filter_by_level, _to_record],
        wrapper_class=structlog.stdlib.BoundLogger)


def _to_record(logger: object, method: str,
               event: MutableMapping[str, Any]) -> tuple[tuple[str], dict[str, Any]]:
    message = str(event.pop("event", ""))
    exc_info = event.pop("exc_info", None)
    rendered = " ".join([message, *(f"{key}={value}" for key, value in event.items())])
    return (rendered,), {"exc_info": exc_info, "extra": {"fields": dict(event)}}
