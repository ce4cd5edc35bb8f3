"""Exact money: parsing, currencies, arithmetic that never rounds and never mixes currencies."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ledger.errors import CurrencyMismatchError, InvalidAmountError, UnknownCurrencyError
from ledger.money import (
    ExactSum,
    Money,
    check_currency,
    exact_sum,
    parse_amount,
    parse_token_amount,
)
from ledger.testing import amounts, written


@pytest.mark.parametrize(("text", "expected"), [
    ("10.0", Decimal("10.0")), ("20", Decimal(20)), ("0", Decimal(0)),
    ("0.000000000000000001", Decimal("1E-18")), ("123456789.123456789012345678",
                                                  Decimal("123456789.123456789012345678")),
])
def test_amounts_parse_exactly_from_decimal_strings(text: str, expected: Decimal) -> None:
    amount = parse_amount(text)
    assert amount == expected
    assert str(amount) == text or text == "0.000000000000000001"


@pytest.mark.parametrize("bad", [10.5, 10, None, "1e5", "NaN", "Infinity", "-1", "+1", " 1",
                                 "1,5", "01", "1.", ".5", "", "0x10", "1_000"])
def test_anything_but_a_plain_decimal_string_is_refused(bad: object) -> None:
    with pytest.raises(InvalidAmountError):
        parse_amount(bad)


def test_token_amounts_keep_at_most_18_decimals() -> None:
    assert parse_token_amount("0.000000000000000001") == Decimal("1E-18")
    with pytest.raises(InvalidAmountError, match="19 decimals"):
        parse_token_amount("0.0000000000000000001")


def test_amounts_have_at_most_30_integer_digits() -> None:
    assert parse_amount("9" * 30) == Decimal("9" * 30)
    with pytest.raises(InvalidAmountError):
        parse_amount("1" + "0" * 30)


def test_currencies_are_iso_4217() -> None:
    assert check_currency("EUR") == "EUR"
    for bad in ("eur", "EURO", "XXX", "BTC", 978):
        with pytest.raises(UnknownCurrencyError):
            check_currency(bad)


def test_currencies_never_mix() -> None:
    eur, usd = Money.of("10.00", "EUR"), Money.of("1", "USD")
    assert eur + Money.of("0.01", "EUR") == Money.of("10.01", "EUR")
    for combine in (lambda: eur + usd, lambda: eur - usd, lambda: eur < usd):
        with pytest.raises(CurrencyMismatchError):
            combine()


# The largest amount with 30 integer digits and 18 decimals, written out: computing it as
# 1e30 - 1e-18 would round at Decimal's default precision, the very thing money.py forbids.
LARGEST = Decimal("9" * 30 + "." + "9" * 18)
token_amounts = st.decimals(min_value=0, max_value=LARGEST, places=18,
                            allow_nan=False, allow_infinity=False)


@given(st.lists(token_amounts, min_size=1, max_size=20))
def test_sums_are_exact_whatever_the_amounts(values: list[Decimal]) -> None:
    total = exact_sum(values)
    # Subtracting every term back gives exactly zero: nothing was rounded on the way.
    for value in values:
        total = Money(total, "EUR").__sub__(Money(value, "EUR")).amount
    assert total == 0


@given(token_amounts)
def test_a_parsed_amount_prints_back_to_its_text(value: Decimal) -> None:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".") or "0"
    assert parse_token_amount(text) == value


# A sum's terms: amounts of every form (whole, one place, two, up to 18; "10" next to "10.00").
terms = st.one_of(amounts("0.01", "500"), amounts("1", "9" * 30, places=18))


# The case: two whole terms present, a two-place term joined and left. Quantizing
# 300.00 to 300 discards two zero digits; Decimal signals Rounded for that, nothing inexact.
@example(steps=[(Decimal(100), None), (Decimal(200), None), (Decimal("0.50"), None),
                (None, 2)])
@given(st.lists(st.tuples(st.none() | terms, st.none() | st.integers(0, 20)), max_size=30))
def test_a_sum_that_terms_join_and_leave_equals_adding_up_the_terms_present(
        steps: list[tuple[Decimal | None, int | None]]) -> None:
    """Digit for digit: the same value and the same exponent as the sum from scratch."""
    total, present = ExactSum(), []
    for joining, leaving in steps:
        if joining is not None:
            total.add(joining)
            present.append(joining)
        elif leaving is not None and present:
            total.add(present.pop(leaving % len(present)), -1)
        expected = exact_sum(present)
        assert total.value.as_tuple() == expected.as_tuple()
        assert ExactSum.restored(total.state()).value.as_tuple() == expected.as_tuple()
        assert bool(total) == bool(present)


@given(st.decimals(0, 1000, places=2), st.integers(0, 18))
def test_an_amount_rewritten_with_other_trailing_zeros_keeps_its_value(
        value: Decimal, places: int) -> None:
    again = written(value, places)
    assert again == value
    exponent = again.as_tuple().exponent
    assert isinstance(exponent, int) and -exponent >= places
