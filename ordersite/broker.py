"""django-q2's ORM broker without the per-task overhead of its bookkeeping (docs/decisions.md).

The stock broker pings the database before every statement (it calls
``close_old_connections`` each time it touches the queue) and acknowledges a task
with ``QuerySet.delete()``, which wraps one DELETE in a transaction of its own: about
seven round trips per task, for a task that needs two statements (lock it, delete it).
This one keeps the stock broker's queries and semantics and drops that overhead:
connections are checked as in every other loop of ours
(``ordersite.db.close_stale_connections``), a connection that died since its last
check is replaced and the call tried once more, and the acknowledgement is one DELETE.
It is the ORM broker only: with ``REDIS_URL`` django-q2 uses its Redis broker.
"""

from django.db import OperationalError, connections, transaction
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

from ordersite.db import close_stale_connections


class OrmBroker(ORM):
    @staticmethod
    def get_connection(list_key: str | None = None):
        # Inside a transaction (an order's insert queues its task) the connection is in use as it is.
        if transaction.get_autocommit(using=Conf.ORM):
            close_stale_connections(using=Conf.ORM)
        return OrmQ.objects.using(Conf.ORM)

    def dequeue(self):
        return self._retry_once(super().dequeue)

    def delete(self, task_id) -> None:
        self._retry_once(lambda: self._delete(task_id))

    def _delete(self, task_id) -> None:
        self.get_connection()
        connection = connections[Conf.ORM]
        table = connection.ops.quote_name(OrmQ._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE id = %s", [task_id])

    @staticmethod
    def _retry_once(call):
        try:
            return call()
        except OperationalError:
            # Lost since its last check (a database restart, say): the failed query marked
            # the connection, so the next get_connection replaces it. A second failure is
            # django-q2's to handle, as with its own broker.
            if not transaction.get_autocommit(using=Conf.ORM):
                raise
            return call()
