"""Placing an order's remainder at the exchange: claim, call, record (SPEC §6).

A claim takes orders out of the internal book (``in_flight``), so matching and
cancel never touch an order the exchange may be accepting. Claims and outcomes
are compare-and-set transitions (``orders/transitions.py``) over a batch of
orders: an outcome is recorded only for the attempt that holds the claim; anything
older is stale and matches no row. Only the exchange call itself is per order,
and those run concurrently (``orders/dispatcher.py``).

The rule of money: an attempt whose answer never arrived leaves the order *possibly
at the exchange*. It stays in flight until the exchange's own ``order_status``
says whether it holds the order; only a definite "not held" returns it to the book.
"""

import functools
import logging
import operator
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from exchange.gateway import ExchangeError, OrderRejectedError, get_exchange
from matching.services import instrument_match_pending
from orders import transitions
from orders.models import Order, PlacementAttempt
from orders.plans import RoutePlan
from ordersite import metrics
from ordersite.db import insert_rows, retry_on_deadlock

logger = logging.getLogger("orders.placement")

REJECTED_REASON = "Rejected by the exchange: {error}"
DEADLINE_REASON = (
    "Exchange placement still failing after {attempts} attempts over {deadline:g}s; last error: {error}"
)
NOT_HELD_ERROR = "No answer to attempt {attempt}; the exchange says it does not hold the order"
# An attempt whose outcome is unknown is asked about again this much later.
UNKNOWN_RETRY_SECONDS = 2.0


@dataclass(frozen=True)
class Claim:
    """The right to act on attempt ``attempt`` of ``order`` (a snapshot at claim time).

    ``status_check``: ask the exchange about the attempt instead of sending it.
    """

    order: Order
    attempt: int
    status_check: bool = False


@dataclass(frozen=True)
class Outcome:
    """How one call ended. Exactly one of: accepted, a definite refusal, not held, unknown, stale."""

    claim: Claim
    accepted_quantity: int | None = None
    error: str = ""
    permanent: bool = False
    not_held: bool = False
    unknown: bool = False
    stale: bool = False

    @property
    def accepted(self) -> bool:
        return self.accepted_quantity is not None

    @property
    def refused(self) -> bool:
        """The exchange definitely does not hold the order after this call."""
        return not (self.accepted or self.unknown or self.stale)


def placement_run(*, plan: RoutePlan, exchange=None) -> list[RoutePlan]:
    """Drive one due order through one exchange call, synchronously; return what to schedule next."""
    claims, later = placement_claim(plans=[plan])
    exchange = exchange or get_exchange()
    return later + placement_record([placement_call(claim, exchange) for claim in claims])


def placement_send(*, plans: Iterable[RoutePlan]) -> list[RoutePlan]:
    """Venue transport (SPEC §9): claim the due orders and queue their messages, in one transaction.

    A new attempt queues its NewOrderSingle, a status check its OrderStatusRequest;
    ``run_gateway`` sends them in order. Returns the plans of orders due later.
    """
    from orders.venue import venue_send

    return _claim_and_queue(list(plans), venue_send)


@retry_on_deadlock
def _claim_and_queue(plans: list[RoutePlan], queue) -> list[RoutePlan]:
    with transaction.atomic():
        claims, later = placement_claim(plans=plans)
        queue(claims)
    return later


# --- Claim ------------------------------------------------------------------------------


@retry_on_deadlock
def placement_claim(
    *, plans: Iterable[RoutePlan], now: datetime | None = None
) -> tuple[list[Claim], list[RoutePlan]]:
    """Claim the orders of ``plans`` for one exchange call each.

    Returns the claims, and plans for orders that rest until later than planned.
    A due plan claims an order still resting (a new attempt); a recovery plan
    claims an order still in flight for the attempt it names (a status check).
    Anything else — terminal, matched, cancelled, waiting for its matching pass
    (which plans it again), or moved on past the named attempt — is dropped.

    One transaction (part of the caller's, if any): a deadlock victim's retry starts
    over from orders that are still resting. Committed apart, a claim whose attempt
    rows then lost a deadlock left its orders in flight with no call to answer, until
    the sweeper asked the exchange about them.
    """
    now = now or timezone.now()
    plans = list(plans)
    due = [plan.order_id for plan in plans if not plan.recover]
    lost = [(plan.order_id, plan.attempt) for plan in plans if plan.recover]
    with transaction.atomic(savepoint=False):
        transitions.orders_claim_for_call(due, now)
        transitions.orders_claim_for_status(lost, now)

        ids = [plan.order_id for plan in plans]
        claimed = list(Order.objects.in_flight().filter(pk__in=ids, last_attempt_at=now))
        later = _later_plans([pk for pk in due if pk not in {order.pk for order in claimed}], now)
        if not claimed:
            return [], later
        checked = {pk for pk, _ in lost}
        claims = [Claim(order=o, attempt=o.placement_attempts, status_check=o.pk in checked) for o in claimed]
        attempts = [
            PlacementAttempt(
                order=c.order, number=c.attempt, quantity=c.order.remaining_quantity, started_at=now
            )
            for c in claims
            if not c.status_check
        ]
        insert_rows(attempts)
    return claims, later


