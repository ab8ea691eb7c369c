"""Venue reports write the order events a client follows (SPEC §9, §10): one per change it sees."""

import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from exchange.models import ExecutionReportRecord, FixSession
from orders.models import CancelRequest, OrderEvent
from orders.services import order_cancel
from orders.venue import reports_apply_all
from tests.test_venue_reports_apply import (
    _sent,
    venue_transport,  # noqa: F401 (an autouse fixture)
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def session():
    return FixSession.objects.create(name="BROKER-VENUE")


def _store(session, order, **values):
    """One inbound report as run_gateway stores it."""
    values = {
        "session": session,
        "session_seq": ExecutionReportRecord.objects.count() + 1,
        "msg_type": "8",
        "order_cl_ord_id": str(order.pk),
        "cl_ord_id": str(order.pk),
        "raw": "8=FIX.4.4|…",
        "received_at": timezone.now(),
        "transact_time": timezone.now(),
        **values,
    }
    values.setdefault("exec_id", f"E{uuid.uuid4().hex}")
    values.setdefault("dedupe_key", values["exec_id"])
    return ExecutionReportRecord.objects.create(**values)


def _execution(session, order, exec_type, ord_status, *, cum=0, last=0, px=None, leaves=None):
    _store(
        session,
        order,
        exec_type=exec_type,
        ord_status=ord_status,
        last_qty=Decimal(last),
        last_px=px,
        cum_qty=Decimal(cum),
        leaves_qty=Decimal(order.quantity - cum if leaves is None else leaves),
    )


def names(order):
    return list(OrderEvent.objects.filter(order_id=order.pk).order_by("id").values_list("name", "status"))


def test_acceptance_fills_and_the_final_fill_are_events_and_a_duplicate_is_none(session):
    order = _sent(100)
    _execution(session, order, "0", "0")
    _execution(session, order, "F", "1", cum=30, last=30, px=Decimal("10.00"))
    reports_apply_all()
    _execution(session, order, "F", "2", cum=100, last=70, px=Decimal("10.10"))
    _store(  # the same fill again, as after a reconnect
        session,
        order,
        exec_id=f"D{uuid.uuid4().hex}",
        exec_type="F",
        ord_status="2",
        last_qty=Decimal(70),
        last_px=Decimal("10.10"),
        cum_qty=Decimal(100),
        leaves_qty=Decimal(0),
        poss_dup=True,
    )
    reports_apply_all()

    assert names(order) == [
        ("submitted", "SUBMITTED"),
        ("partially_filled", "PARTIALLY_FILLED"),
        ("filled", "FILLED"),
    ]
    assert OrderEvent.objects.filter(order_id=order.pk).last().payload.count('"filled_quantity":100') == 1


def test_fills_applied_in_one_batch_are_one_event_per_order_with_the_state_after_them(session):
    first, second = _sent(100), _sent(100)
    for order in (first, second):
        _execution(session, order, "0", "0")
    _execution(session, first, "F", "1", cum=10, last=10, px=Decimal("10.00"))
    _execution(session, second, "F", "1", cum=5, last=5, px=Decimal("10.00"))
    _execution(session, first, "F", "1", cum=30, last=20, px=Decimal("10.00"))
    _execution(session, first, "F", "1", cum=60, last=30, px=Decimal("10.00"))
    _execution(session, second, "F", "2", cum=100, last=95, px=Decimal("10.00"))
    reports_apply_all()

    # Nothing between the fills of one batch was ever committed: no reader could have seen it.
    assert names(first) == [("submitted", "SUBMITTED"), ("partially_filled", "PARTIALLY_FILLED")]
    assert '"filled_quantity":60' in OrderEvent.objects.filter(order_id=first.pk).last().payload
    assert names(second) == [
        ("submitted", "SUBMITTED"),
        ("partially_filled", "PARTIALLY_FILLED"),
        ("filled", "FILLED"),
    ]
    partial = OrderEvent.objects.get(order_id=second.pk, name="partially_filled")
    assert '"filled_quantity":5,' in partial.payload


def test_a_cancel_the_venue_refuses_is_cancel_rejected(session):
    order = _sent(100)
    _execution(session, order, "0", "0")
    _execution(session, order, "F", "1", cum=30, last=30, px=Decimal("10.00"))
    reports_apply_all()
    order_cancel(order=order)
    request = CancelRequest.objects.get()
    _store(
        session,
        order,
        msg_type="9",
        exec_id="",
        dedupe_key=f"9:{request.cl_ord_id}",
        cl_ord_id=request.cl_ord_id,
        orig_cl_ord_id=str(order.pk),
        ord_status="1",
        cxl_rej_reason="0",
        text="Too late to cancel",
    )
    reports_apply_all()

    assert [name for name, _ in names(order)] == ["submitted", "partially_filled", "cancel_rejected"]


def test_expiry_at_the_venue_is_expired(session):
    order = _sent(100)
    _execution(session, order, "0", "0")
    _execution(session, order, "C", "C", leaves=0)
    reports_apply_all()

    assert names(order) == [("submitted", "SUBMITTED"), ("expired", "EXPIRED")]
