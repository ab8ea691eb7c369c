"""Database helpers shared by the services."""

import functools
import logging
import math
import random
import threading
import time

from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections

logger = logging.getLogger("ordersite.db")

# MySQL/MariaDB: 1213 deadlock (the transaction was rolled back), 1205 lock wait timeout.
RETRYABLE_ERRORS = {1205, 1213}


def retry_on_deadlock(func=None, *, attempts: int = 5):
    """Run ``func`` again when MySQL picks its transaction as a deadlock victim.

    Only the outermost transaction can be retried: inside someone else's atomic
    block the error is re-raised for that caller to handle.
    """
    if func is None:
        return functools.partial(retry_on_deadlock, attempts=attempts)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        for attempt in range(1, attempts + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as exc:
                code = exc.args[0] if exc.args else None
                if code not in RETRYABLE_ERRORS or connection.in_atomic_block or attempt == attempts:
                    raise
                logger.info("%s: MySQL error %s, retry %s", func.__qualname__, code, attempt)
                time.sleep(random.uniform(0.005, 0.05) * attempt)
        raise AssertionError("unreachable")

    return wrapper


UPDATE_ROWS_CHUNK = 500


def update_rows(objs: list, fields: tuple[str, ...] | list[str]) -> int:
    """Write ``fields`` of model instances ``objs`` (one model) in one UPDATE per 500; returns rows matched.

    ``QuerySet.bulk_update`` without the ORM's expressions: ``SET f = CASE pk WHEN …
    THEN … END`` per field, each value prepared by its field as ``save()`` prepares
    it, no ``pre_save`` (``auto_now`` is not applied). Building those expressions is
    most of ``bulk_update``'s cost; this is for the hot batch paths (venue reports,
    the gateway's outbox) where one statement replaces one per row.
    """
    if not objs:
        return 0
    meta = type(objs[0])._meta
    quote = connection.ops.quote_name
    pk = meta.pk
    columns = [meta.get_field(name) for name in fields]
    matched = 0
    with connection.cursor() as cursor:
        for start in range(0, len(objs), UPDATE_ROWS_CHUNK):
            chunk = objs[start : start + UPDATE_ROWS_CHUNK]
            keys = [pk.get_db_prep_value(obj.pk, connection) for obj in chunk]
            whens = " ".join(["WHEN %s THEN %s"] * len(chunk))
            sets, params = [], []
            for field in columns:
                sets.append(f"{quote(field.column)} = CASE {quote(pk.column)} {whens} END")
                for key, obj in zip(keys, chunk, strict=True):
                    params += [key, field.get_db_prep_save(getattr(obj, field.attname), connection)]
            cursor.execute(
                f"UPDATE {quote(meta.db_table)} SET {', '.join(sets)} "
                f"WHERE {quote(pk.column)} IN ({', '.join(['%s'] * len(keys))})",
                params + keys,
            )
            matched += cursor.rowcount
    return matched


def insert_rows(objs: list, fields: tuple[str, ...] | list[str] | None = None) -> None:
    """Insert model instances ``objs`` (one model): ``bulk_create`` without the ORM's compiler.

    One multi-row INSERT of ``fields`` (by default every field but an auto-increment
    key), each value prepared by its field as ``save()`` prepares it; no ``pre_save``
    (set ``auto_now`` fields yourself), no signals, and the new primary keys are not
    read back. For the hot paths that write rows nobody reads back in the same
    transaction (order events on every change, fills of a matching pass, claims'
    attempts and outbox rows); the rows get consecutive keys in the order given.
    """
    if not objs:
        return
    meta = type(objs[0])._meta
    quote = connection.ops.quote_name
    if fields is None:
        columns = [field for field in meta.concrete_fields if field is not meta.auto_field]
    else:
        columns = [meta.get_field(name) for name in fields]
    rows = [
        [field.get_db_prep_save(getattr(obj, field.attname), connection) for field in columns] for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))})",
            rows,
        )


COMPILED_MAX = 10_000
_compiled: dict = {}


def compiled_rows(key, queryset_factory) -> list[tuple]:
    """The rows of ``queryset_factory()``'s SQL, compiled once per ``key`` (and database vendor).

    For the hot loops' small fixed queries (a matching pass's check for instruments waiting):
    building and compiling a queryset costs more than running it. ``key`` must name
    everything the queryset depends on (its parameters: an ISIN, say); rows are raw
    database values, with no field conversion (a UUID key is its stored text).
    """
    cache_key = (connection.vendor, key)
    compiled = _compiled.get(cache_key)
    if compiled is None:
        if len(_compiled) >= COMPILED_MAX:
            _compiled.clear()
        compiled = _compiled[cache_key] = queryset_factory().query.sql_with_params()
    sql, params = compiled
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# A long-running loop checks its connection at most this often (see close_stale_connections).
HEALTH_CHECK_INTERVAL = 1.0
_health_checked = threading.local()


def close_stale_connections(using: str = DEFAULT_DB_ALIAS, interval: float = HEALTH_CHECK_INTERVAL) -> None:
    """``close_old_connections`` for a loop that runs many short units of work (one connection, this thread).

    Django's call marks the connection for a health check, so with ``CONN_HEALTH_CHECKS``
    the next query first pings the server: a round trip per unit of work, whose answer
    only matters after a restart or a long idle. Here the check runs at once after a
    database error on this connection, and otherwise at most once per ``interval``; a
    connection that died in between fails one query, which the loop retries as it
    retries any database error, and the next call replaces it.
    """
    conn = connections[using]
    checked = _health_checked.__dict__
    now = time.monotonic()
    if conn.errors_occurred or now - checked.get(using, -math.inf) >= interval:
        checked[using] = now
        conn.close_if_unusable_or_obsolete()


def keep_recent_health_check(using: str = DEFAULT_DB_ALIAS, **signal_kwargs) -> None:
    """A django-q2 ``pre_execute`` receiver: the task's connection check, at most once a second.

    django-q2's worker calls ``close_old_connections`` before every task, which (with
    ``CONN_HEALTH_CHECKS``) makes the task's first query ping the server. Here that ping
    happens only if the last one is a second old, as in ``close_stale_connections``;
    Django's call has already replaced a connection that had an error or outlived its
    age. A connection that died in between fails the task's first query:
    ``retry_once_on_lost_connection`` replaces it and runs the task again.
    """
    conn = connections[using]
    if conn.connection is None:
        return
    checked = _health_checked.__dict__
    now = time.monotonic()
    if now - checked.get(using, -math.inf) < HEALTH_CHECK_INTERVAL:
        conn.health_check_done = True
    else:
        checked[using] = now  # the task's first query pings


def retry_once_on_lost_connection(func):
    """Run ``func`` again, on a new connection, when the first try found the old one dead.

    For work that runs outside any transaction and is safe to repeat (our tasks are).
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except OperationalError:
            if connection.in_atomic_block or (connection.connection is not None and connection.is_usable()):
                raise
            connection.close()
            return func(*args, **kwargs)

    return wrapper
