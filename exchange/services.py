"""Placing an order's remainder at the exchange: claim, call, record (SPEC §6).

A claim takes orders out of the internal book (``in_flight``), so matching and
cancel never touch an order the exchange may be accepting. Claims and outcomes
are compare-and-set UPDATEs over a batch of orders: an outcome is recorded only
for the attempt that holds the claim; anything older is stale and matches no
row. Only the exchange call itself is per order, and those run concurrently
(``exchange/dispatcher.py``).
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
from django.db.models import DateTimeField, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from exchange.gateway import ExchangeError, OrderRejectedError, get_exchange
from matching.services import RoutePlan, instrument_match_pending
from orders.models import Order, PlacementAttempt
from ordersite import metrics
from ordersite.db import retry_on_deadlock

logger = logging.getLogger("exchange.placement")

REJECTED_REASON = "Rejected by the exchange: {error}"
DEADLINE_REASON = (
    "Exchange placement still failing after {attempts} attempts over {deadline:g}s; last error: {error}"
)


@dataclass(frozen=True)
class Claim:
    """The right to make attempt number ``attempt`` for ``order`` (a snapshot at claim time)."""

    order: Order
    attempt: int


@dataclass(frozen=True)
class Outcome:
    claim: Claim
    accepted_quantity: int | None = None
    error: str = ""
    permanent: bool = False

    @property
    def accepted(self) -> bool:
        return self.accepted_quantity is not None


def placement_run(*, plan: RoutePlan, exchange=None) -> list[RoutePlan]:
    """Drive one due order through one exchange attempt, synchronously; return what to schedule next."""
    claims, later = placement_claim(plans=[plan])
    exchange = exchange or get_exchange()
    return later + placement_record([placement_call(claim, exchange) for claim in claims])


def placement_call(claim: Claim, exchange) -> Outcome:
    """One exchange call for a claimed order. Only the exchange's own ledger is written."""
    started = time.perf_counter()
    try:
        ack = exchange.place_order(claim.order)
    except OrderRejectedError as exc:
        metrics.exchange_call("rejected", started)
        return Outcome(claim=claim, error=str(exc), permanent=True)
    except ExchangeError as exc:
        metrics.exchange_call("failed", started)
        return Outcome(claim=claim, error=str(exc))
    except Exception:  # no answer: the dispatcher re-sends the call
        metrics.exchange_call("error", started)
        raise
    metrics.exchange_call("accepted", started)
    return Outcome(claim=claim, accepted_quantity=ack.quantity)


@retry_on_deadlock
def placement_claim(
    *, plans: Iterable[RoutePlan], now: datetime | None = None
) -> tuple[list[Claim], list[RoutePlan]]:
    """Take the due orders of ``plans`` out of the book for one exchange call each.

    Returns the claims, and plans for orders that rest until later than planned.
    An order that is terminal, matched, in flight elsewhere or waiting for its
    matching pass (which plans it again) is dropped.

    Each group is one compare-and-set UPDATE: it claims an order only while it
    is still resting, and matching reads the book with row locks, so an order is
    either crossed internally or sent to the exchange, never both.
    """
    now = now or timezone.now()
    plans = list(plans)
    due = [plan.order_id for plan in plans if not plan.recover]
    lost = [plan.order_id for plan in plans if plan.recover]
    claim = {
        "in_flight": True,
        "placement_attempts": F("placement_attempts") + 1,
        "last_attempt_at": now,
        "first_attempt_at": Coalesce("first_attempt_at", Value(now, output_field=DateTimeField())),
        "updated_at": now,
    }
    resting = Order.objects.filter(
        status__in=Order.WORKING_STATUSES, needs_match=False, remaining_quantity__gt=0
    )
    if due:
        resting.filter(pk__in=due, in_flight=False).filter(
            Q(route_at__isnull=True) | Q(route_at__lte=now)
        ).update(**claim)
    if lost:
        # Re-send a call whose worker was lost: the exchange dedupes by order id.
        resting.filter(pk__in=lost, in_flight=True).update(**claim)

    ids = [plan.order_id for plan in plans]
    claimed = list(Order.objects.filter(pk__in=ids, in_flight=True, last_attempt_at=now))
    if not claimed:
        return [], _later_plans(ids, now)
    recovered = [order for order in claimed if order.pk in set(lost)]
    if recovered:
        _finish_attempts(
            [(order.pk, order.placement_attempts - 1) for order in recovered],
            PlacementAttempt.Outcome.ABANDONED,
            now,
        )
    PlacementAttempt.objects.bulk_create(
        PlacementAttempt(
            order=order, number=order.placement_attempts, quantity=order.remaining_quantity, started_at=now
        )
        for order in claimed
    )
    claimed_ids = {order.pk for order in claimed}
    later = _later_plans([pk for pk in ids if pk not in claimed_ids], now) if len(claimed) < len(ids) else []
    return [Claim(order=order, attempt=order.placement_attempts) for order in claimed], later


