"""A ``SessionStore`` in our database (MySQL/MariaDB in production), through the ORM.

Everything the gateway must not lose goes through one ``commit``, one transaction:
the session's sequence numbers, outbound messages kept for resends, the inbound
application messages received since the last commit (stored raw and parsed) and the
outbox rows moved to "sent". So after a crash either a report and the sequence
number that counts it are both stored, or neither (the venue resends it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from exchange.fix.reports import is_final_report
from exchange.models import ExecutionReportRecord, FixOutboundMessage, FixSession, OutboxMessage
from ordersite.db import update_rows

logger = logging.getLogger(__name__)

INSERT_BATCH = 1000


@dataclass
class CommitResult:
    """What one commit stored, for metrics: new records, and duplicates it skipped."""

    committed_at: datetime
    stored: list[dict] = field(default_factory=list)
    duplicates: int = 0
    sent: int = 0


class DjangoSessionStore:
    """Sequence numbers and outbound messages of session ``name``, plus what rides in its transactions.

    The numbers live in memory between commits; ``commit`` writes them together with
    whatever was queued by ``add_inbound`` and ``mark_sent``. A failed commit raises and
    keeps everything queued: the next commit retries it whole, and the session writes
    nothing to the socket until one succeeds. ``reload`` drops what is queued and
    re-reads the last committed state (after a connection is given up).
    """

    def __init__(
        self,
        name: str,
        on_commit: Callable[[CommitResult], None] | None = None,
        on_failure: Callable[[Exception], None] | None = None,
    ) -> None:
        self.name = name
        self.on_commit = on_commit
        self.on_failure = on_failure
        self.row, _ = FixSession.objects.get_or_create(name=name)
        self.reload()

    def reload(self) -> None:
        self.row.refresh_from_db(fields=["next_inbound", "next_outbound"])
        self._next_in = self.row.next_inbound
        self._next_out = self.row.next_outbound
        self._outbound: dict[int, bytes] = {}
        self._inbound: list[dict] = []
        self._sent: list[tuple[int, int, str]] = []
        self._reset = False
        self._dirty = False

    # --- SessionStore ----------------------------------------------------------------

    def next_inbound_seq(self) -> int:
        return self._next_in

    def set_next_inbound(self, seq: int) -> None:
        self._next_in = seq
        self._dirty = True

    def next_outbound_seq(self) -> int:
        return self._next_out

    def set_next_outbound(self, seq: int) -> None:
        self._next_out = seq
        self._dirty = True

    def save_outbound(self, seq: int, raw: bytes) -> None:
        self._outbound[seq] = raw
        self._next_out = seq + 1
        self._dirty = True

    def outbound_range(self, begin: int, end: int) -> Iterable[tuple[int, bytes]]:
        stored = {}
        if not self._reset:
            rows = FixOutboundMessage.objects.filter(session=self.row, seq__gte=begin, seq__lte=end)
            stored = {seq: bytes(raw) for seq, raw in rows.values_list("seq", "raw")}
        stored.update((seq, raw) for seq, raw in self._outbound.items() if begin <= seq <= end)
        return sorted(stored.items())

    def reset(self) -> None:
        self._next_in = self._next_out = 1
        self._outbound.clear()
        self._reset = True
        self._dirty = True

    def commit(self) -> None:
        if not self._dirty:
            return
        try:
            result = self._commit()
        except Exception as error:
            if self.on_failure is not None:
                self.on_failure(error)
            raise
        if self.on_commit is not None:
            self.on_commit(result)

    def _commit(self) -> CommitResult:
        result = CommitResult(committed_at=timezone.now())
        with transaction.atomic():
            if self._reset:
                FixOutboundMessage.objects.filter(session=self.row).delete()
            if self._outbound:
                FixOutboundMessage.objects.bulk_create(
                    [
                        FixOutboundMessage(session=self.row, seq=seq, raw=raw)
                        for seq, raw in self._outbound.items()
                    ],
                    batch_size=INSERT_BATCH,
                    update_conflicts=True,
                    update_fields=["raw"],
                    # MySQL's ON DUPLICATE KEY UPDATE takes no target; SQLite and PostgreSQL need one.
                    unique_fields=None if connection.vendor == "mysql" else ["session", "seq"],
                )
            if self._inbound:
                self._store_inbound(result)
            if self._sent:
                self._store_sent(result)
            FixSession.objects.filter(pk=self.row.pk).update(
                next_inbound=self._next_in,
                next_outbound=self._next_out,
                reports_stored=F("reports_stored") + len(result.stored),
            )
        self._outbound = {}
        self._inbound = []
        self._sent = []
        self._reset = self._dirty = False
        return result

    # --- what rides along ------------------------------------------------------------

    def add_inbound(self, record: dict) -> None:
        """Store ``record`` (``exchange.fix.reports.inbound_record``) at the next commit."""
        self._inbound.append(record)
        self._dirty = True

    def mark_sent(self, outbox_id: int, seq: int, error: str = "", *, settled: bool = False) -> None:
        """At the next commit, outbox row ``outbox_id`` went out as ``seq`` (0: never, because ``error``).

        ``settled``: nothing more is awaited for the row (not a new order), so it leaves
        the unsettled index that reconcile scans.
        """
        self._sent.append((outbox_id, seq, error[:255], settled))
        self._dirty = True

    @property
    def pending_inbound(self) -> int:
        return len(self._inbound)

    def _store_inbound(self, result: CommitResult) -> None:
        unique: dict[str, dict] = {}
        for record in self._inbound:
            unique.setdefault(record["dedupe_key"], record)
        existing = set(
            ExecutionReportRecord.objects.filter(session=self.row, dedupe_key__in=list(unique)).values_list(
                "dedupe_key", flat=True
            )
        )
        fresh = [record for key, record in unique.items() if key not in existing]
        result.duplicates = len(self._inbound) - len(fresh)
        now = result.committed_at
        _insert_records(fresh, self.row.pk, now)
        result.stored = fresh
        final = {record["order_cl_ord_id"] for record in fresh if is_final_report(record)}
        final.discard("")
        if final:
            OutboxMessage.objects.filter(
                kind=OutboxMessage.Kind.NEW_ORDER,
                cl_ord_id__in=final,
                sent_seq__gt=0,
                settled_at__isnull=True,
            ).update(settled_at=now)

    def _store_sent(self, result: CommitResult) -> None:
        now = result.committed_at
        rows = [
            OutboxMessage(
                id=outbox_id,
                sent_seq=seq,
                sent_at=now if seq else None,
                settled_at=now if settled else None,
                error=error,
            )
            for outbox_id, seq, error, settled in self._sent
        ]
        # One UPDATE for the lot without bulk_update's expressions (most of a send's cost).
        update_rows(rows, ("sent_seq", "sent_at", "settled_at", "error"))
        result.sent = sum(1 for _, seq, _, _ in self._sent if seq)


RECORD_COLUMNS = (
    "session_seq",
    "poss_dup",
    "msg_type",
    "dedupe_key",
    "order_cl_ord_id",
    "cl_ord_id",
    "orig_cl_ord_id",
    "venue_order_id",
    "exec_id",
    "exec_type",
    "ord_status",
    "last_qty",
    "last_px",
    "cum_qty",
    "leaves_qty",
    "avg_px",
    "transact_time",
    "ord_rej_reason",
    "cxl_rej_reason",
    "text",
    "raw",
)


def _insert_records(records: list[dict], session_id: int, received_at: datetime) -> None:
    """One multi-row INSERT per ``INSERT_BATCH`` records.

    Raw SQL, not ``bulk_create``: compiling a model instance per row costs ~0.45 ms, a
    ceiling of about 2,000 reports/s on its own (docs/decisions.md, "FIX gateway").
    """
    if not records:
        return
    ops = connection.ops
    table = ops.quote_name(ExecutionReportRecord._meta.db_table)
    columns = ", ".join(ops.quote_name(name) for name in (*RECORD_COLUMNS, "received_at", "session_id"))
    placeholders = ", ".join(["%s"] * (len(RECORD_COLUMNS) + 2))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"
    adapt_datetime = ops.adapt_datetimefield_value
    received = adapt_datetime(received_at)
    rows = []
    for record in records:
        row = [record[name] for name in RECORD_COLUMNS]
        row[16] = adapt_datetime(row[16])  # transact_time
        row += [received, session_id]
        rows.append(row)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), INSERT_BATCH):
            cursor.executemany(sql, rows[start : start + INSERT_BATCH])
