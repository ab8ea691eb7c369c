"""Tests for the pure-Python matching core (no database, no Django settings)."""

from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matching.engine import BUY, SELL, BookOrder, Fill, OrderBook

D = Decimal


def limit(order_id, side, price, qty, seq):
    return BookOrder(id=order_id, side=side, price=D(price), remaining=qty, sequence=seq)


def market(order_id, side, qty, seq):
    return BookOrder(id=order_id, side=side, price=None, remaining=qty, sequence=seq)


def fill_summary(fills):
    return [(f.resting_id, f.quantity, f.price) for f in fills]


def resting_state(book):
    return sorted((o.id, o.remaining) for o in book.orders())


# --- price priority ---------------------------------------------------------


def test_market_buy_takes_cheapest_sell_first():
    book = OrderBook([limit("s1", SELL, "10.05", 5, 1), limit("s2", SELL, "10.00", 5, 2)])
    fills = book.match(market("b", BUY, 5, 3))
    assert fill_summary(fills) == [("s2", 5, D("10.00"))]
    assert resting_state(book) == [("s1", 5)]


def test_market_sell_takes_highest_bid_first():
    book = OrderBook([limit("b1", BUY, "9.90", 5, 1), limit("b2", BUY, "9.95", 5, 2)])
    fills = book.match(market("s", SELL, 5, 3))
    assert fill_summary(fills) == [("b2", 5, D("9.95"))]


def test_limit_buy_takes_cheapest_crossing_sell_first():
    book = OrderBook([limit("s1", SELL, "10.02", 1, 1), limit("s2", SELL, "10.01", 1, 2)])
    fills = book.match(limit("b", BUY, "10.05", 1, 3))
    assert fill_summary(fills) == [("s2", 1, D("10.01"))]


# --- time priority ----------------------------------------------------------


def test_earlier_sell_fills_first_at_equal_price():
    book = OrderBook()
    book.add(limit("late", SELL, "10.00", 5, 7))
    book.add(limit("early", SELL, "10.00", 5, 3))
    fills = book.match(limit("b", BUY, "10.00", 7, 8))
    assert fill_summary(fills) == [("early", 5, D("10.00")), ("late", 2, D("10.00"))]


def test_earlier_bid_fills_first_at_equal_price():
    book = OrderBook([limit("b2", BUY, "10.00", 5, 2), limit("b1", BUY, "10.00", 5, 1)])
    fills = book.match(market("s", SELL, 5, 3))
    assert fill_summary(fills) == [("b1", 5, D("10.00"))]


def test_price_beats_time():
    book = OrderBook([limit("early", SELL, "10.01", 5, 1), limit("late", SELL, "10.00", 5, 2)])
    fills = book.match(limit("b", BUY, "10.01", 6, 3))
    assert fill_summary(fills) == [("late", 5, D("10.00")), ("early", 1, D("10.01"))]


# --- resting market orders --------------------------------------------------


def test_resting_market_sell_ranks_ahead_of_cheaper_limit_sell():
    book = OrderBook([limit("s_lim", SELL, "9.00", 5, 1), market("s_mkt", SELL, 5, 2)])
    fills = book.match(limit("b", BUY, "10.00", 5, 3))
    assert fill_summary(fills) == [("s_mkt", 5, D("10.00"))]
    assert resting_state(book) == [("s_lim", 5)]


def test_resting_market_buy_ranks_ahead_of_higher_limit_bid():
    book = OrderBook([limit("b_lim", BUY, "11.00", 5, 1), market("b_mkt", BUY, 5, 2)])
    fills = book.match(limit("s", SELL, "10.00", 5, 3))
    assert fill_summary(fills) == [("b_mkt", 5, D("10.00"))]


def test_resting_market_orders_fill_earliest_first():
    book = OrderBook()
    book.add(market("m3", SELL, 1, 30))
    book.add(market("m1", SELL, 1, 10))
    book.add(market("m2", SELL, 1, 20))
    fills = book.match(limit("b", BUY, "10.00", 3, 40))
    assert [f.resting_id for f in fills] == ["m1", "m2", "m3"]


def test_constructor_orders_resting_market_orders_by_sequence():
    book = OrderBook([market("m2", BUY, 1, 2), market("m1", BUY, 1, 1)])
    assert book.best_bid().id == "m1"


