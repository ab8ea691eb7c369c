"""The processing pipeline of SPEC §4: what the queued tasks and the sweeper do.

``order_process`` runs when an order's task comes off the queue: it matches the
order's instrument and hands every order left resting to this process's
placement dispatcher. ``pipeline_sweep`` re-drives orders that stopped making
progress because a process, a push or a timer was lost; for a call lost in
flight it asks the exchange, never re-sends.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from matching.services import instrument_match_pending, order_taken_by_pass
from orders.dispatcher import get_dispatcher
from orders.models import Order
from orders.plans import RoutePlan

logger = logging.getLogger("orders.pipeline")

SWEEP_LIMIT = 5000


def order_process(*, order_id, instrument: str | None = None, attempts: int | None = None) -> None:
    """Match the order's instrument and schedule the placement of what rests.

    ``attempts``: the order's ``placement_attempts`` when this was queued; if a pass
    of this process already took the order in that wait, there is nothing to do.
    """
    if attempts is not None and order_taken_by_pass(order_id, attempts):
        return
    if instrument is None:
        instrument = Order.objects.filter(pk=order_id).values_list("instrument", flat=True).first()
    if instrument is None:
        logger.warning("order %s: not found, nothing to process", order_id, extra={"order_id": order_id})
        return
    get_dispatcher().schedule(instrument_match_pending(isin=instrument))


def lost_call_age() -> float:
    """Seconds after which an exchange call without an answer counts as lost.

    Past twice the exchange's stale-order cutoff no call still on its way can land,
    so its answer to a status question is final; never sooner than the stall timeout.
    """
    return max(settings.PIPELINE_STALL_TIMEOUT, 2 * settings.EXCHANGE_CALL_TIMEOUT)


@dataclass
class SweepReport:
    rematched_instruments: list[str] = field(default_factory=list)
    overdue: int = 0
    lost_in_flight: int = 0

    def __str__(self) -> str:
        return (
            f"re-matched {len(self.rematched_instruments)} instruments, "
            f"re-routed {self.overdue} overdue orders, "
            f"asked the exchange about {self.lost_in_flight} calls lost in flight"
        )


def pipeline_sweep(*, now: datetime | None = None) -> SweepReport:
    """Re-drive every working order that has made no progress for PIPELINE_STALL_TIMEOUT.

    ``now`` only moves the staleness horizon (tests look into the future with it);
    what is re-driven is due at once.
    """
    due = timezone.now()
    now = now or due
    stalled_since = now - timedelta(seconds=settings.PIPELINE_STALL_TIMEOUT)
    lost_since = now - timedelta(seconds=lost_call_age())
    report = SweepReport()
    plans: list[RoutePlan] = []

    report.rematched_instruments = sorted(
        set(
            Order.objects.awaiting_match()
            .filter(updated_at__lt=stalled_since)
            .values_list("instrument", flat=True)[:SWEEP_LIMIT]
        )
    )
    for isin in report.rematched_instruments:
        plans.extend(instrument_match_pending(isin=isin))

    overdue = Order.objects.resting().filter(route_at__lt=stalled_since).values_list("pk", "instrument")
    for order_id, isin in overdue[:SWEEP_LIMIT]:
        plans.append(RoutePlan(order_id=order_id, instrument=isin, route_at=due))
        report.overdue += 1

    # The question names the attempt: if the order moves on meanwhile, it matches nothing.
    lost = Order.objects.in_flight().filter(last_attempt_at__lt=lost_since)
    for order_id, isin, attempt in lost.values_list("pk", "instrument", "placement_attempts")[:SWEEP_LIMIT]:
        plans.append(
            RoutePlan(order_id=order_id, instrument=isin, route_at=due, recover=True, attempt=attempt)
        )
        report.lost_in_flight += 1

    get_dispatcher().schedule(plans)
    if report.rematched_instruments or report.overdue or report.lost_in_flight:
        logger.warning("sweep: %s", report)
    return report
