"""The snapshot limits are stated by the types (``ledger.observations``): decoding checks them,
the JSON schema says them, and a snapshot made in Python is held to the same by
``check_snapshot``, naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from ledger.errors import InvalidSnapshotError
from ledger.observations import (
    MAX_LIST,
    MAX_TEXT,
    AccountSnapshot,
    AuthorisationSnapshot,
    Merchant,
    check_snapshot,
)

T = datetime(2026, 3, 1, tzinfo=UTC)


def hold(**changes: object) -> AuthorisationSnapshot:
    fields: dict[str, object] = {
        "id": "h1", "account_id": "a1", "card_id": "c1", "status": "pending", "amount": "12.50",
        "currency": "EUR", "merchant_amount": "12.50", "merchant_currency": "EUR", "created_at": T,
        "updated_at": T}
    return AuthorisationSnapshot(**{**fields, **changes})  # type: ignore[arg-type]


def test_the_schema_states_the_limits() -> None:
    (_schema,), components = msgspec.json.schema_components([AuthorisationSnapshot])
    props = components["AuthorisationSnapshot"]["properties"]
    assert props["accountId"]["pattern"].startswith("^[A-Za-z0-9]")
    assert "EUR" in props["currency"]["enum"] and "ZZZ" not in props["currency"]["enum"]
    assert props["amount"]["pattern"].count("{0,11}") == 1  # below a trillion
    merchant = components["Merchant"]["properties"]
    assert merchant["name"]["anyOf"][0]["maxLength"] == MAX_TEXT
    (_,), accounts = msgspec.json.schema_components([AccountSnapshot])
    assert accounts["AccountSnapshot"]["properties"]["currencies"]["maxItems"] == MAX_LIST


@pytest.mark.parametrize(("changes", "field"), [
    ({"account_id": "no such account"}, "accountId"),
    ({"id": "x" * 65}, "id"),
    ({"amount": "1" + "0" * 12}, "amount"),
    ({"created_at": datetime(2026, 3, 1)}, "createdAt"),  # naive: no timezone
    ({"merchant": Merchant(name="m" * (MAX_TEXT + 1))}, "merchant.name"),
    ({"currency": "ZZZ"}, "currency"),  # the pattern holds; ISO 4217 does not
    ({"updated_at": datetime(1999, 12, 31, tzinfo=UTC)}, "updatedAt"),
])
def test_a_snapshot_made_in_python_is_held_to_its_types(changes: dict[str, object],
                                                        field: str) -> None:
    with pytest.raises(InvalidSnapshotError) as refused:
        check_snapshot(hold(**changes), T)
    assert refused.value.field == field
    check_snapshot(hold(), T)  # and the valid one passes
