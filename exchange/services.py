"""Placing an order's remainder at the exchange: claim, call, record (SPEC §6).

A claim takes the order out of the internal book (``in_flight``), so matching
and cancel never touch an order the exchange may be accepting. Claims and
outcomes are compare-and-set UPDATEs: an outcome is recorded only by the attempt
that holds the claim; anything older is stale and matches no row.
"""

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import DateTimeField, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from exchange.gateway import ExchangeError, OrderRejectedError, get_exchange
from matching.services import RoutePlan, instrument_match_pending
from orders.models import Order, PlacementAttempt
from ordersite.db import retry_on_deadlock

logger = logging.getLogger("exchange.placement")

REJECTED_REASON = "Rejected by the exchange: {error}"
DEADLINE_REASON = (
    "Exchange placement still failing after {attempts} attempts over {deadline:g}s; last error: {error}"
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


@retry_on_deadlock
def placement_claim(*, plan: RoutePlan, now: datetime | None = None) -> Claim | RoutePlan | None:
    """Take a due order out of the book for one exchange call.

    Returns the claim; a later plan when the order is not due yet; or None when
    there is nothing to place (terminal, cancelled, matched, in flight elsewhere,
    or waiting for its matching pass, which schedules it again).

    The claim is one compare-and-set UPDATE: it succeeds only if the order is
    still resting, and matching reads the book with row locks, so an order is
    either crossed internally or sent to the exchange, never both.
    """
    now = now or timezone.now()
    resting = Order.objects.filter(
        pk=plan.order_id,
        status__in=Order.WORKING_STATUSES,
        needs_match=False,
        remaining_quantity__gt=0,
        in_flight=plan.recover,
    )
    if not plan.recover:
        resting = resting.filter(Q(route_at__isnull=True) | Q(route_at__lte=now))
    claimed = resting.update(
        in_flight=True,
        placement_attempts=F("placement_attempts") + 1,
        last_attempt_at=now,
        first_attempt_at=Coalesce("first_attempt_at", Value(now, output_field=DateTimeField())),
        updated_at=now,
    )
    order = Order.objects.filter(pk=plan.order_id).first()
    if not claimed:
        if order is not None and _rests_until_later(order, now):
            return RoutePlan(order_id=order.pk, instrument=order.instrument, route_at=order.route_at)
        return None
    if plan.recover:
        _finish_attempt(order.pk, order.placement_attempts - 1, PlacementAttempt.Outcome.ABANDONED, now)
    PlacementAttempt.objects.create(
        order=order, number=order.placement_attempts, quantity=order.remaining_quantity, started_at=now
    )
    return Claim(order=order, attempt=order.placement_attempts)


def _rests_until_later(order: Order, now: datetime) -> bool:
    return (
        order.status in Order.WORKING_STATUSES
        and not order.in_flight
        and not order.needs_match
        and order.remaining_quantity > 0
        and order.route_at is not None
        and order.route_at > now
    )


def _holding_claim(claim: Claim):
    """The order, only while this attempt still holds its claim (a stale outcome matches nothing)."""
    return Order.objects.filter(pk=claim.order.pk, in_flight=True, placement_attempts=claim.attempt)


@retry_on_deadlock
def placement_record_accepted(*, claim: Claim, quantity: int) -> None:
    """The exchange took the remainder: the order is SUBMITTED."""
    now = timezone.now()
    _finish_attempt(claim.order.pk, claim.attempt, PlacementAttempt.Outcome.ACCEPTED, now)
    if quantity != claim.order.remaining_quantity:
        logger.error(
            "order %s: exchange acknowledged %s, remainder is %s",
            claim.order.pk,
            quantity,
            claim.order.remaining_quantity,
        )
    # While in flight nothing else changes the order's quantities, so the claim's
    # remainder is still the order's remainder.
    updated = _holding_claim(claim).update(
        placed_quantity=F("placed_quantity") + F("remaining_quantity"),
        remaining_quantity=0,
        status=Order.Status.SUBMITTED,
        in_flight=False,
        route_at=None,
        updated_at=now,
    )
    if updated:
        logger.info("order %s: submitted %s at the exchange", claim.order.pk, claim.order.remaining_quantity)
    else:
        logger.warning("order %s: stale acceptance of attempt %s ignored", claim.order.pk, claim.attempt)


@retry_on_deadlock
def placement_record_failure(*, claim: Claim, error: str, permanent: bool) -> bool:
    """Record a failed call. Returns True when the order went back to the book for a retry."""
    now = timezone.now()
    outcome = PlacementAttempt.Outcome.REJECTED if permanent else PlacementAttempt.Outcome.FAILED
    _finish_attempt(claim.order.pk, claim.attempt, outcome, now, error)
    deadline = settings.EXCHANGE_PLACEMENT_DEADLINE
    first_attempt_at = claim.order.first_attempt_at or now
    if permanent or (now - first_attempt_at).total_seconds() >= deadline:
        reason = REJECTED_REASON if permanent else DEADLINE_REASON
        failure_reason = reason.format(error=error, attempts=claim.attempt, deadline=deadline)
        failed = _holding_claim(claim).update(
            status=Order.Status.FAILED,
            failure_reason=failure_reason,
            last_error=error,
            remaining_quantity=0,
            in_flight=False,
            route_at=None,
            updated_at=now,
        )
        if failed:
            logger.warning("order %s: FAILED: %s", claim.order.pk, failure_reason)
        return False
    retry_at = now + timedelta(seconds=retry_delay(claim.attempt))
    returned = _holding_claim(claim).update(
        in_flight=False, needs_match=True, route_at=retry_at, last_error=error, updated_at=now
    )
    if returned:
        logger.info(
            "order %s: attempt %s failed (%s), retry at %s", claim.order.pk, claim.attempt, error, retry_at
        )
    return bool(returned)


def retry_delay(attempt: int) -> float:
    """Exponential backoff with jitter: half fixed, half random, capped."""
    ceiling = min(settings.EXCHANGE_RETRY_CAP, settings.EXCHANGE_RETRY_BASE * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _finish_attempt(order_id, number: int, outcome: str, now: datetime, error: str = "") -> None:
    PlacementAttempt.objects.filter(
        order_id=order_id, number=number, outcome=PlacementAttempt.Outcome.IN_FLIGHT
    ).update(outcome=outcome, finished_at=now, error=error)
