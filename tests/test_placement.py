"""Placing remainders at the exchange: claim, call, record, retry, give up (SPEC §6)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import OperationalError
from django.utils import timezone

import orders.placement
import orders.transitions
from exchange.gateway import OrderPlacementError, OrderRejectedError, SimulatedExchange
from exchange.models import ExchangeOrder
from matching.services import instrument_match_pending
from orders.models import Order, PlacementAttempt
from orders.placement import (
    DEADLINE_REASON,
    Outcome,
    placement_claim,
    placement_record,
    placement_run,
    placement_status_check_plans,
)
from orders.plans import RoutePlan
from tests.factories import OrderFactory
from tests.pipeline_helpers import ScriptedExchange, assert_invariants

pytestmark = pytest.mark.django_db

ISIN = "US0378331005"


def _resting(quantity=100, **kwargs):
    """An order that went through its matching pass and is due at the exchange."""
    order = OrderFactory(quantity=quantity, **kwargs)
    instrument_match_pending(isin=order.instrument)
    order.refresh_from_db()
    return order


def _plan(order, **kwargs):
    return RoutePlan(order_id=order.pk, instrument=order.instrument, route_at=timezone.now(), **kwargs)


def test_accepted_remainder_makes_the_order_submitted():
    order = _resting(100)

    assert placement_run(plan=_plan(order), exchange=ScriptedExchange()) == []

    order.refresh_from_db()
    assert (order.status, order.placed_quantity, order.remaining_quantity) == (Order.Status.SUBMITTED, 100, 0)
    assert not order.in_flight
    assert ExchangeOrder.objects.get().quantity == 100
    attempt = PlacementAttempt.objects.get()
    assert (attempt.number, attempt.outcome, attempt.quantity) == (1, "accepted", 100)
    assert_invariants()


def test_partly_matched_order_places_only_its_remainder():
    sell = _resting(100, side="sell", limit_price=Decimal("10.00"))
    OrderFactory(side="buy", quantity=30, limit_price=Decimal("10.00"))
    instrument_match_pending(isin=ISIN)

    placement_run(plan=_plan(sell), exchange=ScriptedExchange())

    sell.refresh_from_db()
    assert (sell.status, sell.matched_quantity, sell.placed_quantity) == (Order.Status.SUBMITTED, 30, 70)
    assert ExchangeOrder.objects.get(order_id=sell.pk).quantity == 70
    assert_invariants()


def test_exchange_acknowledges_a_repeated_placement_without_placing_again():
    order = _resting(100)
    exchange = SimulatedExchange(latency=0, failure_rate=0)

    first = exchange.place_order(order)
    second = exchange.place_order(order)

    assert (first.duplicate, second.duplicate) == (False, True)
    assert ExchangeOrder.objects.filter(order_id=order.pk).count() == 1


def test_transient_failure_puts_the_order_back_in_the_book_until_its_retry():
    order = _resting(100)
    before = timezone.now()

    follow_up = placement_run(plan=_plan(order), exchange=ScriptedExchange(failures=1))

    order.refresh_from_db()
    assert order.status == Order.Status.OPEN
    assert not order.in_flight and not order.needs_match  # re-matched already
    assert order.route_at > before
    assert "Connection not available" in order.last_error
    assert [plan.order_id for plan in follow_up] == [order.pk]
    assert PlacementAttempt.objects.get().outcome == "failed"
    assert not ExchangeOrder.objects.exists()
    assert_invariants()


def test_retry_after_failure_places_the_order():
    order = _resting(100)
    exchange = ScriptedExchange(failures=2)
    plans = [_plan(order)]
    for _ in range(3):
        placement_run(plan=plans[0], exchange=exchange)
        order.refresh_from_db()
        order.route_at = timezone.now()  # skip the backoff wait
        order.save_changes("route_at")

    assert order.status == Order.Status.SUBMITTED
    assert order.placement_attempts == 3
    assert list(PlacementAttempt.objects.values_list("outcome", flat=True)) == [
        "failed",
        "failed",
        "accepted",
    ]
    assert_invariants()


def test_order_back_in_the_book_crosses_what_arrived_while_it_was_in_flight():
    order = _resting(100, side="buy", limit_price=Decimal("10.00"))
    (claim,), _ = placement_claim(plans=[_plan(order)])
    sell = OrderFactory(side="sell", quantity=40, limit_price=Decimal("9.00"))
    instrument_match_pending(isin=ISIN)  # the buy is in flight: the sell rests
    sell.refresh_from_db()
    assert sell.status == Order.Status.OPEN

    retry = placement_record([Outcome(claim=claim, error="Connection not available")])

    order.refresh_from_db()
    sell.refresh_from_db()
    assert [plan.order_id for plan in retry] == [order.pk]
    assert (order.status, order.matched_quantity, order.remaining_quantity) == (Order.Status.PARTIAL, 40, 60)
    assert sell.status == Order.Status.MATCHED
    assert_invariants()


def test_failure_after_the_deadline_fails_the_order_with_a_reason(settings):
    settings.EXCHANGE_PLACEMENT_DEADLINE = 60
    order = _resting(100)
    order.first_attempt_at = timezone.now() - timedelta(seconds=61)
    order.save_changes("first_attempt_at")

    placement_run(plan=_plan(order), exchange=ScriptedExchange(failures=1))

    order.refresh_from_db()
    assert order.status == Order.Status.FAILED
    assert order.remaining_quantity == 0
    assert order.failure_reason.startswith(DEADLINE_REASON.split("{")[0])
    assert "Connection not available" in order.failure_reason
    assert_invariants()


def test_permanent_rejection_fails_the_order_at_once():
    order = _resting(100)

    placement_run(plan=_plan(order), exchange=ScriptedExchange(failures=1, error=OrderRejectedError))

    order.refresh_from_db()
    assert order.status == Order.Status.FAILED
    assert order.failure_reason.startswith("Rejected by the exchange")
    assert PlacementAttempt.objects.get().outcome == "rejected"


def test_order_not_due_yet_is_rescheduled_for_its_route_time(settings):
    settings.MATCHING_WINDOW = 30
    order = _resting(100)

    (later,) = placement_run(plan=_plan(order), exchange=ScriptedExchange())

    assert later.route_at == order.route_at
    order.refresh_from_db()
    assert not order.in_flight and order.placement_attempts == 0


@pytest.mark.parametrize(
    "change",
    [
        {"status": Order.Status.CANCELLED, "remaining_quantity": 0},
        {"in_flight": True},
        {"needs_match": True},
    ],
)
def test_nothing_is_placed_for_orders_out_of_the_book(change):
    order = _resting(100)
    for name, value in change.items():
        setattr(order, name, value)
    order.save_changes(*change)
    exchange = ScriptedExchange()

    assert placement_run(plan=_plan(order), exchange=exchange) == []
    assert exchange.calls == 0


def test_one_claim_takes_every_due_order_of_a_batch_and_skips_the_rest():
    due = [_resting(10, instrument=isin) for isin in ("US0378331005", "DE000BAY0017", "GB0002634946")]
    matched_away = _resting(10, instrument="NL0000235190", side="sell")
    OrderFactory(instrument="NL0000235190", side="buy", quantity=10)
    instrument_match_pending(isin="NL0000235190")

    claims, later = placement_claim(plans=[_plan(order) for order in (*due, matched_away)])

    assert sorted(claim.order.pk for claim in claims) == sorted(order.pk for order in due)
    assert later == []
    assert PlacementAttempt.objects.count() == 3
    assert Order.objects.filter(in_flight=True).count() == 3


def test_exchange_outage_file_fails_every_call_until_removed(tmp_path):
    outage = tmp_path / "exchange-outage"
    exchange = SimulatedExchange(latency=0, failure_rate=0, outage_file=str(outage))
    order = _resting(10)
    outage.touch()

    with pytest.raises(OrderPlacementError, match="Connection not available"):
        exchange.place_order(order)

    outage.unlink()
    assert exchange.place_order(order).quantity == 10


@pytest.mark.django_db(transaction=True)
def test_a_claim_whose_attempt_rows_lose_a_deadlock_is_retried_whole(monkeypatch):
    order = _resting(10)
    real_insert_rows = orders.placement.insert_rows
    failures = [OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")]

    def insert_rows_deadlocked_once(objs, fields=None):
        if failures:
            raise failures.pop()
        real_insert_rows(objs, fields)

    monkeypatch.setattr(orders.placement, "insert_rows", insert_rows_deadlocked_once)

    claims, later = placement_claim(plans=[_plan(order)])

    # The victim's claim rolled back with it; the retry claimed the order afresh.
    assert [(claim.order.pk, claim.attempt) for claim in claims] == [(order.pk, 1)]
    assert later == []
    order.refresh_from_db()
    assert (order.in_flight, order.placement_attempts) == (True, 1)
    assert list(PlacementAttempt.objects.values_list("order_id", "number")) == [(order.pk, 1)]


@pytest.mark.django_db(transaction=True)
def test_outcomes_whose_recording_loses_a_deadlock_are_recorded_again_whole(monkeypatch):
    first, second = _resting(10), _resting(10, instrument="US5949181045")
    claims, _ = placement_claim(plans=[_plan(first), _plan(second)])
    real_return_to_book = orders.transitions.order_return_to_book
    failures = [OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")]
    calls = []

    def return_to_book_deadlocked_on_the_second(order_id, *args, **kwargs):
        calls.append(order_id)
        if len(calls) == 2 and failures:
            raise failures.pop()
        return real_return_to_book(order_id, *args, **kwargs)

    monkeypatch.setattr(orders.transitions, "order_return_to_book", return_to_book_deadlocked_on_the_second)
    real_match_pending, rematched = orders.placement.instrument_match_pending, []

    def match_pending_noted(*, isin):
        rematched.append(isin)
        return real_match_pending(isin=isin)

    monkeypatch.setattr(orders.placement, "instrument_match_pending", match_pending_noted)

    follow_up = placement_record([Outcome(claim=claim, error="Exchange busy") for claim in claims])

    # The first refusal rolled back with the victim; the retry recorded both, and asked for both re-matches.
    assert sorted(rematched) == sorted([first.instrument, second.instrument])
    assert {plan.order_id for plan in follow_up} == {first.pk, second.pk}
    for order in (first, second):
        order.refresh_from_db()
        assert (order.in_flight, order.needs_match, order.placement_attempts) == (False, False, 1)
    assert sorted(PlacementAttempt.objects.values_list("outcome", flat=True)) == ["failed", "failed"]


@pytest.mark.django_db(transaction=True)
def test_an_error_partway_through_recording_writes_nothing_and_every_order_stays_in_flight(monkeypatch):
    accepted, refused = _resting(10), _resting(10, instrument="US5949181045")
    claims = {claim.order.pk: claim for claim in placement_claim(plans=[_plan(accepted), _plan(refused)])[0]}

    def return_to_book_broken(*args, **kwargs):
        raise ValueError("bug while recording")

    monkeypatch.setattr(orders.transitions, "order_return_to_book", return_to_book_broken)
    outcomes = [
        Outcome(claim=claims[accepted.pk], accepted_quantity=10),
        Outcome(claim=claims[refused.pk], error="Exchange busy"),
    ]

    with pytest.raises(ValueError):
        placement_record(outcomes)

    # The acceptance recorded before the error rolled back with it: no answer was
    # written, so both orders may be at the exchange, and the exchange is asked.
    for order in (accepted, refused):
        order.refresh_from_db()
        assert (order.status, order.in_flight) == (Order.Status.OPEN, True)
    assert set(PlacementAttempt.objects.values_list("outcome", flat=True)) == {"in_flight"}
    plans = placement_status_check_plans(outcomes)
    assert {(plan.order_id, plan.recover, plan.attempt) for plan in plans} == {
        (accepted.pk, True, 1),
        (refused.pk, True, 1),
    }
