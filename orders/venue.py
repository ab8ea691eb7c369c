"""Our orders at the FIX venue (SPEC §9): what we send through the outbox, and how its reports move them.

Sending: a claim for the venue writes its NewOrderSingle (or, for an attempt whose
answer is unknown, an OrderStatusRequest) into ``exchange``'s outbox in the claim's
own transaction; ``run_gateway`` sends it. Receiving: ``run_gateway`` stores every
report durably; ``reports_apply_pending`` applies them in batches, in commit order,
one transaction per batch that also moves the cursor, so each report counts once.
What a report means for one order is decided by the pure fold (``orders/reports.py``);
the state changes go through ``orders/transitions.py``.

The unknown-outcome rule holds by construction: an order stays in flight from its
claim until the venue answers about that ClOrdID, and the venue processes one
session's messages in order, so its "unknown order" answer to a status request sent
after the NewOrderSingle is final.
"""

import functools
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.db.models.constants import OnConflict
from django.utils import timezone

from exchange.fix.django_store import RECORD_COLUMNS
from exchange.models import ExecutionReportRecord, OutboxMessage
from exchange.services import outbox_cancel, outbox_status_request, outbox_status_requests
from orders import reports, transitions
from orders.events import events_batch
from orders.models import CancelRequest, Execution, Order, PlacementAttempt, QuarantinedReport, ReportCursor
from orders.placement import (
    NOT_HELD_ERROR,
    Claim,
    Outcome,
    placement_attempts_finish,
    placement_record_refusal,
)
from orders.tasks import enqueue_order_processing
from ordersite import metrics
from ordersite.db import insert_rows, retry_on_deadlock, update_rows

logger = logging.getLogger("orders.venue")

CURSOR = "venue"
APPLY_BATCH = 2000
# The venue's transient refusal ("Connection not available"): nothing is held, send again.
TRANSIENT_REJECT_REASON = "99"
REJECTED_REASON = "Rejected by the venue: {text}"

# Venue state per order, kept by the one applier between batches; checked against the
# row before use (``_state``) and rebuilt from the database when it differs. Within a
# batch it is the only true state (the batch writes its rows and fills at its end), so
# orders leave it only after the batch's writes: those done at the venue, or all of
# them past ``STATES_KEPT``.
_states: dict[str, reports.VenueOrder] = {}
STATES_KEPT = 100_000


# --- Sending ------------------------------------------------------------------------------


def venue_send(claims) -> None:
    """Outbox rows for claimed attempts, in the claim's transaction: new orders and status questions.

    A status question already waiting in the outbox (the gateway is away) is not asked twice.
    """
    questions = [str(c.order.pk) for c in claims if c.status_check]
    waiting = _status_requests_waiting(questions)
    outbox_status_requests([cl_ord_id for cl_ord_id in questions if cl_ord_id not in waiting])
    rows = []
    for claim in (c for c in claims if not c.status_check):
        order = claim.order
        rows.append(
            OutboxMessage(
                kind=OutboxMessage.Kind.NEW_ORDER,
                cl_ord_id=str(order.pk),
                symbol=order.instrument,
                side=order.side,
                order_qty=order.remaining_quantity,
                ord_type=order.type,
                price=order.limit_price,
                time_in_force=order.time_in_force,
                attempt=claim.attempt,
            )
        )
    insert_rows(rows)


def venue_ask_status(order: Order) -> None:
    """An OrderStatusRequest for ``order`` (in the caller's transaction), unless one is waiting already."""
    if not _status_requests_waiting([str(order.pk)]):
        outbox_status_request(cl_ord_id=str(order.pk), side=order.side)


def _status_requests_waiting(cl_ord_ids: list[str]) -> set[str]:
    if not cl_ord_ids:
        return set()
    return set(
        OutboxMessage.objects.filter(
            kind=OutboxMessage.Kind.STATUS_REQUEST, cl_ord_id__in=cl_ord_ids, sent_seq__isnull=True
        ).values_list("cl_ord_id", flat=True)
    )


def venue_cancel(order: Order, now: datetime) -> bool:
    """Ask the venue to cancel an order working there: PENDING_CANCEL, a CancelRequest and its outbox row."""
    with transaction.atomic():
        if not transitions.order_request_venue_cancel(order.pk, now):
            return False
        request = CancelRequest.objects.create(order_id=order.pk, cl_ord_id=f"C{uuid.uuid4().hex}")
        outbox_cancel(
            cl_ord_id=request.cl_ord_id,
            orig_cl_ord_id=str(order.pk),
            side=order.side,
            symbol=order.instrument,
        )
    return True


