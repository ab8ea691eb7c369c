"""The order: what a client asked for and where it stands (SPEC §3-§4)."""

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone


class OrderQuerySet(models.QuerySet):
    """The pipeline's concepts, named once (STYLE): every module filters through these."""

    def working(self):
        """Accepted and not yet settled: in the book, awaiting a match, or in flight."""
        return self.filter(status__in=Order.WORKING_STATUSES)

    def awaiting_match(self):
        """Working orders waiting for their matching pass as the incoming order."""
        return self.working().filter(needs_match=True)

    def resting(self):
        """The internal book (SPEC §5): working, quantity left, matched already, no call in flight."""
        return self.working().filter(needs_match=False, in_flight=False, remaining_quantity__gt=0)

    def at_venue(self):
        """Working at the venue (SPEC §9): accepted there, not final, no call of ours in flight."""
        return self.filter(status__in=Order.AT_VENUE_STATUSES).exclude(venue_status="")

    def unsettled(self):
        """Not final yet: working in our pipeline or at the venue."""
        return self.filter(
            models.Q(status__in=Order.WORKING_STATUSES)
            | models.Q(status__in=Order.AT_VENUE_STATUSES) & ~models.Q(venue_status="")
        )

    def in_flight(self):
        """Possibly at the exchange: a call is under way or its outcome is not known yet (SPEC §6)."""
        return self.working().filter(in_flight=True)


