"""Exact money: decimal amounts parsed from strings, ISO 4217 currencies, no implicit rounding.

Amounts enter the ledger only through ``parse_amount`` (or ``parse_token_amount``): plain
decimal strings such as ``"10.0"``, ``"20"`` or ``"0.000000000000000001"``. Floats, exponents,
NaN and infinities are refused. Arithmetic on ``Money`` uses a context that raises instead of
rounding, and refuses to mix currencies.
"""

from __future__ import annotations

import decimal
import re
from collections import Counter
from decimal import Decimal
from typing import Self

import msgspec

from ledger.errors import CurrencyMismatchError, InvalidAmountError, UnknownCurrencyError

TOKEN_DECIMALS = 18
"""Token amounts keep up to 18 decimals (ERC-20 precision)."""

EXACT = decimal.Context(
    prec=80,  # far beyond any amount with 18 decimals, so sums are exact...
    # ...and an inexact result raises instead of hiding. Not ``Rounded``: Decimal signals it
    # whenever digits are discarded, zeros included, and dropping the trailing zeros of
    # 300.00 to write 300 loses nothing (``ExactSum.value`` does exactly that).
    traps=[decimal.Inexact, decimal.InvalidOperation, decimal.DivisionByZero,
           decimal.Overflow],
)

# At most 30 integer digits and 30 decimals: far beyond any real amount, and a limit.
_DECIMAL_TEXT = re.compile(r"(0|[1-9][0-9]{0,29})(\.[0-9]{1,30})?")

