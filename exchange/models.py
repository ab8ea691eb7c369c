"""The simulated exchange's own ledger of accepted orders (SPEC §6)."""

from django.db import models
from django.utils import timezone


class ExchangeOrder(models.Model):
    """An order the exchange accepted; unique per our order id, so placing twice is a no-op."""

    order_id = models.UUIDField(unique=True)
    instrument = models.CharField(max_length=12)
    side = models.CharField(max_length=4)
    quantity = models.PositiveIntegerField()
    limit_price = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    accepted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-accepted_at"]
        verbose_name = "exchange placement"

    def __str__(self) -> str:
        return f"{self.order_id} x{self.quantity}"


# --- Our side of the FIX session (SPEC §9, run_gateway) -------------------------------


class FixSession(models.Model):
    """One FIX session's sequence numbers, and the state ``run_gateway`` last reported.

    ``next_inbound``/``next_outbound`` change only in the transaction that stores what
    they count (inbound reports, outbound messages). The status columns are written
    every second or so by the gateway for ``/healthz`` and ``/metrics``.
    """

    name = models.CharField(max_length=64, unique=True)
    next_inbound = models.PositiveBigIntegerField(default=1)
    next_outbound = models.PositiveBigIntegerField(default=1)
    logged_on = models.BooleanField(default=False)
    status_at = models.DateTimeField(null=True, blank=True)
    logged_on_since = models.DateTimeField(null=True, blank=True)
    last_disconnect_reason = models.CharField(max_length=255, blank=True)
    resend_requests_sent = models.PositiveBigIntegerField(default=0)
    resend_requests_answered = models.PositiveBigIntegerField(default=0)
    duplicates_ignored = models.PositiveBigIntegerField(default=0)
    reports_stored = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "FIX session"

    def __str__(self) -> str:
        return self.name


class FixOutboundMessage(models.Model):
    """An application message we sent, kept byte for byte for the counterparty's ResendRequest."""

    session = models.ForeignKey(FixSession, on_delete=models.CASCADE, related_name="outbound")
    seq = models.PositiveBigIntegerField()
    raw = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "seq"], name="fix_outbound_session_seq")]
        verbose_name = "FIX outbound message"


class ExecutionReportRecord(models.Model):
    """An inbound application message (35=8, 35=9, 35=j, …), stored raw and parsed.

    Written in the transaction that advances the session's next inbound sequence
    number. ``dedupe_key`` is unique per session: the ExecID for an ExecutionReport, ``9:<ClOrdID>``
    for an OrderCancelReject (one answer per cancel request), ``<MsgType>:<RefSeqNum or
    MsgSeqNum>:<original SendingTime>`` otherwise. ``order_cl_ord_id`` is the order the
    message is about (OrigClOrdID on cancel flows, else ClOrdID). ``id`` order is
    commit order (one writer): read with ``report_batch_after``.
    """

    session = models.ForeignKey(FixSession, on_delete=models.PROTECT, related_name="reports")
    session_seq = models.PositiveBigIntegerField()
    poss_dup = models.BooleanField(default=False)
    msg_type = models.CharField(max_length=4)
    dedupe_key = models.CharField(max_length=96)
    order_cl_ord_id = models.CharField(max_length=64, blank=True)
    cl_ord_id = models.CharField(max_length=64, blank=True)
    orig_cl_ord_id = models.CharField(max_length=64, blank=True)
    venue_order_id = models.CharField(max_length=64, blank=True)
    exec_id = models.CharField(max_length=64, blank=True)
    exec_type = models.CharField(max_length=2, blank=True)
    ord_status = models.CharField(max_length=2, blank=True)
    last_qty = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    last_px = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    cum_qty = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    leaves_qty = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    avg_px = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    transact_time = models.DateTimeField(null=True, blank=True)
    ord_rej_reason = models.CharField(max_length=8, blank=True)
    cxl_rej_reason = models.CharField(max_length=8, blank=True)
    text = models.CharField(max_length=255, blank=True)
    raw = models.TextField()
    received_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "dedupe_key"], name="fix_report_dedupe")]
        indexes = [models.Index(fields=["order_cl_ord_id", "id"], name="fix_report_order")]
        verbose_name = "FIX execution report"

    def __str__(self) -> str:
        return f"{self.msg_type} {self.exec_id or self.dedupe_key} {self.order_cl_ord_id}"


class OutboxMessage(models.Model):
    """A message to the venue, written by whoever decided it, sent by ``run_gateway``.

    Unsent while ``sent_seq`` is null; the gateway sets ``sent_seq``/``sent_at`` in the
    transaction that stores the outbound FIX message, before its bytes leave. A row
    the gateway cannot encode gets ``sent_seq = 0`` and ``error``. ``settled_at``: for
    a new order, when a report with a final OrdStatus for its ClOrdID was stored after
    the row was sent (reconcile no longer asks about it); for anything else, when it
    was sent (nothing to reconcile), so unsettled rows stay few.
    """

    class Kind(models.TextChoices):
        NEW_ORDER = "new_order", "NewOrderSingle"
        CANCEL = "cancel", "OrderCancelRequest"
        STATUS_REQUEST = "status_request", "OrderStatusRequest"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    cl_ord_id = models.CharField(max_length=64)
    orig_cl_ord_id = models.CharField(max_length=64, blank=True)
    symbol = models.CharField(max_length=12, blank=True)
    side = models.CharField(max_length=4, blank=True)
    order_qty = models.PositiveBigIntegerField(null=True, blank=True)
    ord_type = models.CharField(max_length=8, blank=True)
    price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    time_in_force = models.CharField(max_length=4, blank=True)
    attempt = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    sent_seq = models.PositiveBigIntegerField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=255, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["sent_seq", "id"], name="fix_outbox_unsent"),
            models.Index(fields=["cl_ord_id"], name="fix_outbox_cl_ord_id"),
            models.Index(fields=["orig_cl_ord_id"], name="fix_outbox_orig_cl_ord_id"),
            models.Index(fields=["settled_at", "kind"], name="fix_outbox_unsettled"),
        ]
        verbose_name = "FIX outbox message"

    def __str__(self) -> str:
        return f"{self.kind} {self.cl_ord_id} #{self.attempt}"
