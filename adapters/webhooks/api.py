"""The webhook receiver's API (``adapters.webhooks.receiver``): the bodies it answers with, and
its OpenAPI 3.1 document, made from those and the snapshot types it accepts (whose limits the
types state: ``ledger.observations``), so that the document cannot drift from the code. Date
bounds no schema can say: a date before 2000 or past tomorrow is a documented 400."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ledger.observations import (
    BY_WEBHOOK_TYPE,
    ID,
)


class Recorded(msgspec.Struct, frozen=True):
    """A delivery accepted: whether it taught the ledger anything new, and where."""

    recorded: bool
    position: int | None


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """A delivery refused (or not recorded yet): a machine-readable code and a message, and
    the field at fault when one is."""

    error: str
    message: str
    field: str | None = None


class Health(msgspec.Struct, frozen=True):
    status: Literal["ok", "degraded"]
    problems: list[str]
    received: int
    """Deliveries recorded since this process started."""
    position: int | None
    """The log's head (None: the database is unreachable)."""


_SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def document() -> dict[str, Any]:
    kinds = list(BY_WEBHOOK_TYPE.items())
    types: list[Any] = [t for _, t in kinds] + [Recorded, Problem, Health]
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}")
    by_type = dict(zip(types, schemas, strict=True))
    delivery = {"oneOf": [{"allOf": [by_type[snapshot], {
        "type": "object", "required": ["webhookType", "eventId"],
        "properties": {"webhookType": {"const": webhook_type},
                       "eventId": {"type": "string", "pattern": f"^{ID.pattern}$"}}}]}
        for webhook_type, snapshot in kinds]}

    def answer(description: str, body: type) -> dict[str, Any]:
        return {"description": description,
                "content": {"application/json": {"schema": by_type[body]}}}

    return {
        "openapi": "3.1.0",
        "info": {"title": "cardledger webhook receiver", "version": "1.0.0",
                 "description": "Receives the processor's webhooks (Standard Webhooks "
                                "signatures) and records what they teach."},
        "paths": {
            "/webhooks": {"post": {
                "summary": "Record one webhook delivery",
                "operationId": "receive_webhook",
                "parameters": [{"name": name, "in": "header", "required": True,
                                "schema": {"type": "string"}} for name in _SIGNATURE_HEADERS],
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": delivery}}},
                "responses": {
                    "200": answer("Recorded, or known already (recorded: false)", Recorded),
                    "400": answer("Not a valid delivery: nothing recorded", Problem),
                    "401": answer("Missing, wrong or stale signature", Problem),
                    "409": answer("eventId reused with other content", Problem),
                    "503": answer("Database unreachable: send again later", Problem)}}},
            "/health": {"get": {
                "summary": "Ready or degraded, and why", "operationId": "health",
                "responses": {"200": answer("The receiver's state", Health)}}},
        },
        "components": {"schemas": components},
    }
