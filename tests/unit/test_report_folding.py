"""Folding a venue's execution reports into an order (no database, no Django settings)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orders.reports import (
    TERMINAL,
    UNKNOWN_ORDER,
    Effect,
    ExecType,
    MsgType,
    OrderFields,
    OrdStatus,
    Report,
    Status,
    VenueOrder,
    cancel_requested,
    exec_id_set,
    fold,
    fold_many,
    order_fields,
    restore,
)

D = Decimal
ORDER = "7f1c0d3e-0000-4000-8000-000000000001"


class Venue:
    """A venue that reports one order consistently: the stream its journal would hold."""

    def __init__(self, quantity: int) -> None:
        self.quantity = quantity
        self.cum = 0
        self.status = OrdStatus.NEW
        self.reports: list[Report] = []
        self._ids = count(1)

    def _report(self, exec_type, status, last_qty=0, last_px=None, cancel_id=""):
        self.cum += last_qty
        self.status = status
        report = Report(
            exec_id=f"E{next(self._ids)}",
            cl_ord_id=ORDER,
            cancel_id=cancel_id,
            exec_type=exec_type,
            ord_status=status,
            last_qty=last_qty,
            last_px=last_px,
            cum_qty=self.cum,
            leaves_qty=0 if status in TERMINAL else self.quantity - self.cum,
        )
        self.reports.append(report)
        return report

    def new(self):
        return self._report(ExecType.NEW, OrdStatus.NEW)

    def trade(self, qty, price="10.00"):
        if self.cum + qty == self.quantity:
            status = OrdStatus.FILLED
        elif self.status == OrdStatus.PENDING_CANCEL:
            status = OrdStatus.PENDING_CANCEL
        else:
            status = OrdStatus.PARTIALLY_FILLED
        return self._report(ExecType.TRADE, status, qty, D(price))

    def pending_cancel(self, cancel_id="C1"):
        return self._report(ExecType.PENDING_CANCEL, OrdStatus.PENDING_CANCEL, cancel_id=cancel_id)

    def canceled(self, cancel_id="C1"):
        return self._report(ExecType.CANCELED, OrdStatus.CANCELED, cancel_id=cancel_id)

    def expired(self):
        return self._report(ExecType.EXPIRED, OrdStatus.EXPIRED)

    def rejected(self):
        return self._report(ExecType.REJECTED, OrdStatus.REJECTED)

    def cancel_reject(self, cancel_id="C1"):
        report = Report(
            exec_id="",
            cl_ord_id=ORDER,
            cancel_id=cancel_id,
            msg_type=MsgType.ORDER_CANCEL_REJECT,
            ord_status=self.status,
        )
        self.reports.append(report)
        return report

    def status_answer(self):
        """What an OrderStatusRequest would get now; not part of the journal's stream."""
        return Report(
            exec_id="0",
            cl_ord_id=ORDER,
            exec_type=ExecType.ORDER_STATUS,
            ord_status=self.status,
            cum_qty=self.cum,
            leaves_qty=0 if self.status in TERMINAL else self.quantity - self.cum,
        )


def start(quantity=100):
    return VenueOrder(cl_ord_id=ORDER, quantity=quantity)


def folded(reports, quantity=100):
    state, effects = fold_many(start(quantity), reports)
    assert not [e.quarantine for e in effects if e.quarantine]
    return state


def assert_quarantined(state, report, reason):
    again, effect = fold(state, report)
    assert again is state
    assert effect.executions == () and effect.status is None
    assert reason in effect.quarantine


def fields(state, matched=0, matched_notional=D(0)):
    return order_fields(
        quantity=matched + state.quantity,
        matched_quantity=matched,
        matched_notional=matched_notional,
        venue=state,
    )


# --- executions and idempotency ------------------------------------------------------


def test_trades_add_executions_with_quantity_and_price():
    venue = Venue(100)
    state = folded([venue.new(), venue.trade(30, "10.00")])
    state, effect = fold(state, venue.trade(20, "10.30"))
    assert [(e.exec_id, e.quantity, e.price, e.cum_qty) for e in effect.executions] == [
        ("E3", 20, D("10.30"), 50)
    ]
    assert (state.filled_quantity, state.notional, state.cum_qty) == (50, D("506.00"), 50)
    assert state.status == OrdStatus.PARTIALLY_FILLED
    assert fields(state).average_fill_price == D("10.1200")


