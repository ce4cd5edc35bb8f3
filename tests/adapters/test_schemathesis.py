"""schemathesis against the sandbox and the webhook receiver, over loopback, from their own
OpenAPI documents: every generated request gets a documented status with a documented body,
and never a 5xx. Requests are authenticated as the API requires (a bearer token, an RFC 9421
signature, a Standard Webhooks signature), so that writes are exercised, not only refusals."""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from adapters.processor.client import ClientConfig, ProcessorClient, new_signing_key, public_key_b64
from adapters.processor.observer import Observer
from adapters.sandbox import openapi as sandbox_openapi
from adapters.sandbox.app import ROUTES
from adapters.sandbox.webhooks import new_secret
from adapters.testing.servers import free_port
from adapters.webhooks import api as webhook_api
from adapters.webhooks.receiver import WebhookReceiver
from ledger import open_store
from tests.support.sandbox import sandbox
from tests.support.webhooks import signed

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
EXAMPLES = settings(max_examples=30, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])
# Rotating the credentials or removing the signing keys ends the session every other case
# uses; tests/adapters/test_sandbox.py covers both.
SANDBOX = schemathesis.openapi.from_dict(sandbox_openapi.document(ROUTES)).exclude(
    path="/v1/auth/credentials").exclude(method="DELETE", path="/v1/auth/signing")
RECEIVER = schemathesis.openapi.from_dict(webhook_api.document())


@dataclass
class Served:
    url: str
    http: httpx.Client
    headers: dict[str, str]
    signer: ProcessorClient | None = None
    secret: str | None = None


@dataclass
class _Thread:
    server: uvicorn.Server
    thread: threading.Thread


def _serve(app: Any) -> tuple[str, _Thread]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="error", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}", _Thread(server, thread)


def _stop(running: _Thread) -> None:
    running.server.should_exit = True
    running.thread.join(timeout=10)


@pytest.fixture(scope="module")
def the_sandbox() -> Iterator[Served]:
    box = sandbox()
    url, running = _serve(box.app)
    key = new_signing_key()
    with httpx.Client(base_url=url) as http:
        token = http.post("/v1/auth/token", json={"apiKey": box.credentials.api_key,
                                                  "apiSecret": box.credentials.api_secret})
        bearer = {"authorization": f"Bearer {token.json()['token']}"}
        signer = ProcessorClient(ClientConfig(base_url=url, api_key="", api_secret=""), key)
        registered = http.put("/v1/auth/signing", headers={
            **bearer, "idempotency-key": "8d0e0c1e-9a57-4b37-9d5c-3c1f7c0e4a11"}, json={
            "publicKey": public_key_b64(key)})
        signer.key_id = registered.json()["keyId"]
        yield Served(url, http, bearer, signer=signer)
    _stop(running)


@pytest.fixture(scope="module")
def the_receiver() -> Iterator[Served]:
    secret = new_secret()
    with tempfile.TemporaryDirectory() as directory:
        ready, stop = threading.Event(), threading.Event()
        served: dict[str, Any] = {}

        async def run() -> None:  # the store lives on the server's own event loop
            async with open_store(Path(directory) / "l.db") as store:
                receiver = WebhookReceiver(Observer(store), secret=secret)
                server = uvicorn.Server(uvicorn.Config(receiver.app, host="127.0.0.1",
                                                       port=(port := free_port()),
                                                       log_level="error"))
                served.update(url=f"http://127.0.0.1:{port}", server=server)
                async with anyio.create_task_group() as group:
                    group.start_soon(server.serve)
                    while not server.started:  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                    ready.set()
                    await anyio.to_thread.run_sync(stop.wait)
                    server.should_exit = True

        thread = threading.Thread(target=anyio.run, args=(run,), daemon=True)
        thread.start()
        ready.wait(timeout=20)
        with httpx.Client(base_url=served["url"]) as http:
            yield Served(served["url"], http, {}, secret=secret)
        stop.set()
        thread.join(timeout=20)


def _send(case: Any, served: Served) -> httpx.Response:
    """The generated request, authenticated as a real caller's would be."""
    kwargs = case.as_transport_kwargs(base_url=served.url)
    headers = {k: v for k, v in kwargs["headers"].items()
               if k.lower() not in ("authorization", "signature", "signature-input")}
    content = b"" if "json" not in kwargs else msgspec.json.encode(kwargs["json"])
    if served.signer is not None and not case.path.startswith("/v1/auth/token"):
        headers.update(served.headers)
    if any(k.lower() == "idempotency-key" for k in headers):  # a new key, as a client's
        headers = {k: v for k, v in headers.items() if k.lower() != "idempotency-key"}
        headers["idempotency-key"] = str(uuid.uuid4())
    if served.secret is not None:  # a webhook: signed with the receiver's secret
        headers.update(signed(content, event_id="msg-st", secret=served.secret))
    request = served.http.build_request(case.method, kwargs["url"], params=kwargs["params"],
                                        headers=headers, content=content or None)
    if served.signer is not None and not case.path.startswith("/v1/auth/token"):
        served.signer._sign(request)  # RFC 9421 over the request as sent
    return served.http.send(request)


@SANDBOX.parametrize()
@EXAMPLES
def test_the_sandbox_answers_only_what_its_document_says(case: Any,
                                                         the_sandbox: Served) -> None:
    case.validate_response(_send(case, the_sandbox), checks=CHECKS)


@RECEIVER.parametrize()
@EXAMPLES
def test_the_receiver_answers_only_what_its_document_says(case: Any,
                                                          the_receiver: Served) -> None:
    case.validate_response(_send(case, the_receiver), checks=CHECKS)
