"""`manage.py sweep_orders` re-drives stalled orders on demand and waits for their placements."""

from io import StringIO

import pytest
from django.core.management import call_command
from django_q.models import OrmQ

from orders.models import Order
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_sweep_places_an_order_whose_task_was_lost(settings):
    settings.PIPELINE_STALL_TIMEOUT = 0
    order = OrderFactory()
    OrmQ.objects.all().delete()
    out = StringIO()

    call_command("sweep_orders", "--wait", "20", stdout=out)

    order.refresh_from_db()
    assert order.status == Order.Status.SUBMITTED
    assert "re-matched 1 instruments" in out.getvalue()


def test_sweep_with_nothing_stalled_reports_nothing():
    OrderFactory()
    out = StringIO()

    call_command("sweep_orders", stdout=out)

    assert (
        "re-matched 0 instruments, re-routed 0 overdue orders, "
        "asked the exchange about 0 calls lost in flight" in out.getvalue()
    )
