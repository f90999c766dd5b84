"""Printed numbers (report/numbers.py): exact decimal rounding that a last bit cannot move."""

from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from report.numbers import canonical, fixed, percent, significant


def exact(fraction: Fraction, places: int) -> str:
    """``fraction`` rounded to ``places`` decimals in exact rational arithmetic, ties to even."""
    value = Decimal(fraction.numerator) / Decimal(fraction.denominator)
    return f"{value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN):f}"


def neighbours(x: float) -> list[float]:
    return [x, float(np.nextafter(x, -np.inf)), float(np.nextafter(x, np.inf))]


@given(st.integers(0, 20_000), st.integers(1, 20_000))
def test_means_of_counts_print_their_exact_decimal_whatever_the_last_bit(correct, n):
    """A mean accuracy is correct / n; any float within an ulp of it prints the exact rounding
    of the fraction (ties, such as 16935/20000 = 0.84675, to even)."""
    truth = Fraction(correct, n)
    for x in neighbours(correct / n):
        assert fixed(x, 4) == exact(truth, 4)


@pytest.mark.parametrize(
    ("value", "places", "sign", "text"),
    [
        (0.84675, 4, False, "0.8468"),  # binary: 0.846749999..., "%.4f" prints 0.8467
        (0.84665, 4, False, "0.8466"),  # a tie to even
        (-0.00004, 4, False, "0.0000"),  # zero has no sign: a last bit may set it
        (0.0046, 2, True, "+0.00"),
        (-0.0046, 2, True, "+0.00"),
        (-0.0051, 2, True, "-0.01"),
        (12.5, 0, False, "12"),
        (float("inf"), 2, False, "inf"),
        (float("-inf"), 2, True, "-inf"),
    ],
)
def test_fixed(value, places, sign, text):
    assert fixed(value, places, sign) == text


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [(0.84675, 4, "0.8468"), (123456.0, 4, "1.235e+05"), (0.00012345, 3, "0.000123"),
     (2.5e-05, 1, "2e-05"), (9.9995, 4, "10"), (0.0, 4, "0"), (-1.5, 1, "-2"),
     (-5e-324, 4, "0"), (1e-12, 3, "0"), (float("inf"), 4, "inf")],
)  # fmt: skip
def test_significant(value, digits, text):
    assert significant(value, digits) == text


@given(st.floats(1e-6, 1e9), st.booleans(), st.integers(1, 6))
def test_significant_agrees_with_python_away_from_ties(x, negative, digits):
    """Where no tie is within reach of the last bits, exact rounding is Python's."""
    x = -x if negative else x
    python = f"{x:.{digits}g}"
    if all(f"{y:.{digits}g}" == python for y in neighbours(x)):
        assert significant(x, digits) == python


def test_percent():
    assert percent(0.363) == "36%"
    assert percent(0.125, 1) == "12.5%"
    assert percent(0.00125, 1) == "0.1%"  # 0.125 to even


def test_canonical_floats_are_one_float_for_a_last_bit_and_zero_has_no_sign():
    for truth in (0.84675, 1 / 3, 1234.5, 0.0175517551755, 0.0):
        assert len({canonical(x) for x in neighbours(truth)}) == 1
    assert str(canonical(-5e-324)) == "0.0"
    assert canonical(float("inf")) == float("inf")
    assert canonical(1e-12) == 0.0  # below PLACES: written as 0
