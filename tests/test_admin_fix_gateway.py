"""The FIX gateway's stored reports and outbox in the back office: listed, searchable, read-only."""

import uuid

import pytest
from django.urls import reverse

from exchange.models import ExecutionReportRecord, FixSession, OutboxMessage
from exchange.services import outbox_cancel, outbox_new_order
from tests.factories import ClerkFactory

pytestmark = pytest.mark.django_db

REPORTS = "admin:exchange_executionreportrecord"
OUTBOX = "admin:exchange_outboxmessage"


@pytest.fixture
def clerk_client(client):
    client.force_login(ClerkFactory())
    return client


def _report(order_id: str, exec_id: str, **values) -> ExecutionReportRecord:
    from django.utils import timezone

    session, _ = FixSession.objects.get_or_create(name="BROKER-VENUE")
    return ExecutionReportRecord.objects.create(
        session=session,
        session_seq=1,
        msg_type="8",
        dedupe_key=exec_id,
        exec_id=exec_id,
        order_cl_ord_id=order_id,
        cl_ord_id=order_id,
        exec_type="F",
        ord_status="1",
        raw="8=FIX.4.4\x0135=8\x01",
        received_at=timezone.now(),
        **values,
    )


def test_clerks_list_and_search_stored_reports(clerk_client):
    order_id, other = str(uuid.uuid4()), str(uuid.uuid4())
    mine = _report(order_id, "V1-1")
    _report(other, "V2-1")

    page = clerk_client.get(reverse(f"{REPORTS}_changelist"))
    assert page.status_code == 200 and len(page.context["cl"].result_list) == 2
    by_order = clerk_client.get(reverse(f"{REPORTS}_changelist"), {"q": order_id})
    assert list(by_order.context["cl"].result_list) == [mine]
    by_exec_id = clerk_client.get(reverse(f"{REPORTS}_changelist"), {"q": "V1-1"})
    assert list(by_exec_id.context["cl"].result_list) == [mine]
    by_type = clerk_client.get(reverse(f"{REPORTS}_changelist"), {"exec_type": "4"})
    assert list(by_type.context["cl"].result_list) == []
    detail = clerk_client.get(reverse(f"{REPORTS}_change", args=[mine.pk]))
    assert detail.status_code == 200 and "8=FIX.4.4|35=8|" in detail.content.decode()


def test_clerks_list_the_outbox_and_nothing_is_editable(clerk_client):
    order_id = str(uuid.uuid4())
    row = outbox_new_order(
        cl_ord_id=order_id, symbol="US0378331005", side="buy", quantity=5, ord_type="market"
    )
    cancel = outbox_cancel(cl_ord_id=str(uuid.uuid4()), orig_cl_ord_id=order_id)

    page = clerk_client.get(reverse(f"{OUTBOX}_changelist"), {"q": order_id})
    assert page.status_code == 200
    assert {r.pk for r in page.context["cl"].result_list} == {row.pk, cancel.pk}
    unsent = clerk_client.get(reverse(f"{OUTBOX}_changelist"), {"sent_at__isempty": "1"})
    assert len(unsent.context["cl"].result_list) == 2
    assert clerk_client.get(reverse(f"{OUTBOX}_change", args=[row.pk])).status_code == 200
    assert clerk_client.get(reverse(f"{OUTBOX}_add")).status_code == 403
    assert clerk_client.post(reverse(f"{OUTBOX}_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
    assert OutboxMessage.objects.count() == 2