# --- trade price ------------------------------------------------------------


def test_trade_price_is_resting_limit_price_for_incoming_buy():
    book = OrderBook([limit("s", SELL, "10.00", 5, 1)])
    fills = book.match(limit("b", BUY, "10.50", 5, 2))
    assert fills == [Fill("b", "s", "b", "s", 5, D("10.00"))]


def test_trade_price_is_resting_limit_price_for_incoming_sell():
    book = OrderBook([limit("b", BUY, "10.50", 5, 1)])
    fills = book.match(limit("s", SELL, "10.00", 5, 2))
    assert fills == [Fill("s", "b", "b", "s", 5, D("10.50"))]


def test_trade_price_is_incoming_limit_when_resting_is_market():
    book = OrderBook([market("m", SELL, 5, 1)])
    fills = book.match(limit("b", BUY, "10.25", 5, 2))
    assert fills == [Fill("b", "m", "b", "m", 5, D("10.25"))]


# --- market vs market -------------------------------------------------------


def test_market_orders_never_cross_each_other():
    book = OrderBook([market("m_sell", SELL, 5, 1)])
    incoming = market("m_buy", BUY, 5, 2)
    assert book.submit(incoming) == []
    assert resting_state(book) == [("m_buy", 5), ("m_sell", 5)]


def test_incoming_market_skips_resting_market_and_takes_limit_behind_it():
    book = OrderBook([market("m_sell", SELL, 5, 1), limit("l_sell", SELL, "10.00", 5, 2)])
    fills = book.match(market("m_buy", BUY, 3, 3))
    assert fill_summary(fills) == [("l_sell", 3, D("10.00"))]
    assert resting_state(book) == [("l_sell", 2), ("m_sell", 5)]


def test_incoming_limit_takes_resting_market_then_crossing_limits():
    book = OrderBook([market("m", SELL, 2, 1), limit("l", SELL, "9.00", 2, 2)])
    fills = book.match(limit("b", BUY, "9.50", 5, 3))
    assert fill_summary(fills) == [("m", 2, D("9.50")), ("l", 2, D("9.00"))]


# --- resting and partial fills ----------------------------------------------


def test_limit_that_does_not_cross_rests():
    book = OrderBook([limit("s", SELL, "10.01", 5, 1)])
    incoming = limit("b", BUY, "10.00", 5, 2)
    assert book.submit(incoming) == []
    assert book.best_bid() is incoming
    assert resting_state(book) == [("b", 5), ("s", 5)]


def test_partial_fill_of_resting_order_keeps_it_first_in_line():
    book = OrderBook([limit("s1", SELL, "10.00", 10, 1), limit("s2", SELL, "10.00", 10, 2)])
    assert fill_summary(book.match(market("b1", BUY, 4, 3))) == [("s1", 4, D("10.00"))]
    assert fill_summary(book.match(market("b2", BUY, 4, 4))) == [("s1", 4, D("10.00"))]
    assert resting_state(book) == [("s1", 2), ("s2", 10)]


def test_partial_fill_of_incoming_rests_the_remainder():
    book = OrderBook([limit("s", SELL, "10.00", 3, 1)])
    incoming = limit("b", BUY, "10.00", 10, 2)
    fills = book.submit(incoming)
    assert fill_summary(fills) == [("s", 3, D("10.00"))]
    assert incoming.remaining == 7
    assert resting_state(book) == [("b", 7)]
    assert book.best_bid() is incoming


def test_fully_filled_resting_order_leaves_the_book():
    resting = limit("s", SELL, "10.00", 5, 1)
    book = OrderBook([resting])
    book.match(market("b", BUY, 5, 2))
    assert resting.remaining == 0
    assert "s" not in book
    assert len(book) == 0
    assert book.best_ask() is None


def test_multi_level_sweep_stops_at_incoming_limit():
    book = OrderBook(
        [
            limit("s1", SELL, "10.00", 2, 1),
            limit("s2", SELL, "10.01", 2, 2),
            limit("s3", SELL, "10.02", 2, 3),
            limit("s4", SELL, "10.03", 2, 4),
        ]
    )
    incoming = limit("b", BUY, "10.02", 10, 5)
    fills = book.submit(incoming)
    assert fill_summary(fills) == [("s1", 2, D("10.00")), ("s2", 2, D("10.01")), ("s3", 2, D("10.02"))]
    assert incoming.remaining == 4
    assert resting_state(book) == [("b", 4), ("s4", 2)]
    assert book.best_bid().price < book.best_ask().price