def test_duplicate_exec_id_changes_nothing():
    venue = Venue(100)
    state = folded([venue.new(), venue.trade(30)])
    again, effect = fold(state, replace(venue.reports[-1], poss_dup=True))
    assert effect == Effect(duplicate=True)
    assert again is state


def test_possdup_replay_of_the_whole_stream_changes_nothing():
    venue = Venue(100)
    venue.new()
    venue.trade(40)
    venue.trade(60)
    state = folded(venue.reports)
    again, effects = fold_many(state, [replace(r, poss_dup=True) for r in venue.reports])
    assert again == state
    assert all(e == Effect(duplicate=True) for e in effects)


def test_trades_arriving_out_of_order_are_both_executions():
    venue = Venue(100)
    new, first, second = venue.new(), venue.trade(30), venue.trade(20)
    state, effects = fold_many(start(), [new, second])
    assert effects[1].missing_quantity == 30
    state, effect = fold(state, first)
    assert effect.executions[0].exec_id == first.exec_id and effect.missing_quantity == 0
    assert state == folded([new, first, second])


# --- never backwards -----------------------------------------------------------------


def test_late_new_after_fill_does_not_move_back():
    venue = Venue(100)
    new, trade = venue.new(), venue.trade(30)
    state, effect = fold(folded([trade]), new)
    assert effect == Effect()
    assert state.status == OrdStatus.PARTIALLY_FILLED
    assert fields(state).status == Status.PARTIALLY_FILLED


def test_late_pending_cancel_after_terminal_changes_nothing_visible():
    venue = Venue(100)
    new, pending, canceled = venue.new(), venue.pending_cancel(), venue.canceled()
    before = folded([new, canceled])
    state, effect = fold(before, pending)
    assert effect == Effect()
    assert state.status == OrdStatus.CANCELED
    assert fields(state) == fields(before)


def test_terminal_status_never_changes():
    venue = Venue(100)
    state = folded([venue.new(), venue.expired()])
    assert_quarantined(state, replace(venue.canceled(), exec_id="E9"), "after final OrdStatus")


def test_filled_order_stays_filled():
    venue = Venue(10)
    state = folded([venue.new(), venue.trade(10)], quantity=10)
    assert state.status == OrdStatus.FILLED
    assert fields(state).status == Status.FILLED


# --- cancels -------------------------------------------------------------------------


def test_cancel_after_partial_fill_keeps_the_fills():
    venue = Venue(100)
    venue.new()
    venue.trade(30, "10.00")
    state = cancel_requested(folded(venue.reports), "C1")
    assert fields(state).status == Status.PENDING_CANCEL
    state, effects = fold_many(state, [venue.pending_cancel(), venue.canceled()])
    assert effects[-1].cancel_confirmed
    assert (state.filled_quantity, state.cum_qty, state.status) == (30, 30, OrdStatus.CANCELED)
    assert fields(state) == OrderFields(Status.CANCELLED, 30, D("10.0000"), 0, 70)


def test_trade_after_canceled_for_quantity_executed_before_the_cancel_is_an_execution():
    venue = Venue(100)
    new, first, second = venue.new(), venue.trade(30), venue.trade(20, "10.50")
    canceled = venue.canceled()
    state = folded([new, first, canceled])
    assert state.missing_quantity == 20
    assert fields(state).status == Status.PENDING_CANCEL  # cancelled, but fills still owed
    assert fields(state).remaining_quantity == 20
    state, effect = fold(state, second)
    assert [e.quantity for e in effect.executions] == [20]
    assert state.status == OrdStatus.CANCELED
    assert fields(state) == OrderFields(Status.CANCELLED, 50, D("10.2000"), 0, 50)


def test_trade_beyond_the_final_cum_qty_is_quarantined():
    venue = Venue(100)
    venue.new()
    venue.trade(30)
    state = folded([*venue.reports, venue.canceled()])
    late = replace(venue.trade(10), exec_id="E99", ord_status=OrdStatus.PARTIALLY_FILLED, leaves_qty=60)
    assert_quarantined(state, late, "beyond the final CumQty")


def test_cancel_reject_returns_the_order_to_working():
    venue = Venue(100)
    venue.new()
    venue.trade(30)
    state = cancel_requested(folded(venue.reports), "C1")
    state, effect = fold(state, venue.cancel_reject("C1"))
    assert effect.cancel_rejected
    assert effect.status == OrdStatus.PARTIALLY_FILLED
    assert fields(state).status == Status.PARTIALLY_FILLED
    assert fold(state, venue.cancel_reject("C1")) == (state, Effect(duplicate=True))