def _later_plans(order_ids: list, now: datetime) -> list[RoutePlan]:
    if not order_ids:
        return []
    return [
        RoutePlan(order_id=pk, instrument=instrument, route_at=route_at)
        for pk, instrument, route_at in Order.objects.resting()
        .filter(pk__in=order_ids, route_at__gt=now)
        .values_list("pk", "instrument", "route_at")
    ]


# --- Call -------------------------------------------------------------------------------


def placement_call(claim: Claim, exchange) -> Outcome:
    """One exchange call for a claim; never raises. Only the exchange's own ledger is written."""
    try:
        if claim.status_check:
            return _ask(claim, exchange)
        if not _still_current(claim):
            # Claimed again meanwhile (a sweep's status check, a later attempt): sending
            # now could land an order nobody is waiting for.
            logger.warning("order %s: attempt %s is stale, not sent", claim.order.pk, claim.attempt)
            return Outcome(claim=claim, stale=True)
        return _send(claim, exchange)
    except Exception:
        # No answer: the order may or may not be at the exchange. It stays in flight
        # and the exchange is asked about it.
        logger.exception(
            "order %s: attempt %s has no answer; asking the exchange",
            claim.order.pk,
            claim.attempt,
            extra={"order_id": claim.order.pk},
        )
        return Outcome(claim=claim, unknown=True)


def _still_current(claim: Claim) -> bool:
    return (
        Order.objects.in_flight()
        .filter(
            pk=claim.order.pk, placement_attempts=claim.attempt, last_attempt_at=claim.order.last_attempt_at
        )
        .exists()
    )


def _send(claim: Claim, exchange) -> Outcome:
    started = time.perf_counter()
    try:
        ack = exchange.place_order(claim.order)
    except OrderRejectedError as exc:
        metrics.exchange_call("rejected", started)
        return Outcome(claim=claim, error=str(exc), permanent=True)
    except ExchangeError as exc:
        metrics.exchange_call("failed", started)
        return Outcome(claim=claim, error=str(exc))
    except Exception:
        metrics.exchange_call("error", started)
        raise
    metrics.exchange_call("accepted", started)
    return Outcome(claim=claim, accepted_quantity=ack.quantity)


def _ask(claim: Claim, exchange) -> Outcome:
    """Does the exchange hold the order? Only its own answer ends the doubt."""
    try:
        status = exchange.order_status(claim.order.pk)
    except ExchangeError as exc:
        # A failed question proves nothing about the order: ask again later.
        metrics.status_checked("unknown")
        logger.warning(
            "order %s: status check failed (%s)", claim.order.pk, exc, extra={"order_id": claim.order.pk}
        )
        return Outcome(claim=claim, unknown=True, error=str(exc))
    if status.held:
        metrics.status_checked("held")
        return Outcome(claim=claim, accepted_quantity=status.quantity)
    metrics.status_checked("not_held")
    return Outcome(claim=claim, not_held=True, error=NOT_HELD_ERROR.format(attempt=claim.attempt))


# --- Record -----------------------------------------------------------------------------


def placement_record(outcomes: Iterable[Outcome]) -> list[RoutePlan]:
    """Record the outcomes of exchange calls; return what to schedule next.

    Accepted → SUBMITTED; refused or not held → back in the book (re-matched at
    once, retried after a backoff) or FAILED past the deadline; unknown → still in
    flight, with a status check planned; stale → nothing.
    """
    follow_up, back_in_book = _record_outcomes(list(outcomes))
    for isin in sorted(back_in_book):
        # Back in the book: cross it against what arrived meanwhile, then retry.
        follow_up.extend(instrument_match_pending(isin=isin))
    return follow_up


@retry_on_deadlock
def _record_outcomes(outcomes: list[Outcome]) -> tuple[list[RoutePlan], set[str]]:
    """Record every outcome in one transaction; return the status checks and the instruments to re-match.

    One transaction, so a deadlock victim's retry records them all afresh. Committed
    one by one, refusals recorded before the deadlock made the retry's compare-and-set
    miss them, and their re-match waited for another pass to take their instruments
    along, or for the sweeper. The re-matches run after the commit, in passes of their own.
    """
    now = timezone.now()
    with transaction.atomic():
        accepted = [outcome for outcome in outcomes if outcome.accepted]
        if accepted:
            _record_accepted(accepted, now)
        back_in_book = {
            outcome.claim.order.instrument
            for outcome in outcomes
            if outcome.refused and placement_record_refusal(outcome, now)
        }
    status_checks = [_status_check_plan(outcome.claim, now) for outcome in outcomes if outcome.unknown]
    return status_checks, back_in_book


