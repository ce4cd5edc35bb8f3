"""The sandbox's route table's types: what each route is, and the error body of all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec

Auth = Literal["none", "bearer", "signed"]
Handler = Callable[[Any], Any]
"""Takes the request as ``adapters.sandbox.app.Call``; returns the body, or awaits it."""


class Problem(msgspec.Struct):
    """Every error: a machine-readable code, a message, and the field at fault if any."""

    error: str
    message: str
    field: str | None = None


class Route(msgspec.Struct, frozen=True):
    method: str
    path: str
    handler: Handler
    summary: str
    response: Any = None
    status: int = 200
    request: Any = None
    auth: Auth = "signed"
    errors: tuple[int, ...] = (400, 401, 404, 409)