# Active ISO 4217 codes (fund and precious-metal codes left out).
# A table reads better than a list of 150 quoted strings.
ISO_4217 = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS
GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW
KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD
NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD
SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES
VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
""".split())  # noqa: SIM905

_NO_MINOR_UNIT = ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
                  "VND", "VUV", "XAF", "XOF", "XPF")
_THREE_PLACES = ("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND")
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(ISO_4217, 2), **dict.fromkeys(_NO_MINOR_UNIT, 0),
    **dict.fromkeys(_THREE_PLACES, 3)}
"""ISO 4217's minor units: how many decimal places an amount of each currency may have
(EUR 2, JPY 0, BHD 3). Money the back office records is held to them."""
MAX_AMOUNT = 10**12
"""Every amount, rate and token amount is below this (a trillion): far above any payment."""


def parse_amount(text: object, *, max_decimals: int | None = None) -> Decimal:
    """An exact, non-negative amount from a decimal string, or ``InvalidAmountError``."""
    if not isinstance(text, str):
        kind = "a float" if isinstance(text, float) else type(text).__name__
        raise InvalidAmountError(f"amounts are decimal strings, not {kind} ({text!r})")
    if not _DECIMAL_TEXT.fullmatch(text):
        raise InvalidAmountError(f"{text!r} is not a plain non-negative decimal amount")
    amount = Decimal(text)
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)  # the pattern admits no NaN or infinity
    decimals = -exponent
    if max_decimals is not None and decimals > max_decimals:
        raise InvalidAmountError(f"{text!r} has {decimals} decimals; at most {max_decimals}")
    return amount


def format_amount(amount: Decimal) -> str:
    """An amount as plain decimal text that ``parse_amount`` reads back to the same value:
    ``str(Decimal)`` switches to exponents (``1E-18``, ``1E+3``), which no amount field takes."""
    return format(amount, "f")


def parse_token_amount(text: object) -> Decimal:
    return parse_amount(text, max_decimals=TOKEN_DECIMALS)


def check_currency(code: object) -> str:
    if not isinstance(code, str) or code not in ISO_4217:
        raise UnknownCurrencyError(f"{code!r} is not an ISO 4217 currency code")
    return code


def check_amount(amount: object) -> Decimal:
    """An amount that is already a Decimal: finite and not negative."""
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount < 0:
        raise InvalidAmountError(f"{amount!r} is not a finite, non-negative Decimal")
    return amount


def currency_amount(amount: object, currency: object, field: str = "amount") -> Decimal:
    """An amount of money the back office gives the ledger, checked by the currency's rules
    and written canonically: a ``Decimal`` (not a float, an int or text), finite, positive,
    below ``MAX_AMOUNT``, with no more places than the currency's minor units, returned with
    exactly that many (``Decimal("100")`` EUR is ``100.00``). ``InvalidAmountError`` or
    ``UnknownCurrencyError`` naming the field otherwise."""
    code = check_currency(currency)
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidAmountError(f"{field}: {amount!r} is not a finite Decimal")
    if amount <= 0 or amount >= MAX_AMOUNT:
        raise InvalidAmountError(f"{field}: {format_amount(amount)} is not above 0 and below "
                                 f"{MAX_AMOUNT:,}")
    places = MINOR_UNITS[code]
    exponent = amount.normalize(EXACT).as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if -exponent > places:
        raise InvalidAmountError(f"{field}: {format_amount(amount)} has more decimal places "
                                 f"than {code} has ({places})")
    return amount.quantize(Decimal(1).scaleb(-places), context=EXACT)


class Money(msgspec.Struct, frozen=True):
    """An exact amount in one currency. Mixing currencies raises; nothing is ever rounded."""

    amount: Decimal
    currency: str

    @classmethod
    def of(cls, amount: str, currency: str) -> Self:
        return cls(parse_amount(amount), check_currency(currency))

    @classmethod
    def zero(cls, currency: str) -> Self:
        return cls(Decimal(0), check_currency(currency))

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatchError(
                f"cannot combine {self.currency} with {other.currency}: no implicit conversion"
            )

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(EXACT.add(self.amount, other.amount), self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(EXACT.subtract(self.amount, other.amount), self.currency)

    def __neg__(self) -> Money:
        return Money(EXACT.minus(self.amount), self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __str__(self) -> str:
        return f"{format_amount(self.amount)} {self.currency}"


class ExactSum:
    """A sum that terms join and leave, equal digit for digit to adding up the terms present
    (from ``Decimal(0)``). A Decimal keeps its trailing zeros, so a running total would print
    ``0.00`` after 0.01 joined and left, where the sum of no terms prints ``0``: the value is
    quantized to the finest exponent among the terms present."""

    __slots__ = ("_exponents", "_total")

    def __init__(self) -> None:
        self._total = Decimal(0)
        self._exponents: Counter[int] = Counter()

    def add(self, amount: Decimal, sign: int = 1) -> None:
        """``amount`` joins the sum (sign 1) or leaves it (sign -1)."""
        self._total = (EXACT.add if sign > 0 else EXACT.subtract)(self._total, amount)
        exponent = amount.as_tuple().exponent
        assert isinstance(exponent, int), "amounts are finite"
        self._exponents[exponent] += sign
        if not self._exponents[exponent]:
            del self._exponents[exponent]

    @property
    def value(self) -> Decimal:
        # The total's exponent is the finest of every term that ever joined; the digits below
        # the finest term present are zeros, so this never raises (``Inexact`` if it did).
        exponent = min(0, min(self._exponents, default=0))
        return self._total.quantize(Decimal(1).scaleb(exponent), context=EXACT)

    def __bool__(self) -> bool:
        """Whether any term is present."""
        return bool(self._exponents)

    def state(self) -> tuple[Decimal, dict[int, int]]:
        """What the sum is made of, to store and ``restored`` from."""
        return self._total, dict(self._exponents)

    @classmethod
    def restored(cls, state: tuple[Decimal, dict[int, int]]) -> ExactSum:
        total = cls()
        total._total, total._exponents = state[0], Counter(state[1])
        return total


def exact_sum(amounts: list[Decimal] | tuple[Decimal, ...]) -> Decimal:
    """Sum of Decimals, raising rather than rounding."""
    total = Decimal(0)
    for amount in amounts:
        total = EXACT.add(total, amount)
    return total