def placement_status_check_plans(outcomes: Iterable[Outcome]) -> list[RoutePlan]:
    """Status checks for calls whose outcomes could not be recorded: they stay in flight."""
    now = timezone.now()
    return [_status_check_plan(outcome.claim, now) for outcome in outcomes if not outcome.stale]


def _status_check_plan(claim: Claim, now: datetime) -> RoutePlan:
    order = claim.order
    at = now + timedelta(seconds=UNKNOWN_RETRY_SECONDS)
    return RoutePlan(order.pk, order.instrument, at, recover=True, attempt=claim.attempt)


def _record_accepted(accepted: list[Outcome], now: datetime) -> None:
    """The exchange holds the orders: they are SUBMITTED with what it holds."""
    as_sent, other = [], []
    for outcome in accepted:
        (as_sent if outcome.accepted_quantity == outcome.claim.order.remaining_quantity else other).append(
            outcome
        )
    submitted = transitions.orders_accept([(o.claim.order.pk, o.claim.attempt) for o in as_sent], now)
    submitted += sum(_record_other_quantity(outcome, now) for outcome in other)
    placement_attempts_finish(
        [(o.claim.order.pk, o.claim.attempt) for o in accepted], PlacementAttempt.Outcome.ACCEPTED, now
    )
    created = [o.claim.order.created_at for o in accepted]
    transaction.on_commit(functools.partial(metrics.orders_submitted, submitted, created, now))
    if submitted < len(accepted):
        logger.warning("%s stale acceptances ignored", len(accepted) - submitted)
    for outcome in accepted:
        logger.info(
            "order %s: submitted %s at the exchange",
            outcome.claim.order.pk,
            outcome.accepted_quantity,
            extra={"order_id": outcome.claim.order.pk},
        )


def _record_other_quantity(outcome: Outcome, now: datetime) -> int:
    order, quantity = outcome.claim.order, outcome.accepted_quantity
    moved = transitions.order_accept_other_quantity(order.pk, outcome.claim.attempt, quantity, now)
    if moved:
        transaction.on_commit(metrics.quantity_mismatch)
        logger.error(
            "order %s: the exchange holds %s, the remainder sent was %s; placed_quantity follows it",
            order.pk,
            quantity,
            order.remaining_quantity,
            extra={"order_id": order.pk},
        )
    return moved


def placement_record_refusal(outcome: Outcome, now: datetime) -> bool:
    """Record an attempt the exchange definitely does not hold. True when the order went back to the book."""
    claim, error = outcome.claim, outcome.error
    if outcome.not_held:
        status = PlacementAttempt.Outcome.NOT_HELD
    elif outcome.permanent:
        status = PlacementAttempt.Outcome.REJECTED
    else:
        status = PlacementAttempt.Outcome.FAILED
    placement_attempts_finish([(claim.order.pk, claim.attempt)], status, now, error)
    deadline = settings.EXCHANGE_PLACEMENT_DEADLINE
    first_attempt_at = claim.order.first_attempt_at or now
    if outcome.permanent or (now - first_attempt_at).total_seconds() >= deadline:
        reason = REJECTED_REASON if outcome.permanent else DEADLINE_REASON
        failure_reason = reason.format(error=error, attempts=claim.attempt, deadline=deadline)
        if transitions.order_fail(claim.order.pk, claim.attempt, reason=failure_reason, error=error, now=now):
            cause = "rejected" if outcome.permanent else "deadline"
            transaction.on_commit(functools.partial(metrics.order_failed, cause))
            logger.warning(
                "order %s: FAILED: %s", claim.order.pk, failure_reason, extra={"order_id": claim.order.pk}
            )
        return False
    retry_at = now + timedelta(seconds=retry_delay(claim.attempt))
    returned = transitions.order_return_to_book(
        claim.order.pk, claim.attempt, retry_at=retry_at, error=error, now=now
    )
    if returned:
        transaction.on_commit(metrics.placement_retried)
        logger.info(
            "order %s: attempt %s failed (%s), retry at %s",
            claim.order.pk,
            claim.attempt,
            error,
            retry_at,
            extra={"order_id": claim.order.pk},
        )
    return bool(returned)


def retry_delay(attempt: int) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped."""
    ceiling = min(settings.EXCHANGE_RETRY_CAP, settings.EXCHANGE_RETRY_BASE * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def placement_attempts_finish(attempts: list[tuple], outcome: str, now: datetime, error: str = "") -> None:
    """Close the given (order id, attempt number) attempts that are still open (both transports)."""
    if not attempts:
        return
    which = functools.reduce(operator.or_, (Q(order_id=pk, number=number) for pk, number in attempts))
    PlacementAttempt.objects.filter(which, outcome=PlacementAttempt.Outcome.IN_FLIGHT).update(
        outcome=outcome, finished_at=now, error=error
    )
