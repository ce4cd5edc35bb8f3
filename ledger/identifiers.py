"""Identifier formats: entity UUIDs and the CAIP ids the processor uses for chains and assets."""

from __future__ import annotations

import re
import uuid

from ledger.errors import InvalidIdentifierError

# CAIP-2 chain id: namespace:reference (eip155:324)
CHAIN_ID = re.compile(r"[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}")
# CAIP-10 account id: chain id:address (eip155:324:0x2222...)
ACCOUNT_ID = re.compile(r"[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}:[-.%a-zA-Z0-9]{1,128}")
# CAIP-19 asset type: chain id/asset namespace:asset reference (eip155:1/erc20:0x6b17...)
ASSET_ID = re.compile(r"[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}/[-a-z0-9]{3,8}:[-.%a-zA-Z0-9]{1,128}")
# A chain transaction: chain id:transaction hash (eip155:324:0x4593...)
CHAIN_TRANSACTION_ID = ACCOUNT_ID


def check(pattern: re.Pattern[str], value: object, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidIdentifierError(f"{value!r} is not a valid {what}")
    return value


def parse_uuid(value: object, what: str = "id") -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidIdentifierError(f"{value!r} is not a valid {what} (UUID)") from None
