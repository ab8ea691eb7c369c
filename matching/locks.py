"""The per-instrument lock: one row per ISIN, locked FOR UPDATE.

Matching passes take this lock, so each instrument is matched one transaction at
a time; a pass takes the locks of all the instruments it matches, in ISIN order.
Claims for the exchange, exchange outcomes and cancels do not take it: they are
single compare-and-set UPDATEs on the order row (``orders/transitions.py``), and
a matching pass locks the rows it crosses, so the two serialize on the row instead.
"""

from django.db import connection, transaction

from matching.models import Instrument

# ISINs whose lock row this process has seen; rows are never deleted.
_ensured: set[str] = set()


def instrument_ensure(isin: str) -> None:
    """Create the instrument's lock row if it does not exist yet (no-op otherwise)."""
    if isin in _ensured:
        return
    Instrument.objects.bulk_create([Instrument(isin=isin)], ignore_conflicts=True)
    _ensured.add(isin)


def instruments_lock(isins: list[str]) -> None:
    """Lock the instruments, in ISIN order, until the surrounding transaction ends.

    Every pass locks its instruments in the same order, so two passes over
    overlapping sets wait for each other and never deadlock.
    """
    if transaction.get_autocommit():
        raise RuntimeError("instruments_lock() must be called inside transaction.atomic()")
    isins = sorted(set(isins))
    missing = set(isins) - _lock_rows(isins)
    if not missing:
        return
    # Not there (first order of the instrument, or the cache outlived a rollback): created
    # in this transaction. If it rolls back, the next pass finds them missing again.
    Instrument.objects.bulk_create([Instrument(isin=isin) for isin in sorted(missing)], ignore_conflicts=True)
    _lock_rows(sorted(missing))
    _ensured.update(missing)


def _lock_rows(isins: list[str]) -> set[str]:
    """``SELECT … FOR UPDATE`` of the instruments' rows in ISIN order; the ISINs found."""
    table, column = Instrument._meta.db_table, Instrument._meta.pk.column
    quote = connection.ops.quote_name
    # SQLite (make run without DATABASE_URL) has no row locks: its IMMEDIATE
    # transactions hold the database's one write lock from BEGIN (settings.py).
    for_update = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {quote(column)} FROM {quote(table)} WHERE {quote(column)} IN "
            f"({', '.join(['%s'] * len(isins))}) ORDER BY {quote(column)}{for_update}",
            isins,
        )
        return {isin for (isin,) in cursor.fetchall()}