def venue_reconcile_ids() -> list[str]:
    """Orders the venue may hold that are not final for us: asked about on every logon."""
    # Two reads, not a UNION: SQLite (make run's default) refuses the models' ORDER BY in one.
    ids = set(Order.objects.in_flight().values_list("pk", flat=True))
    ids.update(Order.objects.at_venue().values_list("pk", flat=True))
    return sorted(str(pk) for pk in ids)


# --- Receiving ----------------------------------------------------------------------------


# What applying reads of a stored report (rows as named tuples: no model instances, no raw text).
REPORT_FIELDS = ("id", *(c for c in RECORD_COLUMNS if c not in ("session_seq", "venue_order_id", "raw")))


@dataclass
class ApplyResult:
    reports: int = 0
    executions: int = 0
    quarantined: int = 0
    lag_seconds: list[float] | None = None


def reports_apply_all(*, max_batches: int = 50) -> int:
    """Apply stored reports batch after batch until none is left (or ``max_batches``); returns how many."""
    applied = 0
    for _ in range(max_batches):
        result = reports_apply_pending()
        applied += result.reports
        if result.reports < APPLY_BATCH:
            break
    return applied


@retry_on_deadlock
def reports_apply_pending(*, limit: int = APPLY_BATCH) -> ApplyResult:
    """Apply the next batch of stored venue reports to our orders, in one transaction."""
    with transaction.atomic():
        cursor, _ = ReportCursor.objects.select_for_update().get_or_create(name=CURSOR)
        records = list(
            ExecutionReportRecord.objects.filter(id__gt=cursor.position)
            .order_by("id")
            .values_list(*REPORT_FIELDS, named=True)[:limit]
        )
        if not records:
            return ApplyResult()
        with events_batch():
            result = _apply(records, timezone.now())
        cursor.position = records[-1].id
        cursor.updated_at = timezone.now()
        cursor.save(update_fields=["position", "updated_at"])
    metrics.venue_reports_applied(result.reports, result.executions, result.quarantined, result.lag_seconds)
    return result


def _apply(records: list, now: datetime) -> ApplyResult:
    by_order: dict[str, list] = {}
    quarantine: list[tuple] = []
    for record in records:
        if record.msg_type not in (reports.MsgType.EXECUTION_REPORT, reports.MsgType.ORDER_CANCEL_REJECT):
            quarantine.append((record, f"message type {record.msg_type} is not about an order"))
        elif _order_key(record.order_cl_ord_id) is None:
            quarantine.append((record, f"ClOrdID {record.order_cl_ord_id!r} is not one of our orders"))
        else:
            by_order.setdefault(_order_key(record.order_cl_ord_id), []).append(record)
    orders = {
        str(order.pk): order
        for order in Order.objects.select_for_update().filter(pk__in=list(by_order)).order_by("pk")
    }
    result = ApplyResult()
    batch = _Batch()
    applied_at: list[datetime] = []
    for order_id, order_records in by_order.items():
        order = orders.get(order_id)
        if order is None:
            quarantine += [(record, "unknown order") for record in order_records]
            continue
        for record in order_records:
            problem = _apply_one(order, record, batch, now)
            if problem:
                quarantine.append((record, problem))
            elif record.transact_time is not None:
                applied_at.append(record.transact_time)
    placement_attempts_finish(batch.accepted, PlacementAttempt.Outcome.ACCEPTED, now)
    update_rows(list(batch.changed.values()), transitions.VENUE_FIELDS)
    executions = batch.executions
    # The lag runs to the rows written (the commit follows at once), not to the batch's start.
    written = timezone.now()
    _insert_executions(executions, written)
    _forget_done(by_order)
    result.lag_seconds = [max(0.0, (written - at).total_seconds()) for at in applied_at]
    if quarantine:
        _quarantine(quarantine)
    result.reports = len(records)
    result.executions = len(executions)
    result.quarantined = len(quarantine)
    return result


@dataclass
class _Batch:
    """What a batch's reports add up to, written once each at its end."""

    executions: list[tuple] = field(default_factory=list)  # (exec_id, order_id, qty, px, cum, at)
    changed: dict[str, Order] = field(default_factory=dict)  # orders moved, by id
    accepted: list[tuple] = field(default_factory=list)  # (order id, attempt) the venue answered

    def write_pending(self, order: Order) -> None:
        """Write what the batch has applied to ``order`` so far (before a path that reloads the row)."""
        if self.changed.pop(str(order.pk), None) is not None:
            order.save(update_fields=transitions.VENUE_FIELDS)


