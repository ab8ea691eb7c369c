"""Stored venue reports move our orders (SPEC §9): once each, in batches, never backwards.

The rows are what ``run_gateway`` stores for each inbound message (``exchange.ExecutionReportRecord``);
the end-to-end path with the real venue and gateway processes is in tests/gateway/.
"""

import io
import uuid
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import OrmQ

from exchange.models import ExecutionReportRecord, FixSession, OutboxMessage
from matching.services import instrument_match_pending
from orders.models import CancelRequest, Execution, Order, PlacementAttempt, QuarantinedReport
from orders.placement import placement_send
from orders.plans import RoutePlan
from orders.services import order_cancel
from orders.venue import reports_apply_all
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db

S = Order.Status


@pytest.fixture(autouse=True)
def venue_transport(settings):
    settings.EXCHANGE_TRANSPORT = "venue"


def _sent(quantity=100, **kwargs) -> Order:
    """An order matched, claimed and queued for the venue: in flight, its NewOrderSingle in the outbox."""
    order = OrderFactory(quantity=quantity, **kwargs)
    instrument_match_pending(isin=order.instrument)
    placement_send(plans=[RoutePlan(order.pk, order.instrument, timezone.now())])
    order.refresh_from_db()
    assert order.in_flight
    return order


def _session() -> FixSession:
    return FixSession.objects.get_or_create(name="BROKER-VENUE")[0]


def _report(order, exec_type, ord_status, *, cum=0, last=0, px=None, leaves=None, **extra):
    """Store one ExecutionReport as the gateway would."""
    sent = order.quantity - order.matched_quantity
    values = {
        "session": _session(),
        "session_seq": ExecutionReportRecord.objects.count() + 1,
        "msg_type": "8",
        "exec_id": extra.pop("exec_id", f"E{uuid.uuid4().hex}"),
        "order_cl_ord_id": str(order.pk),
        "cl_ord_id": str(order.pk),
        "exec_type": exec_type,
        "ord_status": ord_status,
        "last_qty": Decimal(last),
        "last_px": px,
        "cum_qty": Decimal(cum),
        "leaves_qty": Decimal(sent - cum if leaves is None else leaves),
        "transact_time": timezone.now(),
        "raw": "8=FIX.4.4|…",
        "received_at": timezone.now(),
        **extra,
    }
    values.setdefault("dedupe_key", values["exec_id"])
    return ExecutionReportRecord.objects.create(**values)


def _apply(order) -> Order:
    reports_apply_all()
    order.refresh_from_db()
    assert order.filled_quantity + order.remaining_quantity + order.cancelled_quantity == order.quantity
    return order


def test_claim_queues_a_new_order_single_in_the_same_transaction():
    order = _sent(100, limit_price=Decimal("10.00"), time_in_force="gtc")

    message = OutboxMessage.objects.get()
    assert (message.kind, message.cl_ord_id, message.order_qty, message.attempt) == (
        "new_order",
        str(order.pk),
        100,
        1,
    )
    assert (message.symbol, message.side, message.ord_type, message.price, message.time_in_force) == (
        order.instrument,
        "buy",
        "limit",
        Decimal("10.00"),
        "gtc",
    )


def test_accepted_order_is_submitted_and_works_at_the_venue():
    order = _sent(100)
    _report(order, "0", "0")

    order = _apply(order)

    assert (order.status, order.placed_quantity, order.remaining_quantity, order.in_flight) == (
        S.SUBMITTED,
        100,
        100,
        False,
    )
    assert PlacementAttempt.objects.get().outcome == "accepted"


def test_fills_make_it_partially_filled_then_filled_with_executions_and_an_average_price():
    order = _sent(100)
    _report(order, "0", "0")
    _report(order, "F", "1", cum=40, last=40, px=Decimal("10.00"), exec_id="X1")
    order = _apply(order)
    assert (order.status, order.filled_quantity, order.remaining_quantity) == (S.PARTIALLY_FILLED, 40, 60)

    _report(order, "F", "2", cum=100, last=60, px=Decimal("10.50"), exec_id="X2")
    order = _apply(order)

    assert (order.status, order.filled_quantity, order.remaining_quantity) == (S.FILLED, 100, 0)
    assert order.average_fill_price == Decimal("10.3000")
    assert sorted(Execution.objects.values_list("exec_id", "quantity")) == [("X1", 40), ("X2", 60)]


def test_applying_the_same_reports_again_changes_nothing():
    order = _sent(100)
    _report(order, "0", "0")
    _report(order, "F", "1", cum=40, last=40, px=Decimal("10.00"), exec_id="X1")
    before = _apply(order)

    from orders.models import ReportCursor

    ReportCursor.objects.update(position=0)  # as if the batch were applied twice
    from orders import venue

    venue._states.clear()
    after = _apply(order)

    assert (after.status, after.filled_quantity, after.filled_notional) == (
        before.status,
        before.filled_quantity,
        before.filled_notional,
    )
    assert Execution.objects.count() == 1