def test_old_cancel_reject_resent_late_does_not_undo_a_newer_cancel():
    venue = Venue(100)
    new, reject = venue.new(), venue.cancel_reject("C1")
    pending = venue.pending_cancel("C2")
    state = folded([new, pending, reject])
    assert state.cancel_pending
    assert state == folded([new, reject, pending])


# --- status answers ------------------------------------------------------------------


def test_status_answer_never_creates_an_execution():
    venue = Venue(100)
    venue.new()
    venue.trade(30)
    state = folded(venue.reports)
    again, effect = fold(state, venue.status_answer())
    assert effect == Effect()
    assert again == state


def test_status_answer_ahead_of_executions_asks_for_recovery():
    venue = Venue(100)
    venue.new()
    venue.trade(30)
    venue.trade(20)
    state, effect = fold(start(), venue.status_answer())  # the reports themselves were lost
    assert effect.executions == ()
    assert effect.missing_quantity == 50
    assert (state.status, state.filled_quantity, state.cum_qty) == (OrdStatus.PARTIALLY_FILLED, 0, 50)
    assert fields(state).status == Status.SUBMITTED
    assert fields(state).remaining_quantity == 100


def test_status_answer_reconciles_a_missed_final_report():
    venue = Venue(100)
    venue.new()
    venue.trade(30)
    state = folded(venue.reports)
    venue.expired()
    state, effect = fold(state, venue.status_answer())
    assert effect.status == OrdStatus.EXPIRED and effect.missing_quantity == 0
    assert fields(state) == OrderFields(Status.EXPIRED, 30, D("10.0000"), 0, 70)


def test_unknown_order_status_answer_means_not_held():
    answer = Report(
        exec_id="0",
        cl_ord_id=ORDER,
        exec_type=ExecType.ORDER_STATUS,
        ord_status=OrdStatus.REJECTED,
        reason=UNKNOWN_ORDER,
        text="Unknown order",
    )
    state, effect = fold(start(), answer)
    assert effect == Effect(not_held=True)
    assert state == start()
    acknowledged = folded([Venue(100).new()])
    assert_quarantined(acknowledged, answer, "does not know an order it acknowledged")


def test_venue_reject_of_the_new_order():
    state = folded([Venue(100).rejected()])
    assert state.status == OrdStatus.REJECTED
    assert fields(state, matched=5, matched_notional=D("50")) == OrderFields(
        Status.REJECTED, 5, D("10.0000"), 0, 100
    )


# --- contradictions ------------------------------------------------------------------


def _working():
    venue = Venue(100)
    venue.new()
    venue.trade(30)
    venue.trade(20)
    return venue, folded(venue.reports)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (dict(exec_type="Z"), "unknown ExecType"),
        (dict(cl_ord_id="someone-else"), "report for order"),
        (dict(last_qty=10, cum_qty=110, leaves_qty=0, ord_status=OrdStatus.FILLED), "outside the order"),
        (dict(last_qty=10, cum_qty=40, leaves_qty=60), "overlaps executions"),
        (dict(last_qty=15, cum_qty=60, leaves_qty=40), "overlaps executions"),
        (dict(last_qty=10, cum_qty=60, leaves_qty=50), "LeavesQty 50 != quantity"),
        (dict(last_qty=0, cum_qty=60, leaves_qty=40), "LastQty 0"),
        (dict(last_qty=10, cum_qty=60, leaves_qty=40, last_px=None), "LastPx"),
        (dict(ord_status=OrdStatus.NEW, last_qty=10, cum_qty=60, leaves_qty=40), "with ExecType"),
    ],
)
def test_contradicting_trade_is_quarantined(change, reason):
    venue, state = _working()
    assert_quarantined(state, replace(venue.trade(10), exec_id="E99", **change), reason)


def test_cum_qty_going_down_on_a_final_report_is_quarantined():
    venue, state = _working()
    assert_quarantined(state, replace(venue.canceled(), cum_qty=30), "CumQty going down")


def test_fills_beyond_quantity_are_quarantined():
    venue = Venue(10)
    state = folded([venue.new(), venue.trade(10)], quantity=10)
    beyond = replace(venue.trade(5), exec_id="E9", ord_status=OrdStatus.FILLED)
    assert_quarantined(state, beyond, "outside the order quantity")


# --- public fields -------------------------------------------------------------------


