"""The ORM broker of the task queue (ordersite/broker.py): django-q2's, without a round trip per task.

Counted on the server: MariaDB's session counters of the test's own connection.
"""

import time
from datetime import timedelta

import MySQLdb
import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django_q.brokers import get_broker
from django_q.models import OrmQ

from orders.services import order_create
from ordersite import db as ordersite_db
from ordersite.broker import OrmBroker

pytestmark = pytest.mark.django_db(transaction=True)

COUNTERS = ("Com_delete", "Com_update", "Com_set_option", "Com_commit", "Com_admin_commands")


def counters() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS WHERE Variable_name IN %s", [COUNTERS])
        return {name: int(value) for name, value in cursor.fetchall()}


def since(before: dict[str, int]) -> dict[str, int]:
    after = counters()
    return {name: after[name] - before[name] for name in COUNTERS if after[name] != before[name]}


def kill_this_connection() -> None:
    """End the test's database connection from another one, as a server restart would."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        (connection_id,) = cursor.fetchone()
    params = connection.get_connection_params()
    credentials = {key: params[key] for key in ("host", "port", "user", "passwd") if key in params}
    other = MySQLdb.connect(**credentials)
    try:
        other.cursor().execute(f"KILL {int(connection_id)}")
    finally:
        other.close()


@pytest.fixture
def queued(user):
    order, _ = order_create(owner=user, type="market", side="buy", instrument="US0378331005", quantity=5)
    return order


@pytest.fixture
def broker():
    ordersite_db._health_checked.__dict__.clear()
    return get_broker()


def test_the_orm_broker_is_ours():
    assert settings.Q_CLUSTER["broker_class"] == "ordersite.broker.OrmBroker"
    assert isinstance(get_broker(), OrmBroker)


def test_a_task_is_locked_once_and_acknowledged_with_one_delete(queued, broker):
    connection.ensure_connection()
    before = counters()
    ((ack_id, payload),) = broker.dequeue()
    assert broker.dequeue() is None  # locked: not handed out again
    broker.acknowledge(ack_id)
    assert broker.flush_acknowledgements()
    assert not OrmQ.objects.filter(pk=ack_id).exists()
    # One UPDATE to lock it, one DELETE to acknowledge it: no transaction around either,
    # and at most the one health check of this second.
    spent = since(before)
    assert spent.get("Com_update") == 1 and spent.get("Com_delete") == 1
    assert spent.get("Com_set_option", 0) == 0 and spent.get("Com_commit", 0) == 0
    assert spent.get("Com_admin_commands", 0) <= 1


def test_a_bulk_is_locked_with_one_update_and_acknowledged_with_one_delete(user, broker, monkeypatch):
    from django_q.conf import Conf

    for _ in range(4):
        order_create(owner=user, type="market", side="buy", instrument="US0378331005", quantity=5)
    connection.ensure_connection()
    before = counters()
    monkeypatch.setattr(Conf, "BULK", 3)
    first = broker.dequeue()
    second = broker.dequeue()
    assert len(first) == 3 and len(second) == 1  # oldest first, none handed out twice
    assert [ack_id for ack_id, _ in first + second] == list(
        OrmQ.objects.order_by("id").values_list("id", flat=True)
    )
    for ack_id, _ in first + second:
        broker.acknowledge(ack_id)
    assert broker.flush_acknowledgements()
    assert not OrmQ.objects.exists()
    spent = since(before)
    assert spent.get("Com_update") == 2 and spent.get("Com_delete") == 1


def test_acknowledgements_are_deleted_by_their_thread_soon_after(queued, broker):
    ((ack_id, _),) = broker.dequeue()
    broker.acknowledge(ack_id)
    deadline = time.monotonic() + 5
    while OrmQ.objects.filter(pk=ack_id).exists():
        assert time.monotonic() < deadline, "the acknowledgement was not deleted within 5 s"
        time.sleep(0.02)


def test_a_task_another_cluster_locked_after_the_read_is_left_to_it(user, broker):
    from django.utils import timezone

    for _ in range(3):
        order_create(owner=user, type="market", side="buy", instrument="US0378331005", quantity=5)
    now = timezone.now()
    due = [(row.id, row.payload) for row in OrmQ.objects.order_by("id")]
    # Between this pull's read and its lock, another cluster locks the second task.
    OrmQ.objects.filter(pk=due[1][0]).update(lock=now + timedelta(seconds=120))
    with connection.cursor() as cursor:
        got = broker._lock(cursor, due, now)
    assert [ack_id for ack_id, _ in got] == [due[0][0], due[2][0]]


def test_a_connection_lost_since_its_last_check_is_replaced_and_the_call_goes_through(queued, broker):
    assert broker.queue_size() == 1  # checked just now: the next calls within the second are not
    kill_this_connection()
    ((ack_id, _),) = broker.dequeue()
    kill_this_connection()
    broker.acknowledge(ack_id)
    assert broker.flush_acknowledgements()  # deletes in this thread, on the killed connection
    assert not OrmQ.objects.exists()


def test_a_loop_checks_its_connection_at_most_once_a_second_and_at_once_after_an_error(db):
    ordersite_db._health_checked.__dict__.clear()
    connection.ensure_connection()
    before = counters()
    for _ in range(5):
        ordersite_db.close_stale_connections()
        OrmQ.objects.exists()
    assert since(before).get("Com_admin_commands", 0) == 1

    kill_this_connection()
    with pytest.raises(OperationalError):
        OrmQ.objects.exists()  # within the second: the dead connection is only found by using it
    ordersite_db.close_stale_connections()  # the error triggers a check now: replaced
    assert OrmQ.objects.exists() is False

    ordersite_db.close_stale_connections()
    OrmQ.objects.exists()
    kill_this_connection()
    ordersite_db._health_checked.__dict__["default"] -= ordersite_db.HEALTH_CHECK_INTERVAL  # a second on
    ordersite_db.close_stale_connections()  # checked before the next query: replaced
    assert OrmQ.objects.exists() is False


def test_a_task_whose_acknowledgement_was_lost_is_delivered_again_once_its_lock_expires(
    queued, broker, monkeypatch
):
    """A monitor killed before its batch of acknowledgements was deleted: the task comes back after retry."""
    from django.utils import timezone

    from ordersite import broker as broker_module

    monkeypatch.setattr(broker_module, "ACK_LINGER", 60)  # the batch is still gathering
    ((ack_id, payload),) = broker.dequeue()
    broker.acknowledge(ack_id)
    broker._acks._ids.clear()  # the process died with the acknowledgement still waiting
    assert broker.dequeue() is None  # locked for `retry` seconds
    OrmQ.objects.filter(pk=ack_id).update(lock=timezone.now() - timedelta(seconds=1))  # ... which pass

    assert broker.dequeue() == [(ack_id, payload)]