def test_market_sweep_empties_side_and_match_does_not_rest_remainder():
    book = OrderBook([limit("b1", BUY, "10.00", 2, 1), limit("b2", BUY, "9.00", 2, 2)])
    incoming = market("s", SELL, 10, 3)
    fills = book.match(incoming)
    assert fill_summary(fills) == [("b1", 2, D("10.00")), ("b2", 2, D("9.00"))]
    assert incoming.remaining == 6
    assert len(book) == 0
    assert "s" not in book


def test_submit_rests_market_remainder():
    book = OrderBook()
    incoming = market("s", SELL, 10, 1)
    assert book.submit(incoming) == []
    assert book.best_ask() is incoming


def test_fill_reports_buy_and_sell_ids_for_incoming_sell():
    book = OrderBook([limit("b", BUY, "10.00", 1, 1)])
    (fill,) = book.match(limit("s", SELL, "10.00", 1, 2))
    assert (fill.incoming_id, fill.resting_id, fill.buy_id, fill.sell_id) == ("s", "b", "b", "s")


# --- remove / queries -------------------------------------------------------


def test_remove_takes_order_out_of_matching():
    book = OrderBook([limit("s1", SELL, "10.00", 5, 1), limit("s2", SELL, "10.01", 5, 2)])
    book.remove("s1")
    assert "s1" not in book
    assert book.best_ask().id == "s2"
    assert fill_summary(book.match(market("b", BUY, 5, 3))) == [("s2", 5, D("10.01"))]


def test_remove_market_order_takes_it_out_of_matching():
    book = OrderBook([market("m", SELL, 5, 1), limit("l", SELL, "10.00", 5, 2)])
    book.remove("m")
    assert fill_summary(book.match(limit("b", BUY, "10.00", 5, 3))) == [("l", 5, D("10.00"))]


def test_remove_absent_order_is_a_noop():
    book = OrderBook([limit("s", SELL, "10.00", 5, 1)])
    book.remove("nope")
    book.remove("s")
    book.remove("s")
    assert len(book) == 0


def test_removed_then_readded_order_is_matched_once_at_new_priority():
    order = limit("s1", SELL, "10.00", 5, 1)
    book = OrderBook([order, limit("s2", SELL, "10.00", 5, 2)])
    book.remove("s1")
    order.sequence = 3
    book.add(order)
    fills = book.match(limit("b", BUY, "10.00", 20, 4))
    assert fill_summary(fills) == [("s2", 5, D("10.00")), ("s1", 5, D("10.00"))]
    assert len(book) == 0


def test_best_bid_and_ask_prefer_market_orders():
    book = OrderBook(
        [
            limit("b", BUY, "9.00", 1, 1),
            market("bm", BUY, 1, 5),
            limit("s", SELL, "11.00", 1, 2),
        ]
    )
    assert book.best_bid().id == "bm"
    assert book.best_ask().id == "s"
    assert OrderBook().best_bid() is None


def test_len_contains_and_orders_agree():
    book = OrderBook([limit("b", BUY, "9.00", 1, 1), market("s", SELL, 2, 2)])
    assert len(book) == 2
    assert "b" in book and "s" in book and "x" not in book
    assert {o.id for o in book.orders()} == {"b", "s"}


def test_many_cancels_keep_book_consistent():
    # Enough cancels to trigger the internal compaction of lazily deleted entries.
    book = OrderBook()
    for i in range(300):
        book.add(limit(f"s{i}", SELL, f"{10 + i % 7}.00", 1, i))
        book.add(market(f"m{i}", SELL, 1, i))
    for i in range(300):
        if i % 10:
            book.remove(f"s{i}")
            book.remove(f"m{i}")
    assert len(book) == 60
    fills = book.match(limit("b", BUY, "100.00", 1000, 1000))
    market_ids = [f.resting_id for f in fills if f.resting_id.startswith("m")]
    limit_fills = [(f.price, int(f.resting_id[1:])) for f in fills if f.resting_id.startswith("s")]
    assert market_ids == [f"m{i}" for i in range(0, 300, 10)]
    assert [f.resting_id for f in fills[:30]] == market_ids
    assert limit_fills == sorted(limit_fills)
    assert len(limit_fills) == 30


