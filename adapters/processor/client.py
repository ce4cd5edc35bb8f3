"""An async client for the processor's API (OffBlocks), with typed models of its entities.

- Bearer token obtained on first use and refreshed a minute before it expires (or at once
  if the processor says it no longer holds);
- every authenticated request signed (RFC 9421, ``ecdsa-p384-sha384``, covering the method,
  the target URI and, with a body, its ``Content-Digest``), by http-message-signatures;
- ``Idempotency-Key`` on every mutating request: the caller's (derived from the ledger event
  behind it, so a retry after a crash reuses it) or one generated for the call, reused by its
  own retries;
- retries with jittered exponential backoff on network errors, timeouts, 429 (never sooner
  than its ``Retry-After``), 5xx and 409, within an overall deadline; errors surface as
  ``adapters.processor.errors`` exceptions with status and body.

Logs carry the correlation id, the method, the path and the status: never a token, a secret,
a signature or a card number.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import anyio
import httpx
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms

from adapters.processor.errors import (
    DeadlineExceeded,
    NotConfigured,
    error_for,
    retry_after_seconds,
)
from ledger.backoff import backoff
from ledger.clock import REAL_TIMER, Clock, Timer, utc_now
from ledger.ids import Ids
from ledger.logs import get_logger
from ledger.money import format_amount
from ledger.observations import (
    AccountSnapshot,
    Address,
    AuthorisationSnapshot,
    CardSnapshot,
    CustomerSnapshot,
    TransactionSnapshot,
)

log = get_logger("processor")
T = TypeVar("T")
_ENCODER = msgspec.json.Encoder()


class ClientConfig(msgspec.Struct, frozen=True, kw_only=True):
    base_url: str
    api_key: str
    api_secret: str
    key_id: str | None = None
    deadline: float = 30.0
    """Seconds a request may take, retries included."""
    timeout: float = 5.0
    """Seconds one attempt may take."""
    base_delay: float = 0.05
    max_delay: float = 2.0
    conflict_retries: int = 3
    """409 is retried at most this often: an invalid transition will not fix itself."""


def new_signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(pem).decode()


class _OneKey(HTTPSignatureKeyResolver):
    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self.key = key

    def resolve_private_key(self, key_id: str) -> ec.EllipticCurvePrivateKey:
        return self.key

    def resolve_public_key(self, key_id: str) -> ec.EllipticCurvePublicKey:
        return self.key.public_key()


class ProcessorClient:
    """Use as ``async with ProcessorClient(config, signing_key) as client``.

    ``clock`` is the time the processor authenticates by, not the ledger's: a signature's
    ``created`` and a token's expiry are judged by the processor's real clock (a simulation
    whose processor runs on virtual time passes that). ``timer`` measures the deadline and
    waits between retries, ``rng`` draws their jitter and ``ids`` the idempotency keys a call
    without its own gets: a simulation passes virtual and seeded ones."""

    def __init__(self, config: ClientConfig, signing_key: ec.EllipticCurvePrivateKey, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 rng: random.Random | None = None, clock: Clock = utc_now,
                 timer: Timer = REAL_TIMER, ids: Ids = uuid.uuid4) -> None:
        self.config, self.key_id, self.clock = config, config.key_id, clock
        self.timer, self.ids = timer, ids
        self._signer = HTTPMessageSigner(signature_algorithm=algorithms.ECDSA_P384_SHA384,
                                         key_resolver=_OneKey(signing_key))
        self._signing_key = signing_key
        self._http = httpx.AsyncClient(base_url=config.base_url, transport=transport,
                                       timeout=config.timeout)
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = anyio.Lock()
        self._rng = rng or random.Random()

    async def __aenter__(self) -> ProcessorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    # --- authentication -----------------------------------------------------------------

    async def _bearer(self, force: bool = False) -> str:
        async with self._token_lock:
            if force or self._token is None or self.clock().timestamp() > self._token_expires - 60:
                body = _ENCODER.encode({"apiKey": self.config.api_key,
                                        "apiSecret": self.config.api_secret})
                response = await self._retrying("POST", "/v1/auth/token", lambda: self._http.post(
                    "/v1/auth/token", content=body, headers={"content-type": "application/json"}),
                    log.bind(method="POST", path="/v1/auth/token"), refresh=False)
                token = msgspec.json.decode(response.content)
                self._token, self._token_expires = token["token"], float(token["expiresAt"])
            assert self._token is not None
            return self._token

    async def register_signing_key(self) -> str:
        """Register this client's public key (``PUT /v1/auth/signing``, bearer only)."""
        body = _ENCODER.encode({"publicKey": public_key_b64(self._signing_key)})
        key = str(self.ids())

        async def send() -> httpx.Response:
            return await self._http.put("/v1/auth/signing", content=body, headers={
                "authorization": f"Bearer {await self._bearer()}",
                "content-type": "application/json", "idempotency-key": key})

        response = await self._retrying("PUT", "/v1/auth/signing", send,
                                        log.bind(method="PUT", path="/v1/auth/signing"))
        self.key_id = str(msgspec.json.decode(response.content)["keyId"])
        return self.key_id

    def _sign(self, request: httpx.Request) -> None:
        if self.key_id is None:
            raise NotConfigured(0, b"no signing key registered", request.method,
                                request.url.path)
        body = request.content
        self._signer.sign(request, key_id=self.key_id, created=self.clock(),
                          covered_component_ids=("@method", "@target-uri"),
                          body=body if body else None)

    # --- requests -----------------------------------------------------------------------

    async def call(self, method: str, path: str, result: type[T] | None = None, *,
                   body: Any = None, idempotency_key: uuid.UUID | None = None,
                   correlation_id: str | None = None) -> T | None:
        """Send one API request, signed, with retries; decode the answer into ``result``."""
        content = _ENCODER.encode(body) if body is not None else b""
        mutating = method in ("POST", "PUT", "PATCH", "DELETE")
        key = str(idempotency_key or self.ids()) if mutating else None
        bound = log.bind(method=method, path=path, correlation_id=correlation_id,
                         idempotency_key=key)
        response = await self._retrying(method, path,
                                        lambda: self._send(method, path, content, key), bound)
        if result is None or response.status_code == 204 or not response.content:
            return None
        return msgspec.json.decode(response.content, type=result)

    async def _retrying(self, method: str, path: str,
                        send: Callable[[], Awaitable[httpx.Response]], bound: Any, *,
                        refresh: bool = True) -> httpx.Response:
        """``send`` until it succeeds, backing off on network errors, 5xx and 409, within the
        deadline; a 401 first refreshes the token once (it may have been revoked)."""
        started, attempt, conflicts = self.timer.monotonic(), 0, 0
        while True:
            attempt += 1
            failure: str
            asked: float | None = None  # the processor's Retry-After, in seconds
            try:
                response = await send()
            except httpx.TransportError as exc:  # connection errors and timeouts
                failure = type(exc).__name__
            else:
                status = response.status_code
                if status < 300:
                    bound.debug("processor request", status=status, attempt=attempt)
                    return response
                asked = retry_after_seconds(response.headers.get("retry-after"))
                if status == 401 and refresh and attempt == 1:
                    await self._bearer(force=True)
                    continue
                conflicts += status == 409
                retry_conflict = status == 409 and conflicts <= self.config.conflict_retries
                if status < 500 and status != 429 and not retry_conflict:
                    bound.info("processor refused", status=status, attempt=attempt)
                    raise error_for(status, response.content, method, path, asked)
                failure = f"HTTP {status}"
            delay = backoff(attempt, self.config.base_delay, self.config.max_delay, self._rng)
            if asked is not None:  # never sooner than the processor asked
                delay = max(delay, asked)
            if self.timer.monotonic() - started + delay > self.config.deadline:
                bound.warning("processor request gave up", failure=failure, attempt=attempt)
                raise DeadlineExceeded(f"{method} {path}: {failure} after {attempt} attempts",
                                       asked)
            bound.info("processor request retried", failure=failure, attempt=attempt)
            await self.timer.sleep(delay)

    async def _send(self, method: str, path: str, content: bytes,
                    key: str | None) -> httpx.Response:
        headers = {"authorization": f"Bearer {await self._bearer()}"}
        if content:
            headers["content-type"] = "application/json"
        if key is not None:
            headers["idempotency-key"] = key
        request = self._http.build_request(method, path, content=content, headers=headers)
        self._sign(request)
        return await self._http.send(request)

    async def get(self, path: str, result: type[T]) -> T:
        answer = await self.call("GET", path, result)
        assert answer is not None
        return answer

    # --- the processor's entities -------------------------------------------------------

    async def create_customer(self, external_id: str, chain_id: str | None,
                              key: uuid.UUID | None = None) -> CustomerSnapshot:
        return await self._must("POST", "/v1/customers", CustomerSnapshot,
                                {"externalId": external_id, "chainId": chain_id}, key)

    async def create_account(self, customer_id: str, currency: str,
                             key: uuid.UUID | None = None) -> AccountSnapshot:
        return await self._must("POST", f"/v1/customers/{customer_id}/accounts",
                                AccountSnapshot, {"currency": currency}, key)

    async def create_card(self, account_id: str, billing_address: Address,
                          key: uuid.UUID | None = None) -> CardSnapshot:
        return await self._must("POST", f"/v1/accounts/{account_id}/cards", CardSnapshot,
                                {"type": "virtual",
                                 "billingAddress": msgspec.to_builtins(billing_address)}, key)

    async def card_action(self, card_id: str, action: str, key: uuid.UUID | None = None,
                          ) -> None:
        """``deactivate``, ``activate`` or ``terminate``."""
        if action == "terminate":
            await self.call("DELETE", f"/v1/cards/{card_id}", idempotency_key=key)
        else:
            await self.call("PATCH", f"/v1/cards/{card_id}/{action}", idempotency_key=key)

    async def customers(self) -> list[CustomerSnapshot]:
        return await self.get("/v1/customers", list[CustomerSnapshot])

    async def accounts(self) -> list[AccountSnapshot]:
        return await self.get("/v1/accounts", list[AccountSnapshot])

    async def cards(self) -> list[CardSnapshot]:
        return await self.get("/v1/cards", list[CardSnapshot])

    async def card(self, card_id: str) -> CardSnapshot:
        return await self.get(f"/v1/cards/{card_id}", CardSnapshot)

    async def authorisation(self, authorisation_id: str) -> AuthorisationSnapshot:
        return await self.get(f"/v1/authorisations/{authorisation_id}", AuthorisationSnapshot)

    async def transaction(self, transaction_id: str) -> TransactionSnapshot:
        return await self.get(f"/v1/transactions/{transaction_id}", TransactionSnapshot)

    async def account_transactions(self, account_id: str) -> list[TransactionSnapshot]:
        return await self.get(f"/v1/accounts/{account_id}/transactions",
                              list[TransactionSnapshot])

    async def subscribe_webhooks(self, callback_url: str, types: Sequence[str]) -> None:
        await self.call("PUT", "/v1/webhooks", body={"callbackUrl": callback_url,
                                                     "types": list(types)})

    async def _must(self, method: str, path: str, result: type[T], body: Any,
                    key: uuid.UUID | None) -> T:
        answer = await self.call(method, path, result, body=body, idempotency_key=key)
        assert answer is not None
        return answer