def _later_plans(order_ids: list, now: datetime) -> list[RoutePlan]:
    if not order_ids:
        return []
    return [
        RoutePlan(order_id=pk, instrument=instrument, route_at=route_at)
        for pk, instrument, route_at in Order.objects.filter(
            pk__in=order_ids,
            status__in=Order.WORKING_STATUSES,
            in_flight=False,
            needs_match=False,
            remaining_quantity__gt=0,
            route_at__gt=now,
        ).values_list("pk", "instrument", "route_at")
    ]


@retry_on_deadlock
def placement_record(outcomes: Iterable[Outcome]) -> list[RoutePlan]:
    """Record the outcomes of exchange calls; return the plans of orders retried later."""
    now = timezone.now()
    outcomes = list(outcomes)
    accepted = [outcome for outcome in outcomes if outcome.accepted]
    if accepted:
        _record_accepted(accepted, now)
    back_in_book = set()
    for outcome in outcomes:
        if not outcome.accepted and _record_failure(outcome, now):
            back_in_book.add(outcome.claim.order.instrument)
    plans = []
    for isin in sorted(back_in_book):
        # Back in the book: cross it against what arrived meanwhile, then retry.
        plans.extend(instrument_match_pending(isin=isin))
    return plans


def _holding_claims(claims: Iterable[Claim]):
    """The orders whose claims are still current (a stale attempt matches no row)."""
    current = functools.reduce(
        operator.or_, (Q(pk=claim.order.pk, placement_attempts=claim.attempt) for claim in claims)
    )
    return Order.objects.filter(current, in_flight=True)


def _record_accepted(accepted: list[Outcome], now: datetime) -> None:
    """The exchange took the remainders: the orders are SUBMITTED."""
    for outcome in accepted:
        if outcome.accepted_quantity != outcome.claim.order.remaining_quantity:
            logger.error(
                "order %s: exchange acknowledged %s, remainder is %s",
                outcome.claim.order.pk,
                outcome.accepted_quantity,
                outcome.claim.order.remaining_quantity,
                extra={"order_id": outcome.claim.order.pk},
            )
    claims = [outcome.claim for outcome in accepted]
    _finish_attempts([(c.order.pk, c.attempt) for c in claims], PlacementAttempt.Outcome.ACCEPTED, now)
    # While in flight nothing else changes an order's quantities, so the claimed
    # remainder is still the order's remainder.
    submitted = _holding_claims(claims).update(
        placed_quantity=F("placed_quantity") + F("remaining_quantity"),
        remaining_quantity=0,
        status=Order.Status.SUBMITTED,
        in_flight=False,
        route_at=None,
        updated_at=now,
    )
    metrics.orders_submitted(submitted, (c.order.created_at for c in claims), now)
    if submitted < len(claims):
        logger.warning("%s stale acceptances ignored", len(claims) - submitted)
    for claim in claims:
        logger.info(
            "order %s: submitted %s at the exchange",
            claim.order.pk,
            claim.order.remaining_quantity,
            extra={"order_id": claim.order.pk},
        )


def _record_failure(outcome: Outcome, now: datetime) -> bool:
    """Record a failed call. Returns True when the order went back to the book for a retry."""
    claim, error = outcome.claim, outcome.error
    status = PlacementAttempt.Outcome.REJECTED if outcome.permanent else PlacementAttempt.Outcome.FAILED
    _finish_attempts([(claim.order.pk, claim.attempt)], status, now, error)
    deadline = settings.EXCHANGE_PLACEMENT_DEADLINE
    first_attempt_at = claim.order.first_attempt_at or now
    if outcome.permanent or (now - first_attempt_at).total_seconds() >= deadline:
        reason = REJECTED_REASON if outcome.permanent else DEADLINE_REASON
        failure_reason = reason.format(error=error, attempts=claim.attempt, deadline=deadline)
        failed = _holding_claims([claim]).update(
            status=Order.Status.FAILED,
            failure_reason=failure_reason,
            last_error=error,
            remaining_quantity=0,
            in_flight=False,
            route_at=None,
            updated_at=now,
        )
        if failed:
            metrics.order_failed("rejected" if outcome.permanent else "deadline")
            logger.warning(
                "order %s: FAILED: %s", claim.order.pk, failure_reason, extra={"order_id": claim.order.pk}
            )
        return False
    retry_at = now + timedelta(seconds=retry_delay(claim.attempt))
    returned = _holding_claims([claim]).update(
        in_flight=False, needs_match=True, route_at=retry_at, last_error=error, updated_at=now
    )
    if returned:
        metrics.placement_retried()
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
    """Exponential backoff with jitter: half fixed, half random, capped."""
    ceiling = min(settings.EXCHANGE_RETRY_CAP, settings.EXCHANGE_RETRY_BASE * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _finish_attempts(attempts: list[tuple], outcome: str, now: datetime, error: str = "") -> None:
    """Close the given (order id, attempt number) attempts that are still open."""
    which = functools.reduce(
        operator.or_, (Q(order_id=order_id, number=number) for order_id, number in attempts)
    )
    PlacementAttempt.objects.filter(which, outcome=PlacementAttempt.Outcome.IN_FLIGHT).update(
        outcome=outcome, finished_at=now, error=error
    )
