"""``ordersite.mysql``: ``atomic()`` is BEGIN ... COMMIT on a session that stays in autocommit mode.

Each test looks at the server itself: the session's statement counters, and what a
second connection can see while the block is open.
"""

import MySQLdb
import pytest
from django.conf import settings
from django.db import connection, transaction

from orders.models import ReportCursor

pytestmark = pytest.mark.django_db(transaction=True)


def session_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SHOW SESSION STATUS WHERE Variable_name IN ('Com_set_option', 'Com_begin', 'Com_commit')"
        )
        return {name: int(value) for name, value in cursor.fetchall()}


def other_connection():
    """A second session on the test database, outside Django."""
    db = settings.DATABASES["default"]
    other = MySQLdb.connect(
        host=db["HOST"] or "127.0.0.1",
        port=int(db["PORT"] or 3306),
        user=db["USER"],
        password=db["PASSWORD"],
        database=connection.settings_dict["NAME"],
        autocommit=True,
    )
    other.query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    return other


def cursor_rows(other) -> list[str]:
    cursor = other.cursor()
    cursor.execute("SELECT name FROM orders_reportcursor ORDER BY name")
    return [name for (name,) in cursor.fetchall()]


def test_an_atomic_block_is_begin_and_commit_without_switching_autocommit():
    connection.ensure_connection()
    before = session_counts()

    with transaction.atomic():
        ReportCursor.objects.create(name="one")

    after = session_counts()
    # SHOW STATUS is not counted as any of the three.
    assert after["Com_begin"] - before["Com_begin"] == 1
    assert after["Com_commit"] - before["Com_commit"] == 1
    assert after["Com_set_option"] == before["Com_set_option"]
    assert connection.get_autocommit() is True
    assert connection.connection.get_autocommit() is True  # the session never left autocommit


def test_what_the_block_writes_is_seen_by_others_only_once_it_commits():
    other = other_connection()
    try:
        with transaction.atomic():
            ReportCursor.objects.create(name="inside")
            assert cursor_rows(other) == []
        assert cursor_rows(other) == ["inside"]
    finally:
        other.close()


def test_an_exception_rolls_the_whole_block_back_and_the_next_statement_commits_alone():
    other = other_connection()
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            ReportCursor.objects.create(name="lost")
            raise RuntimeError("boom")
        assert not ReportCursor.objects.filter(name="lost").exists()

        ReportCursor.objects.create(name="alone")  # autocommit: visible at once
        assert cursor_rows(other) == ["alone"]
    finally:
        other.close()


def test_a_rolled_back_savepoint_keeps_the_rest_of_the_block():
    with transaction.atomic():
        ReportCursor.objects.create(name="kept")
        with pytest.raises(RuntimeError), transaction.atomic():
            ReportCursor.objects.create(name="undone")
            raise RuntimeError("boom")
    assert list(ReportCursor.objects.values_list("name", flat=True)) == ["kept"]


def test_on_commit_hooks_run_after_the_commit_and_not_after_a_rollback():
    ran = []
    with transaction.atomic():
        transaction.on_commit(lambda: ran.append("committed"))
        assert ran == []
    with pytest.raises(RuntimeError), transaction.atomic():
        transaction.on_commit(lambda: ran.append("rolled back"))
        raise RuntimeError("boom")
    assert ran == ["committed"]


def test_a_row_lock_taken_in_the_block_is_held_until_its_end():
    ReportCursor.objects.create(name="locked")
    other = other_connection()
    try:
        other.query("SET SESSION innodb_lock_wait_timeout = 1")
        with transaction.atomic():
            ReportCursor.objects.select_for_update().get(name="locked")
            with pytest.raises(MySQLdb.OperationalError, match="Lock wait timeout"):
                other.query("UPDATE orders_reportcursor SET position = 1 WHERE name = 'locked'")
        other.query("UPDATE orders_reportcursor SET position = 2 WHERE name = 'locked'")
        assert ReportCursor.objects.get(name="locked").position == 2
    finally:
        other.close()


def test_manual_autocommit_off_still_keeps_every_statement_until_an_explicit_commit():
    """``set_autocommit(False)`` is not ``atomic()``: after a commit, the next statements are a new one."""
    transaction.set_autocommit(False)
    try:
        ReportCursor.objects.create(name="first")
        transaction.commit()
        ReportCursor.objects.create(name="second")
        transaction.rollback()
    finally:
        transaction.set_autocommit(True)
    assert list(ReportCursor.objects.values_list("name", flat=True)) == ["first"]
    assert connection.connection.get_autocommit() is True
