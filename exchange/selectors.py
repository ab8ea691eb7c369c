"""Reads of what the FIX gateway stored: reports in commit order, the outbox, the reconcile set."""

from __future__ import annotations

from django.db.models import QuerySet

from exchange.models import ExecutionReportRecord, OutboxMessage


def report_batch_after(*, cursor: int, limit: int = 1000) -> list[ExecutionReportRecord]:
    """Stored inbound messages with ``id > cursor``, oldest first.

    Ids are commit order (only ``run_gateway`` writes this table, one transaction at a
    time), so a consumer that keeps the last id it applied, in the transaction that
    applies it, sees every report once.
    """
    return list(ExecutionReportRecord.objects.filter(id__gt=cursor).order_by("id")[:limit])


def reports_for_order(*, cl_ord_id: str) -> QuerySet[ExecutionReportRecord]:
    """Every stored message about one order (its own ClOrdID, or OrigClOrdID on cancels), oldest first."""
    return ExecutionReportRecord.objects.filter(order_cl_ord_id=str(cl_ord_id)).order_by("id")


def outbox_unsent(*, limit: int = 500) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(sent_seq__isnull=True).order_by("id")[:limit])


def outbox_backlog() -> int:
    return OutboxMessage.objects.filter(sent_seq__isnull=True).count()


def unsettled_cl_ord_ids() -> list[str]:
    """Orders the venue may hold and has not told us are final.

    A NewOrderSingle was sent for them (``sent_seq > 0``) and no ExecutionReport with a
    final OrdStatus (filled, cancelled, rejected, expired) arrived after it.
    """
    rows = OutboxMessage.objects.filter(
        settled_at__isnull=True, kind=OutboxMessage.Kind.NEW_ORDER, sent_seq__gt=0
    ).values_list("cl_ord_id", flat=True)
    return sorted(set(rows))
