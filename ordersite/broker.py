"""django-q2's ORM broker without the per-task overhead of its bookkeeping (docs/decisions.md).

The stock broker pings the database before every statement (it calls
``close_old_connections`` each time it touches the queue), locks the tasks it pulls
one UPDATE each, and acknowledges each task with ``QuerySet.delete()``, which wraps
one DELETE in a transaction of its own: about seven round trips and two commits per
task. This one keeps the stock broker's table, lock column and semantics:

- a pull reads up to ``bulk`` due tasks and locks them in one UPDATE, guarded as the
  stock one is (only rows whose lock is still in the past), so two clusters never
  both take a task;
- acknowledgements are collected for ``ACK_LINGER`` seconds and deleted in one
  statement by a thread of the process that acknowledges (django-q2's monitor). One
  lost with that process (a SIGKILL, at most ``ACK_LINGER`` of them) is delivered
  again after ``retry``: our tasks are idempotent, so it changes nothing;
- connections are checked as in every other loop of ours
  (``ordersite.db.close_stale_connections``), a connection that died since its last
  check is replaced and the call tried once more.

It is the ORM broker only: with ``REDIS_URL`` django-q2 uses its Redis broker.
"""

import logging
import os
import threading
import time

from django.db import OperationalError, connections, transaction
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

from ordersite.db import close_stale_connections

logger = logging.getLogger("ordersite.broker")

# Acknowledgements wait this long to be deleted together.
ACK_LINGER = 0.05
# After a failed delete, the ids are kept and tried again this much later.
ACK_RETRY_PAUSE = 1.0


class OrmBroker(ORM):
    def __init__(self, list_key: str | None = None):
        super().__init__(list_key=list_key)
        self._acks = _AckBatcher(self)

    def __setstate__(self, state):
        super().__setstate__(state)
        self._acks = _AckBatcher(self)

    @staticmethod
    def get_connection(list_key: str | None = None):
        # Inside a transaction (an order's insert queues its task) the connection is in use as it is.
        if transaction.get_autocommit(using=Conf.ORM):
            close_stale_connections(using=Conf.ORM)
        return OrmQ.objects.using(Conf.ORM)

    def enqueue(self, task) -> int:
        """One INSERT, in the caller's transaction if there is one (the order's)."""
        self.get_connection()
        with connections[Conf.ORM].cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_table()} ({_column('key')}, {_column('payload')}, {_column('lock')}) "
                "VALUES (%s, %s, %s)",
                [self.list_key, task, _datetime(timezone.now())],
            )
            return cursor.lastrowid

    def dequeue(self):
        return self._retry_once(self._dequeue)

    def _dequeue(self):
        self.get_connection()
        now = timezone.now()
        with connections[Conf.ORM].cursor() as cursor:
            cursor.execute(
                f"SELECT id, {_column('payload')} FROM {_table()} "
                f"WHERE {_column('key')} = %s AND {_column('lock')} < %s ORDER BY id LIMIT %s",
                [self.list_key, _datetime(now), Conf.BULK],
            )
            due = cursor.fetchall()
            if due:
                return self._lock(cursor, due, now)
        time.sleep(Conf.POLL)  # an empty queue: spare the CPU, as the stock broker does
        return None

    def _lock(self, cursor, due, now) -> list:
        """Lock the due tasks read; return those this pull got (all, unless another cluster raced it)."""
        ids = [task_id for task_id, _ in due]
        placeholders = ", ".join(["%s"] * len(ids))
        lock = self.timeout(None)
        # Still due: a row another cluster locked since the read is left to it.
        cursor.execute(
            f"UPDATE {_table()} SET {_column('lock')} = %s "
            f"WHERE id IN ({placeholders}) AND {_column('lock')} < %s",
            [_datetime(lock), *ids, _datetime(now)],
        )
        if cursor.rowcount == len(ids):
            return list(due)
        # Another cluster took some of them meanwhile: ours are the ones holding our lock.
        cursor.execute(
            f"SELECT id FROM {_table()} WHERE id IN ({placeholders}) AND {_column('lock')} = %s",
            [*ids, _datetime(lock)],
        )
        mine = {task_id for (task_id,) in cursor.fetchall()}
        return [task for task in due if task[0] in mine]

    def acknowledge(self, task_id) -> None:
        self._acks.add(task_id)

    def delete(self, task_id) -> None:
        self._retry_once(lambda: self.delete_many([task_id]))

    def delete_many(self, task_ids) -> None:
        self.get_connection()
        with connections[Conf.ORM].cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {_table()} WHERE id IN ({', '.join(['%s'] * len(task_ids))})", task_ids
            )

    def flush_acknowledgements(self, timeout: float = 5.0) -> bool:
        """Delete every task acknowledged so far, in this thread (tests, shutdown).

        False if a batch the acknowledging thread is deleting did not finish within ``timeout``.
        """
        return self._acks.flush(timeout)

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


class _AckBatcher:
    """Acknowledged task ids, deleted together by a thread of the acknowledging process."""

    def __init__(self, broker: OrmBroker):
        self._broker = broker
        self._ids: list[int] = []
        self._wake = threading.Condition()
        self._deleting = 0  # batches taken and not yet deleted
        self._pid: int | None = None

    def add(self, task_id) -> None:
        with self._wake:
            self._ids.append(task_id)
            if self._pid != os.getpid():  # threads do not survive a fork: one per process
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="queue-acks", daemon=True).start()
            self._wake.notify_all()

    def flush(self, timeout: float) -> bool:
        self._delete_taken()
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._deleting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.wait(remaining)
        return True

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._ids:
                    self._wake.wait()
            time.sleep(ACK_LINGER)
            try:
                self._delete_taken()
            except Exception as exc:
                logger.warning("task queue: acknowledgements not deleted (%s); retrying", exc)
                time.sleep(ACK_RETRY_PAUSE)

    def _delete_taken(self) -> None:
        """Delete the ids waiting now; on an error they wait again (and the error is raised)."""
        with self._wake:
            ids, self._ids = self._ids, []
            self._deleting += 1
        try:
            if ids:
                self._broker._retry_once(lambda: self._broker.delete_many(ids))
        except Exception:
            with self._wake:
                self._ids[:0] = ids
            raise
        finally:
            with self._wake:
                self._deleting -= 1
                self._wake.notify_all()


def _table() -> str:
    return connections[Conf.ORM].ops.quote_name(OrmQ._meta.db_table)


def _column(name: str) -> str:
    return connections[Conf.ORM].ops.quote_name(OrmQ._meta.get_field(name).column)


def _datetime(value):
    return OrmQ._meta.get_field("lock").get_db_prep_value(value, connections[Conf.ORM])