def test_public_fields_combine_internal_matches_and_venue_fills():
    venue = Venue(60)
    venue.new()
    venue.trade(20, "11.00")
    state = folded(venue.reports, quantity=60)
    result = fields(state, matched=40, matched_notional=D("400"))
    assert result == OrderFields(Status.PARTIALLY_FILLED, 60, D("10.3333"), 40, 0)


def test_order_not_yet_answered_by_the_venue_keeps_its_internal_status():
    sent = start(60)
    assert fields(sent, matched=40, matched_notional=D("400")).status == Status.PARTIAL
    assert fields(sent).status == Status.OPEN
    assert fields(folded([Venue(60).new()], quantity=60)).status == Status.SUBMITTED


def test_order_ended_before_reaching_the_venue():
    result = order_fields(
        quantity=10, matched_quantity=4, matched_notional=D("40"), venue=None, ended=Status.FAILED
    )
    assert result == OrderFields(Status.FAILED, 4, D("10.0000"), 0, 6)
    matched = order_fields(quantity=10, matched_quantity=10, matched_notional=D("100"), venue=None)
    assert matched.status == Status.MATCHED and matched.remaining_quantity == 0


def test_state_restored_from_stored_rows_folds_on_like_the_original():
    venue = Venue(100)
    new, first, second, third = venue.new(), venue.trade(10), venue.trade(20), venue.trade(30, "10.50")
    state, effects = fold_many(start(), [new, third, first])
    executions = [e for effect in effects for e in effect.executions]
    stored = restore(
        cl_ord_id=ORDER,
        quantity=100,
        status=state.status,
        cum_qty=state.cum_qty,
        executions=executions,
        applied=[new.exec_id],
    )
    assert stored == state
    assert fold(stored, second)[0] == folded([new, first, second, third])


def test_venue_quantity_must_be_what_was_not_matched():
    with pytest.raises(ValueError):
        order_fields(quantity=10, matched_quantity=4, matched_notional=D("40"), venue=start(5))


# --- property: any redelivery of a venue's stream folds to the same order -----------

PRICES = st.sampled_from(["9.99", "10.00", "10.01", "10.25"])


