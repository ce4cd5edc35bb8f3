"""How the sandbox authenticates, like the processor: credentials, expiring bearer tokens,
RFC 9421 request signatures (``ecdsa-p384-sha384`` only) and idempotency keys.

Token lifetimes and signature ages are measured on the real clock, not the sandbox's
business clock, so advancing the sandbox by 30 days does not lock clients out.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver, algorithms
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from adapters.sandbox.errors import SandboxError

SIGNATURE_MAX_AGE = timedelta(minutes=5)
"""A signature whose ``created`` is older than this is refused (401)."""
IDEMPOTENCY_RETENTION = 3600.0
ALGORITHM = "ecdsa-p384-sha384"


def unauthorised(message: str) -> SandboxError:
    return SandboxError(401, "not_authorised", message)


@dataclass
class Message:
    """What the signature library reads of a request."""

    method: str
    url: str
    headers: dict[str, str]


class _Keys(HTTPSignatureKeyResolver):
    def __init__(self, keys: dict[str, ec.EllipticCurvePublicKey]) -> None:
        self.keys = keys

    def resolve_public_key(self, key_id: str) -> ec.EllipticCurvePublicKey:
        try:
            return self.keys[key_id]
        except KeyError:
            raise HTTPMessageSignaturesException(f"unknown key id {key_id}") from None

    def resolve_private_key(self, key_id: str) -> ec.EllipticCurvePrivateKey:
        raise NotImplementedError("the sandbox only verifies")


class Credentials:
    def __init__(self, api_key: str | None, api_secret: str | None,
                 token_lifetime: float = 3600.0) -> None:
        self.api_key = api_key or str(uuid.uuid4())
        self.api_secret = api_secret or secrets.token_urlsafe(24)
        self.token_lifetime = token_lifetime
        self._tokens: dict[str, float] = {}
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ECDSA_P384_SHA384,
                                             key_resolver=_Keys(self._keys))

    # --- tokens -------------------------------------------------------------------------

    def issue_token(self, api_key: str, api_secret: str) -> tuple[str, int]:
        # As bytes: compare_digest refuses str with non-ASCII characters (TypeError, a 500).
        if not (secrets.compare_digest(api_key.encode(), self.api_key.encode())
                and secrets.compare_digest(api_secret.encode(), self.api_secret.encode())):
            raise unauthorised("bad credentials")
        token = f"sbx.{secrets.token_urlsafe(32)}"
        expires = time.time() + self.token_lifetime
        self._tokens[token] = expires
        return token, int(expires)

    def check_token(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise unauthorised("a bearer token is required")
        expires = self._tokens.get(token)
        if expires is None or expires <= time.time():
            self._tokens.pop(token, None)
            raise unauthorised("the token is unknown or expired")

    def rotate(self) -> tuple[str, str]:
        """New credentials; every token issued so far stops working."""
        self.api_key, self.api_secret = str(uuid.uuid4()), secrets.token_urlsafe(24)
        self._tokens.clear()
        return self.api_key, self.api_secret

    # --- signing keys and signatures ----------------------------------------------------

    def register_key(self, public_key_b64: str) -> str:
        try:
            key = serialization.load_pem_public_key(base64.b64decode(public_key_b64,
                                                                     validate=True))
        except ValueError:
            raise SandboxError(400, "invalid_request", "publicKey must be the base64 of a PEM "
                               "public key", "publicKey") from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
            raise SandboxError(400, "invalid_request", f"only {ALGORITHM} (P-384) keys are "
                               "supported", "publicKey")
        key_id = str(uuid.uuid4())
        self._keys[key_id] = key
        return key_id

    def remove_keys(self) -> None:
        self._keys.clear()

    def check_signature(self, message: Message, body: bytes) -> None:
        covered: Iterable[str] = ("@method", "@target-uri")
        if body:
            covered = (*covered, "content-digest")
        try:
            results = self._verifier.verify(message, max_age=SIGNATURE_MAX_AGE,
                                            require_components=tuple(covered), body=body)
        except HTTPMessageSignaturesException as exc:
            raise unauthorised(f"bad request signature: {exc}") from None
        for result in results:
            if result.parameters.get("alg") != ALGORITHM or "keyid" not in result.parameters:
                raise unauthorised(f"signatures must name keyid and alg={ALGORITHM}")


@dataclass
class _Stored:
    fingerprint: str
    expires: float
    status: int | None = None  # None: still in flight
    body: bytes = b""
    content_type: str = "application/json"


class IdempotencyKeys:
    """Same key and payload: the stored response again. Other payload: 422. In flight: 409."""

    def __init__(self, retention: float = IDEMPOTENCY_RETENTION) -> None:
        self.retention = retention
        self._stored: dict[str, _Stored] = {}

    @staticmethod
    def fingerprint(method: str, path: str, body: bytes) -> str:
        return hashlib.sha256(b"\n".join([method.encode(), path.encode(), body])).hexdigest()

    def begin(self, key: str | None, fingerprint: str) -> _Stored | None:
        """The stored response to replay, or None after reserving the key for this request."""
        if not key:
            raise SandboxError(400, "invalid_request", "an Idempotency-Key header is required",
                               "Idempotency-Key")
        try:
            uuid.UUID(key)
        except ValueError:
            raise SandboxError(400, "invalid_request", "Idempotency-Key must be a UUID",
                               "Idempotency-Key") from None
        now = time.time()
        stored = self._stored.get(key)
        if stored is not None and stored.expires <= now:
            stored = None
        if stored is None:
            self._stored[key] = _Stored(fingerprint, now + self.retention)
            return None
        if stored.fingerprint != fingerprint:
            raise SandboxError(422, "idempotency_mismatch",
                               "this Idempotency-Key was used with another request")
        if stored.status is None:
            raise SandboxError(409, "in_flight", "a request with this Idempotency-Key is "
                               "still in flight; retry later")
        return stored

    def finish(self, key: str, status: int, body: bytes, content_type: str) -> None:
        stored = self._stored[key]
        if status >= 500:  # a failure is not an answer: let a retry run it again
            del self._stored[key]
            return
        stored.status, stored.body, stored.content_type = status, body, content_type

    def abandon(self, key: str) -> None:
        self._stored.pop(key, None)
