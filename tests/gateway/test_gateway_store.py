"""The MySQL SessionStore on its own: what one commit stores, all of it or none of it."""

import pytest
from django.db import DataError
from django.utils import timezone

from exchange.fix.django_store import DjangoSessionStore
from exchange.models import ExecutionReportRecord, FixOutboundMessage, FixSession, OutboxMessage
from exchange.services import outbox_new_order

pytestmark = pytest.mark.django_db


def _record(exec_id: str, seq: int, **values) -> dict:
    record = {
        "session_seq": seq,
        "poss_dup": False,
        "msg_type": "8",
        "dedupe_key": exec_id,
        "order_cl_ord_id": "order-1",
        "cl_ord_id": "order-1",
        "orig_cl_ord_id": "",
        "venue_order_id": "V1",
        "exec_id": exec_id,
        "exec_type": "F",
        "ord_status": "1",
        "last_qty": 1,
        "last_px": None,
        "cum_qty": 1,
        "leaves_qty": 9,
        "avg_px": None,
        "transact_time": timezone.now(),
        "ord_rej_reason": "",
        "cxl_rej_reason": "",
        "text": "",
        "raw": "8=FIX.4.4\x01",
    }
    return {**record, **values}


def test_numbers_messages_reports_and_sent_marks_survive_a_new_store():
    store = DjangoSessionStore("BROKER-VENUE")
    row = outbox_new_order(
        cl_ord_id="order-1", symbol="US0378331005", side="buy", quantity=10, ord_type="market"
    )
    store.save_outbound(1, b"first")
    store.mark_sent(row.id, 1)
    store.add_inbound(_record("V1-1", 1))
    store.add_inbound(_record("V1-1", 2, poss_dup=True))  # the same report again: stored once
    store.set_next_inbound(3)
    store.commit()

    again = DjangoSessionStore("BROKER-VENUE")
    assert (again.next_inbound_seq(), again.next_outbound_seq()) == (3, 2)
    assert list(again.outbound_range(1, 5)) == [(1, b"first")]
    assert ExecutionReportRecord.objects.get().session_seq == 1
    assert OutboxMessage.objects.get().sent_seq == 1
    assert FixSession.objects.get().reports_stored == 1


def test_a_failed_commit_stores_nothing_and_keeps_everything_for_the_next_one():
    failures = []
    store = DjangoSessionStore("BROKER-VENUE", on_failure=failures.append)
    store.save_outbound(1, b"first")
    store.add_inbound(_record("V1-1", 1))
    store.add_inbound(_record("V1-2", 2, session_seq=-1))  # refused by the database (unsigned)
    store.set_next_inbound(3)
    with pytest.raises(DataError):
        store.commit()

    assert len(failures) == 1
    assert (ExecutionReportRecord.objects.count(), FixOutboundMessage.objects.count()) == (0, 0)
    assert FixSession.objects.get().next_inbound == 1
    store.reload()  # what the gateway does before it reconnects
    assert (store.next_inbound_seq(), store.next_outbound_seq(), store.pending_inbound) == (1, 1, 0)


def test_a_final_report_settles_the_sent_new_order_so_reconcile_stops_asking():
    store = DjangoSessionStore("BROKER-VENUE")
    sent = outbox_new_order(
        cl_ord_id="order-1", symbol="US0378331005", side="buy", quantity=1, ord_type="market"
    )
    other = outbox_new_order(
        cl_ord_id="order-2", symbol="US0378331005", side="buy", quantity=1, ord_type="market"
    )
    store.mark_sent(sent.id, 1)
    store.mark_sent(other.id, 2)
    store.commit()
    store.add_inbound(_record("V1-2", 1, ord_status="2", leaves_qty=0))
    store.add_inbound(_record("V2-1", 2, order_cl_ord_id="order-2", cl_ord_id="order-2", ord_status="1"))
    store.commit()

    sent.refresh_from_db()
    other.refresh_from_db()
    assert sent.settled_at is not None and other.settled_at is None


def test_reset_forgets_the_stored_messages():
    store = DjangoSessionStore("BROKER-VENUE")
    store.save_outbound(1, b"first")
    store.commit()
    store.reset()
    store.save_outbound(1, b"again")
    assert list(store.outbound_range(1, 5)) == [(1, b"again")]  # pending, before the commit
    store.commit()
    assert list(FixOutboundMessage.objects.values_list("seq", "raw")) == [(1, b"again")]