class SandboxControl:
    """The sandbox's simulator and sandbox-only endpoints, through a signed client."""

    def __init__(self, client: ProcessorClient) -> None:
        self.client = client

    async def verify_customer(self, customer_id: str) -> None:
        await self.client.call("PATCH", f"/v1/simulator/customers/{customer_id}/verify")

    async def issue_card(self, card_id: str) -> None:
        await self.client.call("PATCH", f"/v1/simulator/cards/{card_id}/issue")

    async def authorise(self, card_id: str, amount: Decimal, currency: str = "EUR",
                        capture: bool = False) -> AuthorisationSnapshot:
        return await self.client._must(
            "POST", f"/v1/simulator/cards/{card_id}/authorisation", AuthorisationSnapshot,
            {"amount": format_amount(amount), "currency": currency, "capture": capture}, None)

    async def capture(self, authorisation_id: str, amount: Decimal | None = None) -> None:
        await self.client.call("POST", f"/sandbox/authorisations/{authorisation_id}/capture",
                               body={"amount": None if amount is None else format_amount(amount)})

    async def release(self, authorisation_id: str) -> None:
        await self.client.call("PATCH", f"/v1/simulator/authorisations/{authorisation_id}/release")

    async def refund(self, transaction_id: str, amount: Decimal) -> TransactionSnapshot:
        return await self.client._must("POST", f"/sandbox/transactions/{transaction_id}/refund",
                                       TransactionSnapshot, {"amount": format_amount(amount)}, None)

    async def settle(self, transaction_id: str, reverse: bool = False) -> None:
        action = "reverse" if reverse else "process"
        await self.client.call("PATCH", f"/sandbox/transactions/{transaction_id}/{action}")

    async def deposit(self, account_id: str, amount: Decimal) -> None:
        await self.client.call("POST", f"/sandbox/accounts/{account_id}/deposit",
                               body={"amount": format_amount(amount)})

    async def balance(self, account_id: str) -> dict[str, str]:
        return await self.client.get(f"/sandbox/accounts/{account_id}/balance", dict[str, str])

    async def advance_clock(self, seconds: int) -> None:
        await self.client.call("POST", "/sandbox/clock/advance", body={"seconds": seconds})

    async def card_status(self, card_id: str, status: str) -> None:
        await self.client.call("PATCH", f"/sandbox/cards/{card_id}/{status}")
