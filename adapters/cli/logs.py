"""The command line's own logging: the library's ``cardledger.*`` loggers to stderr, as text
or as one JSON object a line (the library configures nothing; the CLI is a host)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from ledger.logs import ROOT


class JSONLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(),
                "level": record.levelname.lower(), "logger": record.name,
                "message": record.getMessage(), **getattr(record, "fields", {})}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(log_format: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONLines() if log_format == "json" else logging.Formatter(
        "%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    logger = logging.getLogger(ROOT)
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
