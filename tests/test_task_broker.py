"""The ORM broker of the task queue (ordersite/broker.py): django-q2's, without a round trip per check.

Counted on the server: MariaDB's session counters of the test's own connection.
"""

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
    assert not OrmQ.objects.filter(pk=ack_id).exists()
    # One UPDATE to lock it, one DELETE to acknowledge it: no transaction around either,
    # and at most the one health check of this second.
    spent = since(before)
    assert spent.get("Com_update") == 1 and spent.get("Com_delete") == 1
    assert spent.get("Com_set_option", 0) == 0 and spent.get("Com_commit", 0) == 0
    assert spent.get("Com_admin_commands", 0) <= 1


def test_a_connection_lost_since_its_last_check_is_replaced_and_the_call_goes_through(queued, broker):
    assert broker.queue_size() == 1  # checked just now: the next calls within the second are not
    kill_this_connection()
    ((ack_id, _),) = broker.dequeue()
    kill_this_connection()
    broker.acknowledge(ack_id)
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