def _insert_executions(executions: list[tuple], created_at: datetime) -> None:
    """``bulk_create(ignore_conflicts=True)`` without the ORM's per-value compiling (a third of a
    batch's time at thousands of fills a batch): one multi-row INSERT IGNORE, values adapted by
    the backend as the ORM would (the unique ExecID makes a fill counted once)."""
    if not executions:
        return
    ops, meta = connection.ops, Execution._meta
    price = meta.get_field("price")
    to_db_order = meta.get_field("order").target_field.get_db_prep_value
    columns = ("exec_id", "order_id", "quantity", "price", "cum_quantity", "executed_at", "created_at")
    created = ops.adapt_datetimefield_value(created_at)
    rows = [
        (
            exec_id,
            to_db_order(order_id, connection),
            quantity,
            ops.adapt_decimalfield_value(fill_price, price.max_digits, price.decimal_places),
            cum_quantity,
            ops.adapt_datetimefield_value(executed_at),
            created,
        )
        for exec_id, order_id, quantity, fill_price, cum_quantity, executed_at in executions
    ]
    insert = ops.insert_statement(on_conflict=OnConflict.IGNORE)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"{insert} {ops.quote_name(meta.db_table)} ({', '.join(map(ops.quote_name, columns))}) "
            f"VALUES ({', '.join(['%s'] * len(columns))})",
            rows,
        )


def _apply_one(order: Order, record, batch: _Batch, now: datetime) -> str:
    """Apply one report to ``order`` (row locked); returns why it was quarantined, or "".

    The order's new fields stay on the instance, listed in ``batch.changed`` for the
    batch's one write; a path that writes the row itself first writes what is pending.
    """
    report = _report(record)
    if report.exec_type == reports.ExecType.REJECTED and record.ord_rej_reason == TRANSIENT_REJECT_REASON:
        batch.write_pending(order)
        _refused_for_now(order, record.text or "Connection not available", now)
        return ""
    if not (order.in_flight or order.venue_status):
        if report.exec_type == reports.ExecType.ORDER_STATUS:
            return ""  # a reconcile answer about an order back in our book: nothing to do
        return "the venue reports on an order we have not sent it"
    state = _state(order)
    new_state, effect = reports.fold(state, report)
    if effect.quarantine:
        return effect.quarantine
    if effect.not_held:
        batch.write_pending(order)
        _not_held(order, now)
        return ""
    if effect.duplicate:
        return ""
    _states[str(order.pk)] = new_state
    for execution in effect.executions:
        batch.executions.append(
            (
                execution.exec_id,
                order.pk,
                execution.quantity,
                execution.price,
                execution.cum_qty,
                execution.transact_time or now,
            )
        )
    if report.msg_type == reports.MsgType.ORDER_CANCEL_REJECT:
        CancelRequest.objects.filter(cl_ord_id=report.cancel_id, rejected_at__isnull=True).update(
            rejected_at=now, reason=report.text
        )
    if new_state.status is None:
        return ""  # nothing the venue said changes our view yet (e.g. a PendingCancel echo)
    if order.in_flight:
        batch.accepted.append((order.pk, order.placement_attempts))
    fields = reports.order_fields(
        quantity=order.quantity,
        matched_quantity=order.matched_quantity,
        matched_notional=order.matched_notional,
        venue=new_state,
    )
    rejected = new_state.status == reports.OrdStatus.REJECTED
    transitions.order_apply_venue(
        order,
        fields,
        venue_status=new_state.status,
        venue_cum_quantity=new_state.cum_qty,
        venue_notional=new_state.notional,
        placed_quantity=0 if rejected else new_state.quantity,
        failure_reason=REJECTED_REASON.format(text=report.text) if rejected else "",
        now=now,
        save=False,
    )
    batch.changed[str(order.pk)] = order
    return ""


def _refused_for_now(order: Order, error: str, now: datetime) -> None:
    """A transient refusal of this attempt: back to the book for a retry (FAILED past the deadline)."""
    if not order.in_flight:
        return
    _back_to_book(Outcome(claim=Claim(order, order.placement_attempts), error=error), now)