class Order(models.Model):
    class Type(models.TextChoices):
        MARKET = "market", "Market"
        LIMIT = "limit", "Limit"

    class Side(models.TextChoices):
        BUY = "buy", "Buy"
        SELL = "sell", "Sell"

    class TimeInForce(models.TextChoices):
        DAY = "day", "Day"
        GTC = "gtc", "Good till cancelled"
        IOC = "ioc", "Immediate or cancel"
        FOK = "fok", "Fill or kill"

    class Status(models.TextChoices):
        OPEN = "OPEN", "Open"
        PARTIAL = "PARTIAL", "Partially matched"
        MATCHED = "MATCHED", "Matched"
        SUBMITTED = "SUBMITTED", "Submitted"
        PARTIALLY_FILLED = "PARTIALLY_FILLED", "Partially filled"
        FILLED = "FILLED", "Filled"
        PENDING_CANCEL = "PENDING_CANCEL", "Pending cancel"
        CANCELLED = "CANCELLED", "Cancelled"
        EXPIRED = "EXPIRED", "Expired"
        REJECTED = "REJECTED", "Rejected"
        FAILED = "FAILED", "Failed"

    # Working in our own pipeline: in the internal book, awaiting a match, or in flight.
    WORKING_STATUSES = (Status.OPEN, Status.PARTIAL)
    # Working at the venue (SPEC §9): accepted there and not yet final.
    AT_VENUE_STATUSES = (Status.SUBMITTED, Status.PARTIALLY_FILLED, Status.PENDING_CANCEL)
    TERMINAL_STATUSES = (
        Status.MATCHED,
        Status.SUBMITTED,
        Status.FILLED,
        Status.CANCELLED,
        Status.EXPIRED,
        Status.REJECTED,
        Status.FAILED,
    )

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    # Binary collation on MySQL/MariaDB (migration 0004): idempotency keys are exact,
    # so "order-a" and "ORDER-A" are two keys. An AlterField here resets the column to
    # the table's case-insensitive collation: re-apply 0004's ALTER after one.
    client_order_id = models.CharField(max_length=64, null=True, blank=True)
    type = models.CharField(max_length=6, choices=Type.choices)
    side = models.CharField(max_length=4, choices=Side.choices)
    instrument = models.CharField(max_length=12)
    limit_price = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices, default=TimeInForce.DAY)
    quantity = models.PositiveIntegerField()
    matched_quantity = models.PositiveIntegerField(default=0)
    placed_quantity = models.PositiveIntegerField(default=0)
    remaining_quantity = models.PositiveIntegerField()
    # Sum of price * quantity over the order's matches: the average without a join.
    matched_notional = models.DecimalField(max_digits=26, decimal_places=2, default=Decimal("0"))
    # Every execution, internal matches and venue fills (SPEC §9), and its notional.
    filled_quantity = models.PositiveIntegerField(default=0)
    filled_notional = models.DecimalField(max_digits=28, decimal_places=4, default=Decimal("0"))
    cancelled_quantity = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    failure_reason = models.TextField(blank=True, default="")

    # Pipeline state (SPEC §4-§6); see docs/architecture.md.
    needs_match = models.BooleanField(
        default=True, help_text="Waiting for a matching pass as the incoming order."
    )
    in_flight = models.BooleanField(
        default=False, help_text="An exchange call for the remainder is under way."
    )
    route_at = models.DateTimeField(
        null=True, blank=True, help_text="When the remainder is next due at the exchange."
    )
    placement_attempts = models.PositiveIntegerField(default=0)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # What the venue last said of the order (FIX OrdStatus) and its highest CumQty.
    venue_status = models.CharField(max_length=1, blank=True, default="")
    venue_cum_quantity = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("reprocess_order", "Can reprocess failed orders"),
            ("cancel_order", "Can cancel orders"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["owner", "client_order_id"], name="order_client_order_id_unique"),
            models.CheckConstraint(
                condition=models.Q(type="market", limit_price__isnull=True)
                | models.Q(type="limit", limit_price__gt=0),
                name="order_limit_price_matches_type",
            ),
        ]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="order_owner_created"),
            models.Index(fields=["owner", "status", "-created_at"], name="order_owner_status"),
            models.Index(fields=["owner", "instrument", "-created_at"], name="order_owner_instr"),
            models.Index(fields=["-created_at"], name="order_created"),
            # Admin search and staff's client_order_id filter span every owner; the
            # unique (owner, client_order_id) index leads with owner, so it cannot serve them.
            models.Index(fields=["client_order_id"], name="order_client_order_id"),
            # The matching book and the pending queue of one instrument.
            models.Index(fields=["instrument", "status", "needs_match"], name="order_book"),
            # Which instruments have orders awaiting a matching pass (few rows: needs_match first).
            models.Index(fields=["needs_match", "status", "instrument"], name="order_awaiting_match"),
            # The sweeper: working orders by last progress.
            models.Index(fields=["status", "updated_at"], name="order_sweep"),
        ]

    def __str__(self) -> str:
        price = f" @ {self.limit_price}" if self.limit_price is not None else ""
        return f"{self.side} {self.quantity} {self.instrument}{price} ({self.status})"

    @property
    def average_match_price(self) -> Decimal | None:
        if not self.matched_quantity:
            return None
        return (self.matched_notional / self.matched_quantity).quantize(Decimal("0.0001"))

    @property
    def average_fill_price(self) -> Decimal | None:
        if not self.filled_quantity:
            return None
        return (self.filled_notional / self.filled_quantity).quantize(Decimal("0.0001"))

    def save_changes(self, *fields: str) -> None:
        """Persist the named fields, stamping the progress clock (``orders/transitions.py`` calls it)."""
        self.updated_at = timezone.now()
        self.save(update_fields=[*fields, "updated_at"])


class PlacementAttempt(models.Model):
    """One call to the exchange for an order's remainder, and how it ended."""

    class Outcome(models.TextChoices):
        IN_FLIGHT = "in_flight", "In flight"
        ACCEPTED = "accepted", "Accepted"
        FAILED = "failed", "Failed (will retry)"
        REJECTED = "rejected", "Rejected"
        NOT_HELD = "not_held", "Not held (outcome unknown, the exchange said no)"
        ABANDONED = "abandoned", "Abandoned (worker lost)"  # rows from before the status check

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="placement_attempts_log")
    number = models.PositiveIntegerField()
    quantity = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=9, choices=Outcome.choices, default=Outcome.IN_FLIGHT)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["order", "number"]
        constraints = [models.UniqueConstraint(fields=["order", "number"], name="placement_attempt_unique")]

    def __str__(self) -> str:
        return f"attempt {self.number} for {self.order_id}: {self.outcome}"


