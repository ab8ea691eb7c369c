"""Folds a FIX venue's execution reports into one order's venue-side state (SPEC §9).

Pure, like ``matching/engine.py`` (the standard library, and ``immutables`` for a
persistent set): the gateway parses reports, this module decides what each one means,
and the database side writes what ``fold`` returns.

The rules, so that duplicates, PossDup resends, replays and shuffled batches all end
in the state the venue's own stream gives when applied once, in order:

* **Executions are facts, keyed by ExecID.** A Trade (150=F) is one execution of
  LastQty at LastPx. Its CumQty places it: it fills the slice (CumQty - LastQty,
  CumQty] of the order. Slices of distinct executions never overlap, so a Trade is
  applied once whatever its arrival order, and one that overlaps another execution
  (a CumQty step taken twice) is a contradiction.
* **CumQty, LeavesQty and OrdStatus are snapshots.** The venue's CumQty never goes
  down, so the state keeps the highest one seen; a lower one on a late New,
  PendingCancel or status answer is simply stale and changes nothing. Terminal
  statuses (Filled, Canceled, Expired, Rejected) never change, and a terminal
  report's CumQty is final: no report may exceed it, and a terminal report below a
  CumQty already seen is the CumQty going down, a contradiction.
* **A Trade after Canceled (or Expired) is still an execution** when its slice lies
  within the final CumQty: the venue executed it before the cancel and the report
  arrived late. The status stays Canceled.
* **Status answers (150=I) never create executions.** They advance the snapshot
  like any report; where the venue's CumQty is ahead of the executions received,
  ``missing_quantity`` asks for a resend or reconciliation. An answer with
  OrdStatus=8 and OrdRejReason "unknown order" is a definite "not held" (SPEC §6).
  Status answers are not deduplicated: venues reuse their ExecIDs, and applying a
  snapshot twice changes nothing anyway.
* **Cancels are tracked per cancel request** (its ClOrdID): one is pending from our
  request or the venue's PendingCancel until an OrderCancelReject for that request,
  in whichever order they arrive, so an old reject resent late cannot undo a newer
  cancel. OrdStatus 6 on other reports adds nothing: it names no request.
* **Contradictions are quarantined**: the state stays as it was and the effect says
  why (unknown ExecType, CumQty outside the order, CumQty + LeavesQty not the order
  quantity, CumQty going down, LastQty not matching a CumQty step, conflicting
  terminal statuses, "unknown order" for an order the venue acknowledged).
* **The order shows a terminal status only once its executions are complete**:
  until the venue's CumQty is covered, the owed quantity counts as remaining.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from immutables import Map

ZERO = Decimal(0)
PRICE_STEP = Decimal("0.0001")  # as Order.average_match_price


class MsgType(StrEnum):
    EXECUTION_REPORT = "8"
    ORDER_CANCEL_REJECT = "9"


class ExecType(StrEnum):
    NEW = "0"
    CANCELED = "4"
    PENDING_CANCEL = "6"
    REJECTED = "8"
    EXPIRED = "C"
    TRADE = "F"
    ORDER_STATUS = "I"


class OrdStatus(StrEnum):
    NEW = "0"
    PARTIALLY_FILLED = "1"
    FILLED = "2"
    CANCELED = "4"
    PENDING_CANCEL = "6"
    REJECTED = "8"
    EXPIRED = "C"


TERMINAL = frozenset({OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.EXPIRED, OrdStatus.REJECTED})
WORKING = frozenset(OrdStatus) - TERMINAL
UNKNOWN_ORDER = 5  # OrdRejReason (103)

# The OrdStatus each ExecType may carry; a fill during a pending cancel keeps OrdStatus 6.
_STATUSES_FOR = {
    ExecType.NEW: {OrdStatus.NEW},
    ExecType.TRADE: {OrdStatus.PARTIALLY_FILLED, OrdStatus.FILLED, OrdStatus.PENDING_CANCEL},
    ExecType.PENDING_CANCEL: {OrdStatus.PENDING_CANCEL},
    ExecType.CANCELED: {OrdStatus.CANCELED},
    ExecType.EXPIRED: {OrdStatus.EXPIRED},
    ExecType.REJECTED: {OrdStatus.REJECTED},
    ExecType.ORDER_STATUS: set(OrdStatus),
}


class Status(StrEnum):
    """An order's public status (SPEC §4, §9)."""

    OPEN = "OPEN"
    PARTIAL = "PARTIAL"
    MATCHED = "MATCHED"
    SUBMITTED = "SUBMITTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    PENDING_CANCEL = "PENDING_CANCEL"
    FAILED = "FAILED"


