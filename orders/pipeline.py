"""The processing pipeline of SPEC §4: what the queued tasks and the sweeper do.

``order_process`` runs when an order's task comes off the queue: it matches the
order's instrument and hands every order left resting to this process's
placement dispatcher. ``pipeline_sweep`` re-drives orders that stopped making
progress because a process, a push or a timer was lost.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from exchange.dispatcher import get_dispatcher
from matching.services import RoutePlan, instrument_match_pending
from orders.models import Order

logger = logging.getLogger("orders.pipeline")

SWEEP_LIMIT = 5000


def order_process(*, order_id, instrument: str | None = None) -> None:
    """Match the order's instrument and schedule the placement of what rests."""
    if instrument is None:
        instrument = Order.objects.filter(pk=order_id).values_list("instrument", flat=True).first()
    if instrument is None:
        logger.warning("order %s: not found, nothing to process", order_id, extra={"order_id": order_id})
        return
    get_dispatcher().schedule(instrument_match_pending(isin=instrument))


@dataclass
class SweepReport:
    rematched_instruments: list[str] = field(default_factory=list)
    overdue: int = 0
    lost_in_flight: int = 0

    def __str__(self) -> str:
        return (
            f"re-matched {len(self.rematched_instruments)} instruments, "
            f"re-routed {self.overdue} overdue orders, "
            f"re-sent {self.lost_in_flight} calls lost in flight"
        )


def pipeline_sweep(*, now: datetime | None = None) -> SweepReport:
    """Re-drive every working order that has made no progress for PIPELINE_STALL_TIMEOUT.

    ``now`` only moves the staleness horizon (tests look into the future with it);
    what is re-driven is due at once.
    """
    due = timezone.now()
    now = now or due
    stalled_since = now - timedelta(seconds=settings.PIPELINE_STALL_TIMEOUT)
    # An exchange call takes EXCHANGE_LATENCY; only one far past that is lost.
    lost_since = now - timedelta(seconds=max(settings.PIPELINE_STALL_TIMEOUT, 4 * settings.EXCHANGE_LATENCY))
    working = Order.objects.filter(status__in=Order.WORKING_STATUSES)
    report = SweepReport()
    plans: list[RoutePlan] = []

    report.rematched_instruments = sorted(
        set(
            working.filter(needs_match=True, updated_at__lt=stalled_since).values_list(
                "instrument", flat=True
            )[:SWEEP_LIMIT]
        )
    )
    for isin in report.rematched_instruments:
        plans.extend(instrument_match_pending(isin=isin))

    overdue = working.filter(
        needs_match=False, in_flight=False, remaining_quantity__gt=0, route_at__lt=stalled_since
    ).values_list("pk", "instrument")[:SWEEP_LIMIT]
    for order_id, isin in overdue:
        plans.append(RoutePlan(order_id=order_id, instrument=isin, route_at=due))
        report.overdue += 1

    lost = working.filter(in_flight=True, last_attempt_at__lt=lost_since).values_list("pk", "instrument")[
        :SWEEP_LIMIT
    ]
    for order_id, isin in lost:
        plans.append(RoutePlan(order_id=order_id, instrument=isin, route_at=due, recover=True))
        report.lost_in_flight += 1

    get_dispatcher().schedule(plans)
    if report.rematched_instruments or report.overdue or report.lost_in_flight:
        logger.warning("sweep: %s", report)
    return report