def test_transient_refusal_puts_the_order_back_in_the_book_and_queues_its_matching():
    order = _sent(100)
    OrmQ.objects.all().delete()
    _report(order, "8", "8", leaves=0, ord_rej_reason="99", text="Connection not available")

    order = _apply(order)

    assert (order.status, order.in_flight, order.needs_match) == (S.OPEN, False, True)
    assert PlacementAttempt.objects.get().outcome == "failed"
    assert OrmQ.objects.count() == 1  # its matching pass, then a retry


def test_permanent_rejection_makes_it_rejected_with_the_reason():
    order = _sent(100)
    _report(order, "8", "8", leaves=0, ord_rej_reason="1", text="Unknown instrument")

    order = _apply(order)

    assert (order.status, order.cancelled_quantity, order.placed_quantity, order.remaining_quantity) == (
        S.REJECTED,
        100,
        0,
        0,
    )
    assert "Unknown instrument" in order.failure_reason


def test_unknown_order_answer_returns_an_in_flight_order_to_the_book():
    order = _sent(100)
    _report(order, "I", "8", leaves=0, ord_rej_reason="5", text="Unknown order")

    order = _apply(order)

    assert (order.status, order.in_flight, order.needs_match) == (S.OPEN, False, True)
    assert PlacementAttempt.objects.get().outcome == "not_held"


def test_order_matched_more_after_the_venue_did_not_hold_it_is_placed_again_for_the_smaller_rest():
    """The chaos drill's venue SIGKILL: a NewOrderSingle lost, "Unknown order", more matched here, sent again.

    The applier's copy of the order's venue state from the first attempt (100 to
    place) must not judge the second attempt's reports (60 to place).
    """
    order = _sent(100)
    _report(order, "I", "8", leaves=0, ord_rej_reason="5", text="Unknown order")
    order = _apply(order)
    assert (order.status, order.in_flight) == (S.OPEN, False)
    OrderFactory(side=Order.Side.SELL, quantity=40)
    instrument_match_pending(isin=order.instrument)
    Order.objects.filter(pk=order.pk).update(route_at=timezone.now())  # skip the backoff wait
    placement_send(plans=[RoutePlan(order.pk, order.instrument, timezone.now())])
    order.refresh_from_db()
    assert (order.matched_quantity, order.in_flight, OutboxMessage.objects.last().order_qty) == (40, True, 60)

    _report(order, "0", "0")
    _report(order, "F", "2", cum=60, last=60, px=Decimal("10.00"), exec_id="X1")
    order = _apply(order)

    assert QuarantinedReport.objects.count() == 0
    assert (order.status, order.filled_quantity, order.placed_quantity, order.in_flight) == (
        S.FILLED,
        100,
        60,
        False,
    )


def test_report_for_an_order_we_do_not_know_is_quarantined_and_the_rest_applied():
    order = _sent(100)
    stranger = ExecutionReportRecord.objects.create(
        session=_session(),
        session_seq=99,
        msg_type="8",
        dedupe_key="Z1",
        exec_id="Z1",
        order_cl_ord_id="not-ours",
        cl_ord_id="not-ours",
        exec_type="0",
        ord_status="0",
        raw="…",
        received_at=timezone.now(),
    )
    _report(order, "0", "0")

    order = _apply(order)

    assert order.status == S.SUBMITTED
    assert QuarantinedReport.objects.get().report_id == stranger.id


def test_report_contradicting_what_we_know_is_quarantined_and_changes_nothing():
    order = _sent(100)
    _report(order, "0", "0")
    _report(order, "F", "1", cum=150, last=150, px=Decimal("10.00"))  # more than the order

    order = _apply(order)

    assert (order.status, order.filled_quantity) == (S.SUBMITTED, 0)
    assert QuarantinedReport.objects.count() == 1


def test_cancel_at_the_venue_is_pending_then_cancelled_with_the_unfilled_rest():
    order = _sent(100)
    _report(order, "0", "0")
    _report(order, "F", "1", cum=30, last=30, px=Decimal("10.00"))
    order = _apply(order)

    order = order_cancel(order=order)

    assert order.status == S.PENDING_CANCEL
    request = CancelRequest.objects.get()
    assert OutboxMessage.objects.filter(
        kind="cancel", cl_ord_id=request.cl_ord_id, orig_cl_ord_id=str(order.pk)
    ).exists()

    _report(order, "4", "4", cum=30, leaves=0, cl_ord_id=request.cl_ord_id, orig_cl_ord_id=str(order.pk))
    order = _apply(order)

    assert (order.status, order.filled_quantity, order.cancelled_quantity, order.remaining_quantity) == (
        S.CANCELLED,
        30,
        70,
        0,
    )