_FINAL_STATUS = {
    OrdStatus.FILLED: Status.FILLED,
    OrdStatus.CANCELED: Status.CANCELLED,
    OrdStatus.EXPIRED: Status.EXPIRED,
    OrdStatus.REJECTED: Status.REJECTED,
}


@dataclass(frozen=True, slots=True)
class Report:
    """One parsed ExecutionReport (35=8) or OrderCancelReject (35=9) about our order.

    ``cl_ord_id`` is our order's UUID (OrigClOrdID on answers to a cancel);
    ``cancel_id`` the cancel request's ClOrdID on a PendingCancel, Canceled or
    cancel reject. A cancel reject has no ExecID (``exec_id`` is then unused).
    """

    exec_id: str
    cl_ord_id: str
    cancel_id: str = ""
    msg_type: str = MsgType.EXECUTION_REPORT
    exec_type: str = ExecType.NEW
    ord_status: str = OrdStatus.NEW
    last_qty: int = 0
    last_px: Decimal | None = None
    cum_qty: int = 0
    leaves_qty: int = 0
    avg_px: Decimal | None = None
    transact_time: datetime | None = None
    reason: int | None = None  # OrdRejReason (103) or CxlRejReason (102)
    text: str = ""
    poss_dup: bool = False  # informational: identity is the ExecID


@dataclass(frozen=True, slots=True)
class Execution:
    """One venue fill, as the database side stores it (``exec_id`` unique)."""

    exec_id: str
    quantity: int
    price: Decimal
    cum_qty: int
    transact_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """What we know of one order at the venue.

    ``status`` is None until the venue first answers. ``cum_qty`` is the highest
    CumQty it reported (final once terminal); ``filled_quantity`` and ``notional``
    sum the executions received, whose CumQty slices ``slices`` covers (merged).
    ``applied`` holds the ExecIDs of every execution report folded but status
    answers, as a persistent set (an ``immutables.Map`` of ExecID to None: adding one
    shares the rest, so a fill costs the same on an order's ten-thousandth as on its
    first, where a frozenset copied them all); ``cancels`` the cancel requests made,
    ``cancel_rejects`` those refused.
    """

    cl_ord_id: str
    quantity: int
    status: OrdStatus | None = None
    cum_qty: int = 0
    filled_quantity: int = 0
    notional: Decimal = ZERO
    applied: Map = Map()
    slices: tuple[tuple[int, int], ...] = ()
    cancels: frozenset[str] = frozenset()
    cancel_rejects: frozenset[str] = frozenset()

    @property
    def cancel_pending(self) -> bool:
        return bool(self.cancels - self.cancel_rejects)

    @property
    def missing_quantity(self) -> int:
        """Executed at the venue by its CumQty, with no execution received yet."""
        return self.cum_qty - self.filled_quantity

    @property
    def done(self) -> bool:
        return self.status in TERMINAL and not self.missing_quantity


@dataclass(frozen=True, slots=True)
class Effect:
    """What one report changed, for the database side to write (executions, events)."""

    executions: tuple[Execution, ...] = ()
    status: OrdStatus | None = None  # the venue status, when it changed
    cancel_rejected: bool = False
    missing_quantity: int = 0  # > 0: ask the venue for a resend or a status
    not_held: bool = False  # the venue definitely does not hold the order
    duplicate: bool = False
    quarantine: str = ""  # why the report contradicts the state; nothing was applied

    @property
    def cancel_confirmed(self) -> bool:
        return self.status == OrdStatus.CANCELED


@dataclass(frozen=True, slots=True)
class OrderFields:
    status: Status
    filled_quantity: int
    average_fill_price: Decimal | None
    remaining_quantity: int
    cancelled_quantity: int


def restore(
    *,
    cl_ord_id: str,
    quantity: int,
    status: OrdStatus | None,
    cum_qty: int,
    executions: Iterable[Execution],
    applied: Iterable[str] = (),
    cancels: Iterable[str] = (),
    cancel_rejects: Iterable[str] = (),
) -> VenueOrder:
    """The state from what the database stores: venue columns, executions, cancel requests.

    Execution rows give the trade ExecIDs; ``applied`` (other ExecIDs the journal holds)
    is optional, since every other report folds to no change when repeated: it only
    turns that no-op into an effect marked ``duplicate``.
    """
    executions = list(executions)
    slices = _merged((e.cum_qty - e.quantity, e.cum_qty) for e in executions)
    return VenueOrder(
        cl_ord_id=cl_ord_id,
        quantity=quantity,
        status=status,
        cum_qty=cum_qty,
        filled_quantity=sum(e.quantity for e in executions),
        notional=sum((e.quantity * e.price for e in executions), ZERO),
        applied=exec_id_set([*applied, *(e.exec_id for e in executions)]),
        slices=slices,
        cancels=frozenset(cancels),
        cancel_rejects=frozenset(cancel_rejects),
    )


