"""Back-office admin for the exchange side, read-only: the simulated exchange's ledger of
accepted placements, and the FIX gateway's stored reports and outbox.

It lives here, not in ``exchange/``: the exchange app is an adapter that imports
nothing of ours, and the back office is ours.
"""

from django.contrib import admin
from django.contrib.admin.filters import DateFieldListFilter
from django.db.models import Q

from exchange.models import ExchangeOrder, ExecutionReportRecord, OutboxMessage
from orders.admin.kit import (
    BackOfficeModelAdmin,
    InstrumentListFilter,
    book_link,
    order_link,
    parse_uuid,
)
from orders.isin import is_valid_isin


@admin.register(ExchangeOrder)
class ExchangeOrderAdmin(BackOfficeModelAdmin):
    list_display = ("id", "order", "instrument_book", "side", "quantity", "limit_price", "accepted_at")
    list_display_links = ("id",)
    list_filter = ("side", InstrumentListFilter, ("accepted_at", DateFieldListFilter))
    # accepted_at has no index; the primary key is the same order for a ledger.
    ordering = ("-id",)
    sortable_by = ()
    search_fields = ("instrument",)  # the real search is get_search_results
    search_help_text = "Our order id, or ISIN."
    fields = ("id", "order", "instrument_book", "side", "quantity", "limit_price", "accepted_at")
    readonly_fields = fields

    @admin.display(description="order")
    def order(self, obj):
        return order_link(obj.order_id)

    @admin.display(description="instrument")
    def instrument_book(self, obj):
        return book_link(obj.instrument)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if (order_id := parse_uuid(term)) is not None:
            return queryset.filter(order_id=order_id), False
        if is_valid_isin(term.upper()):
            return queryset.filter(instrument=term.upper()), False
        return queryset.none(), False


# --- The FIX gateway's records (SPEC §9): what the venue told us, and what we sent it ----------


class FixSearchMixin:
    """Search by an exact ClOrdID (our order's UUID, a cancel's id) or ExecID: index lookups only."""

    search_fields = ("cl_ord_id",)  # the real search is get_search_results
    search_help_text = "ClOrdID (our order id) or ExecID, exact."
    search_lookups: tuple[str, ...] = ()

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if (order_id := parse_uuid(term)) is not None:
            term = str(order_id)
        condition = Q()
        for lookup in self.search_lookups:
            condition |= Q(**{lookup: term})
        return queryset.filter(condition), False


def fixed_choices_filter(field: str, title: str, choices: tuple[tuple[str, str], ...]):
    """A list filter with known FIX values: no SELECT DISTINCT over millions of reports."""

    class FixedChoicesFilter(admin.SimpleListFilter):
        parameter_name = field

        def lookups(self, request, model_admin):
            return choices

        def queryset(self, request, queryset):
            return queryset.filter(**{field: self.value()}) if self.value() is not None else queryset

    FixedChoicesFilter.title = title
    return FixedChoicesFilter


MSG_TYPES = (("8", "ExecutionReport"), ("9", "OrderCancelReject"), ("j", "BusinessMessageReject"))
EXEC_TYPES = (
    ("0", "New"),
    ("F", "Trade"),
    ("6", "Pending cancel"),
    ("4", "Canceled"),
    ("C", "Expired"),
    ("8", "Rejected"),
    ("I", "Order status"),
)


@admin.register(ExecutionReportRecord)
class ExecutionReportRecordAdmin(FixSearchMixin, BackOfficeModelAdmin):
    list_display = (
        "id",
        "session_seq",
        "msg_type",
        "order",
        "exec_id",
        "exec_type",
        "ord_status",
        "last_qty",
        "last_px",
        "cum_qty",
        "leaves_qty",
        "transact_time",
        "received_at",
    )
    list_display_links = ("id",)
    list_filter = (
        fixed_choices_filter("msg_type", "message type", MSG_TYPES),
        fixed_choices_filter("exec_type", "exec type", EXEC_TYPES),
    )
    ordering = ("-id",)
    sortable_by = ()
    search_lookups = ("order_cl_ord_id", "dedupe_key")
    fields = (
        "id",
        "session_seq",
        "poss_dup",
        "msg_type",
        "dedupe_key",
        "order",
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
        "raw_message",
        "received_at",
    )
    readonly_fields = fields

    @admin.display(description="order")
    def order(self, obj):
        order_id = parse_uuid(obj.order_cl_ord_id)
        return order_link(order_id) if order_id else obj.order_cl_ord_id

    @admin.display(description="raw")
    def raw_message(self, obj):
        return obj.raw.replace("\x01", "|")


@admin.register(OutboxMessage)
class OutboxMessageAdmin(FixSearchMixin, BackOfficeModelAdmin):
    list_display = (
        "id",
        "kind",
        "order",
        "cl_ord_id",
        "symbol",
        "side",
        "order_qty",
        "price",
        "time_in_force",
        "attempt",
        "created_at",
        "sent_seq",
        "sent_at",
        "settled_at",
    )
    list_display_links = ("id",)
    list_filter = (
        "kind",
        ("sent_at", admin.EmptyFieldListFilter),
        ("settled_at", admin.EmptyFieldListFilter),
    )
    ordering = ("-id",)
    sortable_by = ()
    search_lookups = ("cl_ord_id", "orig_cl_ord_id")
    fields = (
        "id",
        "kind",
        "order",
        "cl_ord_id",
        "orig_cl_ord_id",
        "symbol",
        "side",
        "order_qty",
        "ord_type",
        "price",
        "time_in_force",
        "attempt",
        "created_at",
        "sent_at",
        "sent_seq",
        "settled_at",
        "error",
    )
    readonly_fields = fields

    @admin.display(description="order")
    def order(self, obj):
        order_id = parse_uuid(obj.orig_cl_ord_id or obj.cl_ord_id)
        return order_link(order_id) if order_id else "-"