def test_cancel_refused_by_the_venue_puts_the_order_back_to_working():
    order = _sent(100)
    _report(order, "0", "0")
    _report(order, "F", "1", cum=30, last=30, px=Decimal("10.00"))
    order = order_cancel(order=_apply(order))
    request = CancelRequest.objects.get()

    ExecutionReportRecord.objects.create(
        session=_session(),
        session_seq=50,
        msg_type="9",
        dedupe_key=f"9:{request.cl_ord_id}",
        order_cl_ord_id=str(order.pk),
        cl_ord_id=request.cl_ord_id,
        orig_cl_ord_id=str(order.pk),
        ord_status="1",
        cxl_rej_reason="0",
        text="Too late to cancel",
        raw="…",
        received_at=timezone.now(),
    )
    order = _apply(order)

    assert order.status == S.PARTIALLY_FILLED
    assert CancelRequest.objects.get().rejected_at is not None


def test_reprocess_asks_the_venue_first_and_an_unknown_order_goes_back_to_work():
    from orders.services import order_reprocess
    from tests.factories import FailedOrderFactory

    order = FailedOrderFactory(quantity=100)
    OrmQ.objects.all().delete()

    order = order_reprocess(order=order)

    assert (order.status, order.in_flight, order.needs_match, order.remaining_quantity) == (
        S.OPEN,
        True,
        False,
        100,
    )
    assert OutboxMessage.objects.get().kind == "status_request"
    _report(order, "I", "8", leaves=0, ord_rej_reason="5", text="Unknown order")
    order = _apply(order)
    assert (order.status, order.in_flight, order.needs_match) == (S.OPEN, False, True)
    assert OrmQ.objects.count() == 1  # its matching pass


def test_reprocess_of_an_order_the_venue_holds_follows_the_venue():
    from orders.services import order_reprocess
    from tests.factories import FailedOrderFactory

    order = order_reprocess(order=FailedOrderFactory(quantity=100))
    _report(order, "I", "1", cum=40, leaves=60)
    _report(order, "F", "1", cum=40, last=40, px=Decimal("10.00"))

    order = _apply(order)

    assert (order.status, order.filled_quantity, order.placed_quantity, order.in_flight) == (
        S.PARTIALLY_FILLED,
        40,
        100,
        False,
    )


def test_lost_answer_is_asked_about_once_while_the_question_waits_and_the_order_stays_in_flight():
    order = _sent(100)
    question = RoutePlan(order.pk, order.instrument, timezone.now(), recover=True, attempt=1)

    placement_send(plans=[question])
    placement_send(plans=[question])  # the gateway is away: the first question still waits

    order.refresh_from_db()
    assert order.in_flight and order.status == S.OPEN
    assert list(OutboxMessage.objects.order_by("id").values_list("kind", flat=True)) == [
        "new_order",
        "status_request",
    ]


@pytest.mark.django_db(transaction=True)  # the command manages its own connection, as in production
def test_apply_venue_reports_once_applies_every_stored_batch_and_says_how_many(monkeypatch):
    monkeypatch.setattr("orders.venue.APPLY_BATCH", 2)
    order = _sent(100)
    _report(order, "0", "0")
    _report(order, "F", "1", cum=10, last=10, px=Decimal("10.00"))
    _report(order, "F", "1", cum=40, last=30, px=Decimal("10.00"))
    _report(order, "F", "2", cum=100, last=60, px=Decimal("10.00"))
    # The last fill again under a new ExecID: a CumQty step taken twice, quarantined.
    _report(order, "F", "2", cum=100, last=60, px=Decimal("10.00"), poss_dup=True)
    out = io.StringIO()

    call_command("apply_venue_reports", "--once", stdout=out)

    assert out.getvalue().strip() == "5 reports applied"
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == (S.FILLED, 100)
    assert Execution.objects.filter(order=order).count() == 3
    assert QuarantinedReport.objects.count() == 1


def test_a_status_answer_after_the_last_fill_in_the_same_batch_keeps_the_order_filled():
    # The batch writes its rows and fills at its end: until then the applier's state is
    # the only record of the fill, even for an order it has just seen done.
    order = _sent(100)
    _report(order, "0", "0")
    _report(order, "F", "2", cum=100, last=100, px=Decimal("10.00"))
    _report(order, "I", "2", cum=100, exec_id=f"S{uuid.uuid4().hex}")  # a reconcile answer

    order = _apply(order)

    assert (order.status, order.filled_quantity, order.remaining_quantity) == (S.FILLED, 100, 0)
    _report(order, "I", "2", cum=100, exec_id=f"S{uuid.uuid4().hex}")  # the next batch: from the rows
    assert _apply(order).status == S.FILLED