def exec_id_set(exec_ids: Iterable[str]) -> Map:
    """ExecIDs as ``VenueOrder.applied`` holds them."""
    return Map((exec_id, None) for exec_id in exec_ids)


def cancel_requested(state: VenueOrder, cancel_id: str) -> VenueOrder:
    """Our cancel request ``cancel_id`` went out: pending cancel until the venue answers."""
    if state.status in TERMINAL:
        return state
    return _with(state, cancels=state.cancels | {cancel_id})


def fold(state: VenueOrder, report: Report) -> tuple[VenueOrder, Effect]:
    """Apply one report; a duplicate or a contradiction leaves the state as it was."""
    if _already_folded(state, report):
        return state, Effect(duplicate=True)
    problem = _contradiction(state, report)
    if problem:
        return state, Effect(quarantine=problem)
    if report.msg_type == MsgType.ORDER_CANCEL_REJECT:
        new = _with(state, cancel_rejects=state.cancel_rejects | {report.cancel_id})
        return new, Effect(cancel_rejected=True, status=_changed(state, new))
    if _says_not_held(report):
        return state, Effect(not_held=True)

    executions = ()
    filled, notional, slices, cancels = state.filled_quantity, state.notional, state.slices, state.cancels
    if report.exec_type == ExecType.TRADE:
        execution = Execution(
            report.exec_id, report.last_qty, report.last_px, report.cum_qty, report.transact_time
        )
        executions = (execution,)
        filled += execution.quantity
        notional += execution.quantity * execution.price
        slices = _cover(slices, report.cum_qty - report.last_qty, report.cum_qty)
    elif report.exec_type == ExecType.PENDING_CANCEL:
        cancels = cancels | {report.cancel_id}
    new = _with(
        state,
        final=report.ord_status if report.ord_status in TERMINAL else None,
        answered=True,
        cum_qty=max(state.cum_qty, report.cum_qty),
        filled_quantity=filled,
        notional=notional,
        cancels=cancels,
        applied=state.applied if _is_status_answer(report) else state.applied.set(report.exec_id, None),
        slices=slices,
    )
    effect = Effect(executions=executions, status=_changed(state, new), missing_quantity=new.missing_quantity)
    return new, effect


def fold_many(state: VenueOrder, reports: Iterable[Report]) -> tuple[VenueOrder, list[Effect]]:
    effects = []
    for report in reports:
        state, effect = fold(state, report)
        effects.append(effect)
    return state, effects


def order_fields(
    *,
    quantity: int,
    matched_quantity: int,
    matched_notional: Decimal,
    venue: VenueOrder | None,
    ended: Status | None = None,
) -> OrderFields:
    """An order's public fields from its internal matches and what the venue holds.

    ``venue`` is None while nothing was sent (or the venue said it holds nothing);
    ``ended`` is CANCELLED or FAILED for an order that ended before reaching the venue.
    """
    if venue is not None and matched_quantity + venue.quantity != quantity:
        raise ValueError(f"matched {matched_quantity} + sent {venue.quantity} != quantity {quantity}")
    filled = matched_quantity
    notional = matched_notional
    cancelled = 0
    if venue is None or venue.status is None:
        if ended is not None:
            cancelled = quantity - filled
            status = ended
        else:
            status = Status.OPEN if not filled else Status.PARTIAL if filled < quantity else Status.MATCHED
    else:
        filled += venue.filled_quantity
        notional += venue.notional
        if venue.status in TERMINAL:
            cancelled = venue.quantity - venue.cum_qty
        if venue.done:
            status = _FINAL_STATUS[venue.status]
        elif venue.cancel_pending or venue.status == OrdStatus.CANCELED:
            status = Status.PENDING_CANCEL
        else:
            status = Status.PARTIALLY_FILLED if venue.filled_quantity else Status.SUBMITTED
    average = (notional / filled).quantize(PRICE_STEP) if filled else None
    return OrderFields(status, filled, average, quantity - filled - cancelled, cancelled)


# --- internals ---------------------------------------------------------------------


