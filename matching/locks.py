"""The per-instrument lock: one row per ISIN, locked FOR UPDATE.

Matching passes take this lock, so each instrument is matched one transaction at
a time while different instruments run in parallel. Claims for the exchange,
exchange outcomes and cancels do not take it: they are single compare-and-set
UPDATEs on the order row (``orders/transitions.py``), and a matching pass locks
the rows it crosses, so the two serialize on the row instead.
"""

from django.db import transaction

from matching.models import Instrument
from ordersite.db import compiled_rows

# ISINs whose lock row this process has seen; rows are never deleted.
_ensured: set[str] = set()


def instrument_ensure(isin: str) -> None:
    """Create the instrument's lock row if it does not exist yet (no-op otherwise)."""
    if isin in _ensured:
        return
    Instrument.objects.bulk_create([Instrument(isin=isin)], ignore_conflicts=True)
    _ensured.add(isin)


def instrument_lock(isin: str) -> None:
    """Lock the instrument until the surrounding transaction ends."""
    if transaction.get_autocommit():
        raise RuntimeError("instrument_lock() must be called inside transaction.atomic()")
    if _lock_row(isin):
        return
    # Not there (first order of the instrument, or the cache outlived a rollback).
    _ensured.discard(isin)
    Instrument.objects.bulk_create([Instrument(isin=isin)], ignore_conflicts=True)
    _lock_row(isin)


def _lock_row(isin: str) -> bool:
    return bool(
        compiled_rows(
            ("lock", isin), lambda: Instrument.objects.select_for_update().filter(isin=isin).values_list("pk")
        )
    )
