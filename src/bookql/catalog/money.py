"""Money is stored exactly, as integer pence, and shown as GBP with two decimals."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_PENNY = Decimal("0.01")


def to_pence(amount: float | str | Decimal) -> int:
    """Exact pence for an amount in pounds (``51.77`` -> ``5177``); rejects fractions of a penny."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise ValueError(f"not an amount of money: {amount!r}") from None
    if not value.is_finite():
        raise ValueError(f"not an amount of money: {amount!r}")
    try:
        to_the_penny = value.quantize(_PENNY, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than the decimal context holds
        raise ValueError(f"{amount!r} is too large") from None
    if to_the_penny != value:
        raise ValueError(f"{amount!r} has fractions of a penny")
    return int(value * 100)


def from_pence(pence: int) -> float:
    """Pounds as a float with two decimals, for the API (``5177`` -> ``51.77``)."""
    return float(Decimal(pence) / 100)