def _with(state: VenueOrder, *, final: OrdStatus | None = None, answered: bool = False, **changes):
    """The state with ``changes`` and its venue status recomputed; a terminal one never changes.

    ``answered``: the change comes from an execution report, so the venue holds the order.
    """
    new = replace(state, **changes)
    if state.status in TERMINAL:
        status = state.status
    elif final is not None:
        status = final
    elif state.status is None and not answered:
        status = None
    elif new.cancel_pending:
        status = OrdStatus.PENDING_CANCEL
    else:
        status = OrdStatus.PARTIALLY_FILLED if new.cum_qty else OrdStatus.NEW
    return replace(new, status=status)


def _changed(old: VenueOrder, new: VenueOrder) -> OrdStatus | None:
    return new.status if new.status != old.status else None


def _is_status_answer(report: Report) -> bool:
    return report.msg_type == MsgType.EXECUTION_REPORT and report.exec_type == ExecType.ORDER_STATUS


def _already_folded(state: VenueOrder, report: Report) -> bool:
    if report.cl_ord_id != state.cl_ord_id or _is_status_answer(report):
        return False
    if report.msg_type == MsgType.ORDER_CANCEL_REJECT:
        return report.cancel_id in state.cancel_rejects
    return report.exec_id in state.applied


def _says_not_held(report: Report) -> bool:
    return (
        _is_status_answer(report)
        and report.ord_status == OrdStatus.REJECTED
        and report.reason == UNKNOWN_ORDER
    )


def _cover(slices, start: int, end: int) -> tuple[tuple[int, int], ...]:
    return _merged((*slices, (start, end)))


def _merged(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Ranges (lo, hi], sorted, with those that touch joined into one."""
    merged = []
    for lo, hi in sorted(ranges):
        if merged and merged[-1][1] == lo:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _contradiction(state: VenueOrder, report: Report) -> str:
    """Why ``report`` cannot be true of the order as we know it; empty if it can."""
    if report.cl_ord_id != state.cl_ord_id:
        return f"report for order {report.cl_ord_id}, not {state.cl_ord_id}"
    if report.msg_type == MsgType.ORDER_CANCEL_REJECT:
        return ""
    if report.msg_type != MsgType.EXECUTION_REPORT:
        return f"unknown MsgType {report.msg_type!r}"
    if report.exec_type not in _STATUSES_FOR:
        return f"unknown ExecType {report.exec_type!r}"
    status, cum = report.ord_status, report.cum_qty
    if status not in _STATUSES_FOR[report.exec_type]:
        return f"OrdStatus {status!r} with ExecType {report.exec_type!r}"
    if _says_not_held(report):
        return "venue says it does not know an order it acknowledged" if state.status is not None else ""
    if not 0 <= cum <= state.quantity or report.leaves_qty < 0:
        return f"CumQty {cum} outside the order quantity {state.quantity}"
    if status in WORKING and cum + report.leaves_qty != state.quantity:
        return f"CumQty {cum} + LeavesQty {report.leaves_qty} != quantity {state.quantity}"
    if status in TERMINAL and report.leaves_qty:
        return f"LeavesQty {report.leaves_qty} on a terminal report"
    expected_cum = {
        OrdStatus.NEW: cum == 0,
        OrdStatus.REJECTED: cum == 0,
        OrdStatus.PARTIALLY_FILLED: 0 < cum < state.quantity,
        OrdStatus.FILLED: cum == state.quantity,
    }
    if not expected_cum.get(status, True):
        return f"CumQty {cum} with OrdStatus {status!r}"
    if state.status in TERMINAL:
        if status in TERMINAL and status != state.status:
            return f"OrdStatus {status!r} after final OrdStatus {state.status!r}"
        if cum > state.cum_qty:
            return f"CumQty {cum} beyond the final CumQty {state.cum_qty}"
    if status in TERMINAL and cum < state.cum_qty:
        return f"final CumQty {cum} below CumQty {state.cum_qty} already reported (CumQty going down)"
    if report.exec_type == ExecType.TRADE:
        return _trade_contradiction(state, report)
    return ""


def _trade_contradiction(state: VenueOrder, report: Report) -> str:
    price = report.last_px
    if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
        return f"LastPx {price!r} is not a positive Decimal"
    if not 0 < report.last_qty <= report.cum_qty:
        return f"LastQty {report.last_qty} does not fit CumQty {report.cum_qty}"
    start = report.cum_qty - report.last_qty
    for lo, hi in state.slices:
        if start < hi and lo < report.cum_qty:
            return (
                f"LastQty {report.last_qty} at CumQty {report.cum_qty} overlaps executions "
                f"already received for ({lo}, {hi}] (CumQty step taken twice)"
            )
    return ""
