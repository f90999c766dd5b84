"""Numbers as the report prints them: the same text from the same records on any machine.

Another CPU or library build can sum in another order and move a statistic by its last bit
(1e-16 near 1; a sum that cancels may end at 1e-17 instead of 0), and many means here are
multiples of 1/20,000 that sit exactly on a rounding tie in decimal (0.84675), so binary
rounding of the computed float prints 0.8467 on one machine and 0.8468 on another. Every
number the report prints or writes therefore goes through ``decimal``: rounded exactly to
``PLACES`` decimals, which absorbs last-bit noise in values up to ~1e5 (steps, seconds) and
leaves no sign on zero, then, for print, rounded exactly in decimal again, ties to even.
Values below 5e-11 in size (only p-values get there) print and are written as 0.
"""

import math
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

PLACES = 10  # decimals kept of a computed statistic (the CSV tables' precision)
DIGITS = 400  # decimal precision: any float's integer digits and PLACES decimals


def decimal(value: float) -> Decimal:
    """A finite ``value`` rounded exactly to ``PLACES`` decimals; zero without a sign."""
    rounded = _round(Decimal(float(value)), PLACES)
    return rounded.copy_abs() if rounded.is_zero() else rounded


def _round(value: Decimal, places: int) -> Decimal:
    """``value`` to ``places`` decimals (negative: tens, hundreds, ...), ties to even."""
    with localcontext(prec=DIGITS):
        return value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)


def canonical(value: float) -> float:
    """``value`` as the float of ``decimal(value)``: the same float wherever the last bits
    differ, written as its shortest repr (the CSV tables); non-finite values unchanged."""
    return float(decimal(value)) if math.isfinite(value) else float(value)


def fixed(value: float, places: int, sign: bool = False) -> str:
    """``value`` with ``places`` decimals, exact decimal rounding: 0.84675 -> "0.8468"; zero
    without a minus; ``sign`` prints "+" before the others. Non-finite values as Python prints
    them."""
    if not math.isfinite(value):
        return f"{value:+}" if sign else str(float(value))
    rounded = _round(decimal(value), places)
    text = f"{rounded.copy_abs() if rounded.is_zero() else rounded:f}"
    return f"+{text}" if sign and not text.startswith("-") else text


def significant(value: float, digits: int) -> str:
    """``value`` with ``digits`` significant digits, exact decimal rounding, as ``:.{digits}g``
    prints it (scientific below 1e-4 and from 10**digits)."""
    if not math.isfinite(value):
        return f"{value:.{digits}g}"
    exact = decimal(value)
    if exact.is_zero():
        return "0"
    places = digits - 1 - exact.adjusted()  # adjusted(): the exponent of the first digit
    rounded = _round(exact, places)
    return f"{float(rounded):.{digits}g}"  # float(rounded) prints exactly as rounded


def percent(probability: float, places: int = 0) -> str:
    """A probability as a percentage: 0.363 -> "36%"."""
    return f"{fixed(100 * probability, places)}%"