# --- validation -------------------------------------------------------------


@pytest.mark.parametrize("remaining", [0, -1])
def test_match_rejects_non_positive_remaining(remaining):
    with pytest.raises(ValueError):
        OrderBook().match(limit("b", BUY, "10.00", remaining, 1))


def test_match_rejects_invalid_side():
    with pytest.raises(ValueError):
        OrderBook().match(limit("b", "hold", "10.00", 1, 1))


def test_match_rejects_order_already_resting():
    order = limit("b", BUY, "10.00", 1, 1)
    book = OrderBook([order])
    with pytest.raises(ValueError):
        book.match(replace(order))


def test_add_rejects_duplicate_id_and_bad_orders():
    book = OrderBook([limit("b", BUY, "10.00", 1, 1)])
    with pytest.raises(ValueError):
        book.add(limit("b", BUY, "9.00", 1, 2))
    with pytest.raises(ValueError):
        book.add(limit("c", BUY, "9.00", 0, 2))
    with pytest.raises(ValueError):
        book.add(limit("c", BUY, "NaN", 1, 2))
    with pytest.raises(TypeError):
        book.add(BookOrder(id="c", side=BUY, price=9.5, remaining=1, sequence=2))
    assert resting_state(book) == [("b", 1)]


# --- property tests ---------------------------------------------------------


def _crosses(incoming, resting):
    if incoming.price is None or resting.price is None:
        return not (incoming.price is None and resting.price is None)
    buy, sell = (incoming, resting) if incoming.side == BUY else (resting, incoming)
    return buy.price >= sell.price


def _reference_priority(order):
    if order.price is None:
        return (0, D(0), order.sequence)
    return (1, -order.price if order.side == BUY else order.price, order.sequence)


class ReferenceBook:
    """Brute force: re-sort the whole opposite side before every single fill."""

    def __init__(self):
        self.resting = []  # kept in arrival order, so min() breaks full ties by arrival

    def submit(self, incoming):
        fills = []
        while incoming.remaining > 0:
            candidates = [o for o in self.resting if o.side != incoming.side and _crosses(incoming, o)]
            if not candidates:
                break
            resting = min(candidates, key=_reference_priority)
            qty = min(incoming.remaining, resting.remaining)
            incoming.remaining -= qty
            resting.remaining -= qty
            is_buy = incoming.side == BUY
            fills.append(
                Fill(
                    incoming_id=incoming.id,
                    resting_id=resting.id,
                    buy_id=incoming.id if is_buy else resting.id,
                    sell_id=resting.id if is_buy else incoming.id,
                    quantity=qty,
                    price=resting.price if resting.price is not None else incoming.price,
                )
            )
            if resting.remaining == 0:
                self.resting.remove(resting)
        if incoming.remaining > 0:
            self.resting.append(incoming)
        return fills

    def remove(self, order_id):
        self.resting = [o for o in self.resting if o.id != order_id]


submit_ops = st.tuples(
    st.just("submit"),
    st.sampled_from([BUY, SELL]),
    # One in four orders is a market order; limits sit on a narrow 2-decimal grid
    # so prices collide often and time priority gets exercised.
    st.one_of(st.none(), st.integers(995, 1005), st.integers(995, 1005), st.integers(995, 1005)),
    st.integers(1, 10),
)
cancel_ops = st.tuples(st.just("cancel"), st.integers(0, 1000))
op_lists = st.lists(st.one_of(submit_ops, submit_ops, submit_ops, cancel_ops), max_size=60)

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_ops(ops, book, check=None):
    """Apply ops to the book; returns every submitted order, original quantities and all fills."""
    submitted = []
    original = {}
    fills = []
    for seq, op in enumerate(ops):
        if op[0] == "cancel":
            if submitted:
                book.remove(submitted[op[1] % len(submitted)].id)
            step_fills = []
        else:
            _, side, cents, qty = op
            order = BookOrder(
                id=f"o{seq}",
                side=side,
                price=None if cents is None else D(cents).scaleb(-2),
                remaining=qty,
                sequence=seq,
            )
            submitted.append(order)
            original[order.id] = qty
            step_fills = book.submit(order)
            fills.extend(step_fills)
        if check is not None:
            check(op, step_fills)
    return submitted, original, fills