@st.composite
def venue_histories(draw):
    """A venue's stream for one order, and the status answers it could give after each report."""
    venue = Venue(draw(st.integers(1, 40)))
    answers = []

    def then(report_fn, *args):
        report_fn(*args)
        answers.append(venue.status_answer())

    if draw(st.integers(0, 5)) == 0:
        then(venue.rejected)
        return venue, answers
    then(venue.new)
    ending = draw(st.sampled_from(["working", "cancel", "pending", "expire", "fill"]))
    lots = draw(st.lists(st.integers(1, max(1, venue.quantity // 3)), max_size=5))
    reject_at = draw(st.integers(0, len(lots) + 1))
    for i, lot in enumerate(lots):
        if i == reject_at:
            then(venue.cancel_reject, "C0")
        lot = min(lot, venue.quantity - venue.cum)
        if lot:
            then(venue.trade, lot, draw(PRICES))
    if venue.cum < venue.quantity:
        if ending in ("cancel", "pending"):
            then(venue.pending_cancel, "C1")
            if draw(st.booleans()) and venue.cum < venue.quantity:
                then(venue.trade, draw(st.integers(1, venue.quantity - venue.cum)), draw(PRICES))
            if ending == "cancel" and venue.status not in TERMINAL:
                then(venue.canceled, "C1")
        elif ending == "expire":
            then(venue.expired)
        elif ending == "fill":
            then(venue.trade, venue.quantity - venue.cum, draw(PRICES))
    if reject_at == len(lots) + 1 and venue.status in TERMINAL:
        then(venue.cancel_reject, "C9")  # too late
    return venue, answers


# "next" delivers the following report; a skipped one is a gap, resent by a later
# replay or, at the latest, by the recovery at the end of the delivery.
STEPS = ["next", "next", "next", "skip", "skip", "dup", "replay", "status", "status"]
DELIVERY_STEPS = st.lists(st.tuples(st.sampled_from(STEPS), st.integers(0, 99)), min_size=5, max_size=50)


def redeliver(stream, answers, steps):
    delivered, position = [], 0
    for step, n in steps:
        if step in ("next", "skip") and position < len(stream):
            if step == "next":
                delivered.append(stream[position])
            position += 1
        elif step == "dup" and position:
            delivered.append(replace(stream[n % position], poss_dup=True))
        elif step == "replay" and position:
            delivered.extend(replace(r, poss_dup=True) for r in stream[n % position : position])
        elif step == "status":
            delivered.append(answers[n % len(answers)])
    missed = [i for i, r in enumerate(stream) if not any(_same(r, d) for d in delivered)]
    if missed:
        delivered.extend(replace(r, poss_dup=True) for r in stream[missed[0] :])
    return delivered


def _same(report, delivered):
    return replace(report, poss_dup=delivered.poss_dup) == delivered


VENUE_TO_PUBLIC = {
    OrdStatus.NEW: Status.SUBMITTED,
    OrdStatus.PARTIALLY_FILLED: Status.PARTIALLY_FILLED,
    OrdStatus.PENDING_CANCEL: Status.PENDING_CANCEL,
    OrdStatus.FILLED: Status.FILLED,
    OrdStatus.CANCELED: Status.CANCELLED,
    OrdStatus.EXPIRED: Status.EXPIRED,
    OrdStatus.REJECTED: Status.REJECTED,
}


def assert_matches_the_venue(state, venue):
    """Our view equals the venue's journal once every report arrived (SPEC §9)."""
    trades = [r for r in venue.reports if r.exec_type == ExecType.TRADE]
    assert state.status == venue.status
    assert state.cum_qty == state.filled_quantity == venue.cum
    assert state.notional == sum((r.last_qty * r.last_px for r in trades), D(0))
    assert state.missing_quantity == 0


STATUS_RANK = {Status.OPEN: 0, Status.PARTIAL: 0, Status.SUBMITTED: 1, Status.PARTIALLY_FILLED: 2}
STATUS_RANK[Status.PENDING_CANCEL] = 3
FINAL = {Status.FILLED, Status.CANCELLED, Status.EXPIRED, Status.REJECTED}

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(venue_histories(), DELIVERY_STEPS, st.integers(0, 5))
def test_property_any_redelivery_folds_to_the_stream_applied_once(history, steps, matched):
    venue, answers = history
    stream = venue.reports
    expected = folded(stream, quantity=venue.quantity)
    delivered = redeliver(stream, answers, steps)

    def public(state):
        return fields(state, matched=matched, matched_notional=matched * D("10.00"))

    state = start(venue.quantity)
    shown = public(state)
    executions = []
    for i, report in enumerate(delivered):
        before = state
        state, effect = fold(state, report)
        assert not effect.quarantine, (report, effect.quarantine)
        executions.extend(effect.executions)

        now = public(state)
        assert (
            now.filled_quantity + now.remaining_quantity + now.cancelled_quantity == matched + venue.quantity
        )
        assert min(now.filled_quantity, now.remaining_quantity, now.cancelled_quantity) >= 0
        assert now.filled_quantity >= shown.filled_quantity
        assert state.cum_qty >= before.cum_qty
        if shown.status in FINAL:
            assert now == shown
        elif now.status not in FINAL:
            assert STATUS_RANK[now.status] >= STATUS_RANK[shown.status]
        shown = now

        trades_so_far = {r.exec_id for r in delivered[: i + 1] if r.exec_type == ExecType.TRADE}
        assert [e.exec_id for e in executions] == list(dict.fromkeys(e.exec_id for e in executions))
        assert {e.exec_id for e in executions} == trades_so_far
        assert state.filled_quantity == sum(e.quantity for e in executions)

    assert state == expected
    assert_matches_the_venue(state, venue)
    assert public(state) == public(expected)
    assert public(state).status == VENUE_TO_PUBLIC[venue.status]
    assert public(state).filled_quantity == matched + venue.cum
    stored = restore(
        cl_ord_id=ORDER,
        quantity=venue.quantity,
        status=state.status,
        cum_qty=state.cum_qty,
        executions=reversed(executions),
        applied=state.applied,
        cancels=state.cancels,
        cancel_rejects=state.cancel_rejects,
    )
    assert stored == state
    # Without the journal's non-trade ExecIDs, a replay of everything still changes nothing.
    bare = replace(stored, applied=exec_id_set(e.exec_id for e in executions))
    again, effects = fold_many(bare, delivered)
    assert not any(e.quarantine or e.executions or e.status for e in effects)
    assert again == state


@PROPERTY_SETTINGS
@given(venue_histories(), st.randoms(use_true_random=False))
def test_property_any_order_of_the_distinct_reports_folds_the_same(history, rng):
    venue, answers = history
    shuffled = [*venue.reports, *answers]
    rng.shuffle(shuffled)
    state = folded(shuffled, quantity=venue.quantity)
    assert state == folded(venue.reports, quantity=venue.quantity)
    assert_matches_the_venue(state, venue)
