"""Reads for the back office (SPEC §7): order books, the admin dashboard, the queue depth.

Selectors in the STYLE sense, kept apart from ``orders.selectors`` because only the
admin uses them. Every query here is bounded or served by an index of ``Order``.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Max, Min, Q, QuerySet, Sum
from django.utils import timezone

from matching.models import Instrument, OrderMatch
from orders.models import Order

logger = logging.getLogger("orders.backoffice")

RECENT_MATCHES = 50
MARKET_LEVEL = "MKT"


def resting_orders(*, isin: str | None = None) -> QuerySet[Order]:
    """Orders in an internal book or about to enter it (awaiting their match), not in flight."""
    queryset = Order.objects.working().filter(remaining_quantity__gt=0, in_flight=False)
    if isin is not None:
        queryset = queryset.filter(instrument=isin)
    return queryset


@dataclass(frozen=True)
class PriceLevel:
    price: Decimal | None  # None: the market orders' level
    quantity: int
    orders: int

    @property
    def label(self) -> str:
        return MARKET_LEVEL if self.price is None else f"{self.price}"

    @property
    def is_market(self) -> bool:
        return self.price is None


@dataclass
class InstrumentBook:
    isin: str
    bids: list[PriceLevel] = field(default_factory=list)
    asks: list[PriceLevel] = field(default_factory=list)
    awaiting_match: int = 0
    matches: list[OrderMatch] = field(default_factory=list)

    @property
    def best_bid(self) -> Decimal | None:
        return next((level.price for level in self.bids if not level.is_market), None)

    @property
    def best_ask(self) -> Decimal | None:
        return next((level.price for level in self.asks if not level.is_market), None)

    @property
    def spread(self) -> Decimal | None:
        if self.best_bid is None or self.best_ask is None:
            return None
        return self.best_ask - self.best_bid

    @property
    def bid_orders(self) -> int:
        return sum(level.orders for level in self.bids)

    @property
    def ask_orders(self) -> int:
        return sum(level.orders for level in self.asks)


def order_book_for_instrument(*, isin: str, recent_matches: int = RECENT_MATCHES) -> InstrumentBook:
    """The resting bids and asks of ``isin`` by price level (market orders first), and its latest fills."""
    book = InstrumentBook(isin=isin)
    levels = (
        resting_orders(isin=isin)
        .values("side", "limit_price")
        .annotate(quantity=Sum("remaining_quantity"), orders=Count("id"))
        .order_by()
    )
    for row in levels:
        level = PriceLevel(price=row["limit_price"], quantity=row["quantity"], orders=row["orders"])
        (book.bids if row["side"] == Order.Side.BUY else book.asks).append(level)
    # Market orders rank ahead of every limit price on both sides (SPEC §5).
    book.bids.sort(key=lambda level: (not level.is_market, -(level.price or 0)))
    book.asks.sort(key=lambda level: (not level.is_market, level.price or 0))
    book.awaiting_match = resting_orders(isin=isin).filter(needs_match=True).count()
    book.matches = list(
        OrderMatch.objects.filter(instrument=isin).order_by("-matched_at", "-id")[:recent_matches]
    )
    return book


@dataclass
class InstrumentSummary:
    isin: str
    bid_orders: int = 0
    bid_quantity: int = 0
    ask_orders: int = 0
    ask_quantity: int = 0
    best_bid: Decimal | None = None
    best_ask: Decimal | None = None


def order_book_instruments() -> list[InstrumentSummary]:
    """Every known instrument with the size and top of its resting book, by ISIN."""
    summaries = {isin: InstrumentSummary(isin) for isin in Instrument.objects.values_list("isin", flat=True)}
    rows = (
        resting_orders()
        .values("instrument", "side")
        .annotate(
            orders=Count("id"),
            quantity=Sum("remaining_quantity"),
            highest=Max("limit_price"),
            lowest=Min("limit_price"),
        )
        .order_by()
    )
    for row in rows:
        summary = summaries.setdefault(row["instrument"], InstrumentSummary(row["instrument"]))
        if row["side"] == Order.Side.BUY:
            summary.bid_orders, summary.bid_quantity, summary.best_bid = (
                row["orders"],
                row["quantity"],
                row["highest"],
            )
        else:
            summary.ask_orders, summary.ask_quantity, summary.best_ask = (
                row["orders"],
                row["quantity"],
                row["lowest"],
            )
    return [summaries[isin] for isin in sorted(summaries)]


@dataclass
class QueueDepth:
    broker: str  # "orm" or "redis"
    size: int | None  # None: the broker could not be asked
    error: str = ""


def queue_depth() -> QueueDepth:
    """Tasks waiting in django-q2's queue: OrmQ rows for the ORM broker, the broker's count for Redis."""
    if "redis" in settings.Q_CLUSTER:
        from django_q.brokers import get_broker
        from redis.exceptions import RedisError

        try:
            return QueueDepth("redis", get_broker().queue_size())
        except (RedisError, OSError) as exc:  # an unreachable broker must not take the admin down
            logger.warning("queue depth: Redis broker unavailable: %s", exc)
            return QueueDepth("redis", None, error=str(exc) or type(exc).__name__)
    from django_q.models import OrmQ

    return QueueDepth("orm", OrmQ.objects.using(settings.Q_CLUSTER.get("orm", "default")).count())


@dataclass
class StatusCount:
    status: str
    label: str
    count: int


@dataclass
class Dashboard:
    by_status: list[StatusCount]
    failed_last_hour: int
    working: int
    in_flight: int
    oldest_working_id: object | None
    oldest_working_created_at: datetime | None
    oldest_working_age: timedelta | None
    queue: QueueDepth
    generated_at: datetime

    @property
    def total(self) -> int:
        return sum(row.count for row in self.by_status)


def dashboard(*, now: datetime | None = None) -> Dashboard:
    """The back office's health at a glance (the admin index shows it)."""
    now = now or timezone.now()
    counts = dict(Order.objects.values_list("status").annotate(n=Count("id")).order_by())
    by_status = [StatusCount(value, label, counts.get(value, 0)) for value, label in Order.Status.choices]
    # FAILED orders change only by a reprocess, so updated_at is when they failed.
    failed_last_hour = Order.objects.filter(
        status=Order.Status.FAILED, updated_at__gte=now - timedelta(hours=1)
    ).count()
    working = Order.objects.working()
    stats = working.aggregate(oldest=Min("created_at"), in_flight=Count("id", filter=Q(in_flight=True)))
    oldest_id = None
    if stats["oldest"] is not None:
        oldest_id = (
            working.filter(created_at=stats["oldest"]).order_by("id").values_list("id", flat=True).first()
        )
    return Dashboard(
        by_status=by_status,
        failed_last_hour=failed_last_hour,
        working=sum(counts.get(status, 0) for status in Order.WORKING_STATUSES),
        in_flight=stats["in_flight"],
        oldest_working_id=oldest_id,
        oldest_working_created_at=stats["oldest"],
        oldest_working_age=(now - stats["oldest"]) if stats["oldest"] is not None else None,
        queue=queue_depth(),
        generated_at=now,
    )
