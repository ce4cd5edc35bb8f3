"""The sandbox's OpenAPI document is valid OpenAPI 3.1, covers every route, and the sandbox
answers every generated request with a documented status and body."""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from adapters.processor.client import ProcessorClient, SandboxControl
from adapters.sandbox.app import ROUTES
from adapters.sandbox.routing import Problem, Route
from tests.support.sandbox import active_card, client_for, raw_get, sandbox
from tests.support.schema_strategies import json_for

pytestmark = pytest.mark.anyio

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


async def test_the_document_is_valid_openapi_31_and_covers_every_route() -> None:
    box = sandbox()
    document = json.loads((await raw_get(box.app, "/openapi.json")).content)
    validate(document)
    assert document["openapi"] == "3.1.0"
    listed = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert listed == {(r.method, r.path) for r in ROUTES}
    assert all(p.startswith(("/v1/", "/sandbox/")) for p in document["paths"])


def _path(route: Route, ids: dict[str, str], pick: st.DataObject) -> str:
    def fill(match: re.Match[str]) -> str:
        known = [v for k, v in ids.items() if k in route.path] or list(ids.values())
        return pick.draw(st.sampled_from([*known, str(uuid.uuid4())]))

    return re.sub(r"{\w+}", fill, route.path)


async def _exercise(client: ProcessorClient, ids: dict[str, str], route: Route,
                    body: Any, pick: st.DataObject) -> None:
    content = b"" if body is None else msgspec.json.encode(body)
    key = str(uuid.uuid4()) if route.method != "GET" else None
    response = await client._send(route.method, _path(route, ids, pick), content, key)
    allowed = {route.status, *route.errors}
    assert response.status_code in allowed, (route.path, response.status_code, response.text)
    if response.status_code >= 400:
        msgspec.json.decode(response.content, type=Problem)
    elif route.response is not None and route.status not in (202, 204):
        msgspec.json.decode(response.content, type=route.response)


WITH_BODIES = [r for r in ROUTES if r.request is not None and r.auth == "signed"]


@pytest.mark.parametrize("route", WITH_BODIES, ids=lambda r: f"{r.method} {r.path}")
def test_generated_requests_get_documented_answers(route: Route) -> None:
    bodies = json_for(route.request) | JSON

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies, pick=st.data())
    def check(body: Any, pick: st.DataObject) -> None:
        async def run() -> None:
            box = sandbox()
            async with client_for(box) as client:
                account_id, card_id = await active_card(client)
                hold = await SandboxControl(client).authorise(card_id, Decimal("5"), capture=True)
                ids = {"customers": next(iter(box.world.customers)), "accounts": account_id,
                       "cards": card_id, "authorisations": hold.id, "transactions": hold.id,
                       "webhooks": "w1"}
                await _exercise(client, ids, route, body, pick)

        anyio.run(run)

    check()
