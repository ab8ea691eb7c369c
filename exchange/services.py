"""Placing an order's remainder at the exchange: claim, call, record (SPEC §6).

A claim takes the order out of the internal book (``in_flight``) under the
instrument lock, so matching and cancel never touch an order the exchange may be
accepting. The outcome is recorded only by the attempt that holds the claim;
anything older is stale and ignored.
"""

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from exchange.gateway import ExchangeError, OrderRejectedError, get_exchange
from matching.locks import instrument_lock
from matching.services import RoutePlan, instrument_match_pending
from orders.models import Order, PlacementAttempt

logger = logging.getLogger("exchange.placement")

REJECTED_REASON = "Rejected by the exchange: {error}"
DEADLINE_REASON = (
    "Exchange placement still failing after {attempts} attempts over {deadline:g}s; "
    "last error: {error}"
)


@dataclass(frozen=True)
class Claim:
    order: Order
    attempt: int


def placement_run(*, plan: RoutePlan, exchange=None) -> list[RoutePlan]:
    """Drive one due order through one exchange attempt; return what to schedule next."""
    claim = placement_claim(plan=plan)
    if isinstance(claim, RoutePlan):
        return [claim]
    if claim is None:
        return []
    exchange = exchange or get_exchange()
    try:
        ack = exchange.place_order(claim.order)
    except OrderRejectedError as exc:
        placement_record_failure(claim=claim, error=str(exc), permanent=True)
        return []
    except ExchangeError as exc:
        if placement_record_failure(claim=claim, error=str(exc), permanent=False):
            # Back in the book: cross it against what arrived meanwhile, then retry.
            return instrument_match_pending(isin=plan.instrument)
        return []
    placement_record_accepted(claim=claim, quantity=ack.quantity)
    return []


def placement_claim(*, plan: RoutePlan, now: datetime | None = None) -> Claim | RoutePlan | None:
    """Take a due order out of the book for one exchange call.

    Returns the claim; a later plan when the order is not due yet; or None when
    there is nothing to place (terminal, cancelled, matched, in flight elsewhere,
    or waiting for its matching pass, which schedules it again).
    """
    with transaction.atomic():
        instrument_lock(plan.instrument)
        now = now or timezone.now()
        order = Order.objects.select_for_update().filter(pk=plan.order_id).first()
        if order is None or order.status not in Order.WORKING_STATUSES:
            return None
        if order.needs_match or order.remaining_quantity == 0:
            return None
        if order.in_flight != plan.recover:
            return None
        if plan.recover:
            PlacementAttempt.objects.filter(
                order=order, number=order.placement_attempts, outcome=PlacementAttempt.Outcome.IN_FLIGHT
            ).update(outcome=PlacementAttempt.Outcome.ABANDONED, finished_at=now)
        elif order.route_at is not None and order.route_at > now:
            return RoutePlan(order_id=order.pk, instrument=order.instrument, route_at=order.route_at)
        order.in_flight = True
        order.placement_attempts += 1
        order.last_attempt_at = now
        order.first_attempt_at = order.first_attempt_at or now
        order.save_changes("in_flight", "placement_attempts", "last_attempt_at", "first_attempt_at")
        PlacementAttempt.objects.create(
            order=order, number=order.placement_attempts, quantity=order.remaining_quantity, started_at=now
        )
        return Claim(order=order, attempt=order.placement_attempts)


def placement_record_accepted(*, claim: Claim, quantity: int) -> None:
    """The exchange took the remainder: the order is SUBMITTED."""
    with transaction.atomic():
        now = timezone.now()
        order = Order.objects.select_for_update().get(pk=claim.order.pk)
        _finish_attempt(claim, PlacementAttempt.Outcome.ACCEPTED, now)
        if not _holds_claim(order, claim):
            return
        if quantity != order.remaining_quantity:
            logger.error(
                "order %s: exchange acknowledged %s, remainder is %s",
                order.pk, quantity, order.remaining_quantity,
            )
        order.placed_quantity += order.remaining_quantity
        order.remaining_quantity = 0
        order.status = Order.Status.SUBMITTED
        order.in_flight = False
        order.route_at = None
        order.save_changes("placed_quantity", "remaining_quantity", "status", "in_flight", "route_at")
    logger.info("order %s: submitted %s at the exchange", order.pk, order.placed_quantity)


def placement_record_failure(*, claim: Claim, error: str, permanent: bool) -> bool:
    """Record a failed call. Returns True when the order went back to the book for a retry."""
    outcome = PlacementAttempt.Outcome.REJECTED if permanent else PlacementAttempt.Outcome.FAILED
    with transaction.atomic():
        now = timezone.now()
        order = Order.objects.select_for_update().get(pk=claim.order.pk)
        _finish_attempt(claim, outcome, now, error)
        if not _holds_claim(order, claim):
            return False
        order.in_flight = False
        order.last_error = error
        deadline = settings.EXCHANGE_PLACEMENT_DEADLINE
        if permanent or (now - order.first_attempt_at).total_seconds() >= deadline:
            reason = REJECTED_REASON if permanent else DEADLINE_REASON
            order.failure_reason = reason.format(
                error=error, attempts=order.placement_attempts, deadline=deadline
            )
            order.status = Order.Status.FAILED
            order.remaining_quantity = 0
            order.route_at = None
            order.save_changes(
                "in_flight", "last_error", "failure_reason", "status", "remaining_quantity", "route_at"
            )
            logger.warning("order %s: FAILED: %s", order.pk, order.failure_reason)
            return False
        order.needs_match = True
        order.route_at = now + timedelta(seconds=retry_delay(order.placement_attempts))
        order.save_changes("in_flight", "last_error", "needs_match", "route_at")
    logger.info("order %s: attempt %s failed (%s), retry at %s", order.pk, claim.attempt, error, order.route_at)
    return True


def retry_delay(attempt: int) -> float:
    """Exponential backoff with jitter: half fixed, half random, capped."""
    ceiling = min(settings.EXCHANGE_RETRY_CAP, settings.EXCHANGE_RETRY_BASE * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _holds_claim(order: Order, claim: Claim) -> bool:
    if order.in_flight and order.placement_attempts == claim.attempt:
        return True
    logger.warning("order %s: stale outcome of attempt %s ignored", order.pk, claim.attempt)
    return False


def _finish_attempt(claim: Claim, outcome: str, now: datetime, error: str = "") -> None:
    PlacementAttempt.objects.filter(
        order_id=claim.order.pk, number=claim.attempt, outcome=PlacementAttempt.Outcome.IN_FLIGHT
    ).update(outcome=outcome, finished_at=now, error=error)
