"""The sandbox's OpenAPI 3.1 document, made from its route table and its msgspec types."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec

from adapters.sandbox.routing import Problem, Route

_STATUS_TEXT = {200: "OK", 201: "Created", 202: "Accepted", 204: "No content",
                400: "Invalid request", 401: "Not authorised", 404: "Not found",
                409: "Invalid state transition, duplicate or request in flight",
                422: "Declined, or Idempotency-Key reused with another request",
                429: "Too many requests (an injected fault; see Retry-After)",
                500: "Internal error", 503: "Unavailable"}
_FAULTS = (429, 500, 503)
"""What any operation may answer when faults are injected (``adapters.sandbox.faults``)."""


def document(routes: Sequence[Route]) -> dict[str, Any]:
    """The document of ``routes`` (the sandbox's: ``adapters.sandbox.app.ROUTES``)."""
    types = [t for r in routes for t in (r.request, r.response) if t is not None] + [Problem]
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}")
    by_type = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, by_type)
    return {
        "openapi": "3.1.0",
        "info": {"title": "cardledger sandbox of the OffBlocks card-issuing API",
                 "version": "1.0.0",
                 "description": "Paths under /v1 follow the processor's documentation; paths "
                                "under /sandbox exist only in this sandbox."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(route: Route, schemas: dict[Any, Any]) -> dict[str, Any]:
    problem = {"content": {"application/json": {"schema": schemas[Problem]}}}
    responses: dict[str, Any] = {
        str(code): {"description": _STATUS_TEXT[code], **problem}
        for code in (*route.errors, *_FAULTS)}
    responses[str(route.status)] = {"description": _STATUS_TEXT[route.status]}
    if route.response is not None and route.status not in (202, 204):
        responses[str(route.status)]["content"] = {
            "application/json": {"schema": schemas[route.response]}}
    operation: dict[str, Any] = {
        "summary": route.summary, "responses": responses,
        "operationId": re.sub(r"\W+", "_", f"{route.method} {route.path}").strip("_").lower(),
        "parameters": [{"name": name, "in": "path", "required": True,
                        "schema": {"type": "string"}}
                       for name in re.findall(r"{(\w+)}", route.path)],
    }
    if route.auth != "none":
        operation["security"] = [{"bearer": []}]
    if route.method in ("POST", "PUT", "PATCH", "DELETE") and route.auth == "signed":
        operation["parameters"] += [
            {"name": "Idempotency-Key", "in": "header", "required": True,
             "schema": {"type": "string", "format": "uuid"}},
            {"name": "Signature", "in": "header", "required": True, "schema": {"type": "string"}},
            {"name": "Signature-Input", "in": "header", "required": True,
             "schema": {"type": "string"}}]
    if route.request is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": schemas[route.request]}}}
    return operation
