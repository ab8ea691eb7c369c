"""The venue's simulated market: instruments, prices within limits, lots that add up."""

import random
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from exchange.venue.market import available_now, fill_price, is_valid_isin, plan_lots, reference_price


def test_isin_check_digit():
    for isin in ("US0378331005", "US5949181045", "DE0007164600", "GB0002634946"):
        assert is_valid_isin(isin), isin
    for bad in ("US0378331006", "us0378331005", "US037833100", "XX", "", "US03783310055"):
        assert not is_valid_isin(bad), bad


@given(quantity=st.integers(1, 10**9), max_fills=st.integers(1, 10), seed=st.integers(0, 2**32))
def test_lots_are_positive_at_most_max_fills_and_sum_to_the_quantity(quantity, max_fills, seed):
    lots = plan_lots(quantity, max_fills, random.Random(seed))
    assert 1 <= len(lots) <= max_fills
    assert all(lot > 0 for lot in lots)
    assert sum(lots) == quantity


@given(
    limit=st.decimals(min_value="0.01", max_value="500", places=2),
    side=st.sampled_from(["buy", "sell"]),
    seed=st.integers(0, 2**32),
)
def test_fill_price_never_beyond_the_limit(limit, side, seed):
    price = fill_price("US0378331005", side, limit, random.Random(seed))
    assert price <= limit if side == "buy" else price >= limit
    assert price == price.quantize(Decimal("0.01")) and price > 0


def test_market_price_stays_near_the_instrument_reference():
    reference = reference_price("US0378331005")
    assert Decimal("10") <= reference < Decimal("100")
    rng = random.Random(1)
    for _ in range(100):
        assert abs(fill_price("US0378331005", "buy", None, rng) - reference) <= reference * Decimal("0.006")


def test_liquidity_at_once_is_between_one_and_twice_the_quantity():
    rng = random.Random(2)
    offers = [available_now(50, rng) for _ in range(500)]
    assert min(offers) >= 1 and max(offers) <= 100
    assert any(offer >= 50 for offer in offers) and any(offer < 50 for offer in offers)