@PROPERTY_SETTINGS
@given(op_lists)
def test_property_no_overfill_and_quantities_conserved(ops):
    submitted, original, fills = run_ops(ops, OrderBook())
    filled = dict.fromkeys(original, 0)
    for f in fills:
        assert f.quantity > 0
        filled[f.buy_id] += f.quantity
        filled[f.sell_id] += f.quantity
    for order in submitted:
        assert filled[order.id] <= original[order.id]
        assert filled[order.id] + order.remaining == original[order.id]


@PROPERTY_SETTINGS
@given(op_lists)
def test_property_book_is_never_left_crossed(ops):
    book = OrderBook()

    def check(_op, _fills):
        resting = book.orders()
        bid_limits = [o.price for o in resting if o.side == BUY and o.price is not None]
        ask_limits = [o.price for o in resting if o.side == SELL and o.price is not None]
        market_bids = [o for o in resting if o.side == BUY and o.price is None]
        market_asks = [o for o in resting if o.side == SELL and o.price is None]
        if bid_limits and ask_limits:
            assert max(bid_limits) < min(ask_limits)
        # A market order crosses every opposite limit whichever of the two
        # arrived first, so they can never rest together. Market orders on
        # both sides can, since market vs market never trades.
        assert not (market_bids and ask_limits)
        assert not (market_asks and bid_limits)

        assert len(book) == len(resting)
        best_bid, best_ask = book.best_bid(), book.best_ask()
        bids = sorted((o for o in resting if o.side == BUY), key=_reference_priority)
        asks = sorted((o for o in resting if o.side == SELL), key=_reference_priority)
        assert best_bid is (bids[0] if bids else None)
        assert best_ask is (asks[0] if asks else None)

    run_ops(ops, book, check)


@PROPERTY_SETTINGS
@given(op_lists)
def test_property_fill_prices_within_both_limits(ops):
    submitted, _, fills = run_ops(ops, OrderBook())
    by_id = {o.id: o for o in submitted}
    for f in fills:
        buy, sell = by_id[f.buy_id], by_id[f.sell_id]
        assert buy.side == BUY and sell.side == SELL
        assert buy.price is not None or sell.price is not None
        if buy.price is not None:
            assert buy.price >= f.price
        if sell.price is not None:
            assert f.price >= sell.price
        resting = by_id[f.resting_id]
        expected = resting.price if resting.price is not None else by_id[f.incoming_id].price
        assert f.price == expected


@PROPERTY_SETTINGS
@given(op_lists)
def test_property_fills_match_brute_force_price_time_reference(ops):
    engine_book, ref_book = OrderBook(), ReferenceBook()

    class Mirror:
        """Applies each op to both books (the reference gets its own copy of each order)."""

        def submit(self, order):
            ref_fills = ref_book.submit(replace(order))
            engine_fills = engine_book.submit(order)
            assert engine_fills == ref_fills
            return engine_fills

        def remove(self, order_id):
            engine_book.remove(order_id)
            ref_book.remove(order_id)

    def check(_op, _fills):
        assert resting_state(engine_book) == sorted((o.id, o.remaining) for o in ref_book.resting)

    run_ops(ops, Mirror(), check)


def test_long_random_run_matches_reference_with_heavy_cancelling():
    # Longer than the hypothesis runs so lazily deleted entries pile up and get compacted.
    rng = random.Random(20240501)
    engine_book, ref_book = OrderBook(), ReferenceBook()
    live_ids = []
    for seq in range(4000):
        if live_ids and rng.random() < 0.45:
            order_id = live_ids.pop(rng.randrange(len(live_ids)))
            engine_book.remove(order_id)
            ref_book.remove(order_id)
            continue
        price = None if rng.random() < 0.1 else D(rng.randint(990, 1010)).scaleb(-2)
        order = BookOrder(f"o{seq}", rng.choice([BUY, SELL]), price, rng.randint(1, 20), seq)
        ref_fills = ref_book.submit(replace(order))  # copy before the engine mutates it
        assert engine_book.submit(order) == ref_fills
        if order.remaining:
            live_ids.append(order.id)
        live_ids = [i for i in live_ids if i in engine_book]
        assert len(engine_book) == len(ref_book.resting)
    assert resting_state(engine_book) == sorted((o.id, o.remaining) for o in ref_book.resting)