class Execution(models.Model):
    """One fill of an order at the venue, from its ExecutionReport (SPEC §9); unique by ExecID.

    The venue's ExecIDs are unique within its journal; a new journal may use them again,
    but never for one of our orders it already reported on, so they are unique per order.
    Internal matches are ``matching.OrderMatch`` rows; an order's executions are both.
    """

    exec_id = models.CharField(max_length=64)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="venue_executions")
    quantity = models.PositiveIntegerField()
    price = models.DecimalField(max_digits=14, decimal_places=4)
    cum_quantity = models.PositiveIntegerField()
    executed_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["order", "cum_quantity"]
        constraints = [models.UniqueConstraint(fields=["order", "exec_id"], name="execution_order_exec_id")]
        indexes = [
            models.Index(fields=["order", "cum_quantity"], name="execution_order"),
            models.Index(fields=["exec_id"], name="execution_exec_id"),
        ]

    def __str__(self) -> str:
        return f"{self.exec_id}: {self.quantity} @ {self.price}"


class CancelRequest(models.Model):
    """One cancel we asked the venue for (its own ClOrdID), and whether the venue refused it."""

    cl_ord_id = models.CharField(max_length=64, unique=True)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="cancel_requests")
    requested_at = models.DateTimeField(default=timezone.now)
    rejected_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"cancel {self.cl_ord_id} of {self.order_id}"


class ReportCursor(models.Model):
    """How far the venue's stored reports have been applied to orders (the last report id).

    Moved in the same transaction as the orders it changed, so each report is applied once.
    """

    name = models.CharField(max_length=32, primary_key=True)
    position = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} at {self.position}"


class QuarantinedReport(models.Model):
    """A venue report that could not be applied: unknown order, or contradicting what we know.

    Alerted on (log and metric) and shown in the back office; the order is left as it was.
    """

    report_id = models.PositiveBigIntegerField(unique=True)
    cl_ord_id = models.CharField(max_length=64, blank=True)
    exec_id = models.CharField(max_length=64, blank=True)
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"report {self.report_id} ({self.cl_ord_id}): {self.reason}"


class OrderEvent(models.Model):
    """One change of an order that its client can see (SPEC §10), written by ``orders/transitions.py``.

    Inserted in the transaction of the change it describes, so it exists if and only
    if the change committed. ``id`` is the stream's event id; ``payload`` is the order
    as the API showed it right after the change (JSON text, rendered once at write
    time). ``owner``, ``instrument`` and ``status`` are copies for the stream's filters.
    """

    class Name(models.TextChoices):
        ACCEPTED = "accepted"
        MATCHED = "matched"
        SUBMITTED = "submitted"
        PARTIALLY_FILLED = "partially_filled"
        FILLED = "filled"
        CANCELLED = "cancelled"
        EXPIRED = "expired"
        REJECTED = "rejected"
        FAILED = "failed"
        CANCEL_REJECTED = "cancel_rejected"

    id = models.BigAutoField(primary_key=True)
    # No foreign-key constraints: one INSERT on the hot path, no parent-row lock checks,
    # and pruning never waits on the orders table.
    order = models.ForeignKey(Order, on_delete=models.DO_NOTHING, db_constraint=False, related_name="events")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # the (owner, id) index serves it
        related_name="+",
    )
    name = models.CharField(max_length=16, choices=Name.choices)
    instrument = models.CharField(max_length=12)
    status = models.CharField(max_length=16, choices=Order.Status.choices)
    payload = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["owner", "id"], name="order_event_owner")]

    def __str__(self) -> str:
        return f"event {self.id}: {self.name} {self.order_id}"
