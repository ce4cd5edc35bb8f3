"""The one path of a webhook delivery: from the bytes received to a recorded position, or a
typed refusal. The HTTP receiver, the archive ingest (and through it the command line) all
take deliveries here, so each rule is applied once, in this order:

1. **Signature** (with a secret): Standard Webhooks, 5-minute tolerance; a missing, wrong or
   stale one is a ``BadSignatureError`` (an ``UnauthorisedError``).
2. **Parse and check** (``adapters.processor.deliveries.parse_delivery``): the envelope, the
   snapshot's schema and its rules (``check_snapshot``), once; ``InvalidDelivery`` otherwise.
3. **Verify by fetching** (with a processor client and no secret): the payload is only a
   hint, and what an authenticated fetch of the entity returns is recorded (and checked).
4. **Record** (``Observer``): the snapshot's events and the delivery's marker in one batch.
   An ``eventId`` recorded before with other content is a ``DeliveryConflictError``.

An archive is an operator's own file: it is taken without a signature (``WebhookIntake``
with neither a secret nor a fetcher).
"""

from __future__ import annotations

from collections.abc import Mapping

from standardwebhooks import Webhook

from adapters.processor.client import ProcessorClient
from adapters.processor.deliveries import Delivery, facts_taught, parse_delivery
from adapters.processor.observer import Observer
from adapters.webhooks.api import Recorded
from ledger.errors import InvalidInputError, UnauthorisedError
from ledger.logs import get_logger
from ledger.observations import AnySnapshot, kind_of

log = get_logger("webhooks")


class BadSignatureError(UnauthorisedError):
    """A webhook whose Standard Webhooks signature is missing, wrong or stale. Nothing was
    recorded."""


def _verifier(secret: object) -> Webhook:
    """The Standard Webhooks verifier for ``secret`` (``whsec_`` and base64), or
    ``InvalidInputError`` saying what a secret looks like."""
    if isinstance(secret, str):
        try:
            return Webhook(secret)
        except (ValueError, TypeError):  # binascii.Error is a ValueError
            pass
    raise InvalidInputError("secret: a webhook secret is 'whsec_' followed by base64, as the "
                            "processor gives it")


class WebhookIntake:
    def __init__(self, observer: Observer, *, secret: str | None = None,
                 fetcher: ProcessorClient | None = None) -> None:
        self.observer = observer
        self._webhook = _verifier(secret) if secret else None  # an empty one verifies nothing
        self.fetcher = fetcher

    @property
    def verifies(self) -> bool:
        """Whether what it takes is verified (by signature or by fetching)."""
        return self._webhook is not None or self.fetcher is not None

    def check(self, body: bytes, headers: Mapping[str, str] | None = None) -> Delivery:
        """Steps 1 and 2: the signature (with a secret), then the parsed, checked delivery."""
        if self._webhook is not None:
            try:
                self._webhook.verify(body, dict(headers or {}), json_parse=False)
            except Exception as exc:  # the library raises ValueError too, on odd headers
                raise BadSignatureError(f"bad signature: {exc}") from None
        return parse_delivery(body, self.observer.clock())

    async def take(self, delivery: bytes | Delivery,
                   headers: Mapping[str, str] | None = None) -> Recorded:
        """A delivery, as received (bytes and their headers) or as ``check`` returned it,
        recorded: whether it taught anything new, and the log position of its batch."""
        if isinstance(delivery, bytes):
            delivery = self.check(delivery, headers)
        fetch = self._webhook is None and self.fetcher is not None  # signed: the payload holds
        snapshot = await self._fetch(delivery) if fetch else delivery.snapshot
        result = await self.observer.record(snapshot, delivery=delivery,
                                            correlation_id=delivery.event_id)
        return Recorded(facts_taught(result, delivery) > 0,
                        result.last_position if result else None)

    async def _fetch(self, delivery: Delivery) -> AnySnapshot:
        assert self.fetcher is not None
        snapshot = delivery.snapshot
        return await self.fetcher.get(f"/v1/{kind_of(snapshot)}s/{snapshot.id}", type(snapshot))
