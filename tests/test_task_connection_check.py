"""A django-q2 task's connection is checked as our other loops' are: at most once a second.

django-q2's worker calls ``close_old_connections`` before every task, so with
``CONN_HEALTH_CHECKS`` every task would start with a ping. ``keep_recent_health_check``
(its ``pre_execute`` receiver) keeps a check younger than a second; a connection that
died since fails the task's first query, and ``retry_once_on_lost_connection`` runs the
task again on a new one.
"""

import pytest
from django.db import OperationalError, close_old_connections, connection
from django_q.signals import pre_execute

from ordersite import db as ordersite_db
from tests.test_task_broker import counters, since

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_check_clock():
    ordersite_db._health_checked.__dict__.clear()


def run_task(func):
    """What django-q2's worker does around one task: close old connections, pre_execute, run."""
    close_old_connections()
    pre_execute.send(sender="django_q", func=func, task={})
    return func()


def a_query():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]


def test_tasks_within_a_second_share_one_ping():
    connection.ensure_connection()
    before = counters()
    for _ in range(5):
        assert run_task(a_query) == 1
    assert since(before).get("Com_admin_commands", 0) == 1


def test_a_task_on_a_connection_that_died_meanwhile_runs_again_on_a_new_one():
    run_task(a_query)  # checked now: the next task within the second is not
    calls = []

    @ordersite_db.retry_once_on_lost_connection
    def task():
        calls.append(1)
        if len(calls) == 1:
            connection.connection.close()  # unusable under Django's feet, as after a server restart
        return a_query()

    assert run_task(task) == 1
    assert len(calls) == 2


def test_an_error_on_a_working_connection_is_not_retried():
    calls = []

    @ordersite_db.retry_once_on_lost_connection
    def task():
        calls.append(1)
        a_query()
        raise OperationalError(1213, "Deadlock found")

    with pytest.raises(OperationalError):
        run_task(task)
    assert len(calls) == 1