def _not_held(order: Order, now: datetime) -> None:
    """The venue says it does not hold the order: only meaningful for one still in flight."""
    if not order.in_flight:
        return
    claim = Claim(order, order.placement_attempts, status_check=True)
    _back_to_book(
        Outcome(claim=claim, not_held=True, error=NOT_HELD_ERROR.format(attempt=claim.attempt)), now
    )


def _back_to_book(outcome, now: datetime) -> None:
    """Record a definite "not at the venue" for the attempt; a returned order is queued for matching."""
    order = outcome.claim.order
    if placement_record_refusal(outcome, now):
        enqueue_order_processing(order.pk, order.instrument, order.placement_attempts)
    order.refresh_from_db()


def _state(order: Order) -> reports.VenueOrder:
    """The venue state of a locked order: the applier's copy if it still agrees with the row."""
    key = str(order.pk)
    cached = _states.get(key)
    if not order.venue_status and cached is None:
        # The venue never answered about it: no executions, no cancel request to read.
        return reports.restore(
            cl_ord_id=key,
            quantity=order.quantity - order.matched_quantity,
            status=None,
            cum_qty=order.venue_cum_quantity,
            executions=(),
        )
    status = reports.OrdStatus(order.venue_status) if order.venue_status else None
    if (
        cached is not None
        # What this attempt sent: the order may have matched more here since the copy was
        # made (an attempt the venue did not hold, back in our book, then sent again).
        and cached.quantity == order.quantity - order.matched_quantity
        and cached.status == status
        and cached.cum_qty == order.venue_cum_quantity
        and cached.filled_quantity == order.filled_quantity - order.matched_quantity
        # A cancel requested since (the API's) is not in the copy yet.
        and (order.status != Order.Status.PENDING_CANCEL or cached.cancel_pending)
    ):
        return cached
    rows = list(order.cancel_requests.values_list("cl_ord_id", "rejected_at"))
    state = reports.restore(
        cl_ord_id=key,
        quantity=order.quantity - order.matched_quantity,
        status=status,
        cum_qty=order.venue_cum_quantity,
        executions=[
            reports.Execution(e.exec_id, e.quantity, e.price, e.cum_quantity, e.executed_at)
            for e in Execution.objects.filter(order=order)
        ],
        cancels=[cl_ord_id for cl_ord_id, _ in rows],
        cancel_rejects=[cl_ord_id for cl_ord_id, rejected_at in rows if rejected_at is not None],
    )
    _states[key] = state
    return state


def _forget_done(keys) -> None:
    """After a batch's writes: drop the states of its orders done at the venue (or all, past the cap)."""
    for key in keys:
        state = _states.get(key)
        if state is not None and state.done:
            del _states[key]
    if len(_states) > STATES_KEPT:
        _states.clear()


def _report(record) -> reports.Report:
    cancel_flow = bool(record.orig_cl_ord_id)
    return reports.Report(
        exec_id=record.exec_id or record.dedupe_key,
        cl_ord_id=_order_key(record.order_cl_ord_id),
        cancel_id=record.cl_ord_id if cancel_flow else "",
        msg_type=record.msg_type,
        exec_type=record.exec_type,
        ord_status=record.ord_status,
        last_qty=_whole(record.last_qty),
        last_px=record.last_px,
        cum_qty=_whole(record.cum_qty),
        leaves_qty=_whole(record.leaves_qty),
        avg_px=record.avg_px,
        transact_time=record.transact_time,
        reason=int(record.ord_rej_reason or record.cxl_rej_reason or 0) or None,
        text=record.text,
        poss_dup=record.poss_dup,
    )


def _quarantine(items: list[tuple]) -> None:
    QuarantinedReport.objects.bulk_create(
        [
            QuarantinedReport(
                report_id=record.id, cl_ord_id=record.order_cl_ord_id, exec_id=record.exec_id, reason=reason
            )
            for record, reason in items
        ],
        ignore_conflicts=True,
    )
    for record, reason in items:
        logger.error(
            "venue report %s (ClOrdID %s, ExecID %s) quarantined: %s",
            record.id,
            record.order_cl_ord_id,
            record.exec_id,
            reason,
        )


@functools.lru_cache(maxsize=65536)
def _order_key(value: str) -> str | None:
    """The canonical form of a ClOrdID that is one of our order ids (a UUID), else None."""
    parsed = _as_uuid(value)
    return str(parsed) if parsed is not None else None


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError):
        return None


def _whole(value: Decimal | None) -> int:
    return int(value) if value is not None else 0
