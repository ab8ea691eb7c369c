"""Back-office admin for what the venue reported (SPEC §9): fills and cancel requests, read-only.

Both are written only by the FIX gateway; clerks look them up by the venue's id
(ExecID, the cancel's ClOrdID) or by our order id, and follow the link to the order.
"""

from django.contrib import admin
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html

from orders.admin.kit import BackOfficeModelAdmin, ReadOnlyInline, order_link, parse_uuid
from orders.models import CancelRequest, Execution, QuarantinedReport


class VenueExecutionInline(ReadOnlyInline):
    """An order's fills at the venue, next to its internal matches, under their FIX names."""

    model = Execution
    fields = ("exec_id_link", "quantity", "price", "cum_qty", "executed_at")
    readonly_fields = fields
    ordering = ("cum_quantity",)
    verbose_name = "venue execution"
    verbose_name_plural = "venue executions"

    @admin.display(description="ExecID")
    def exec_id_link(self, obj):
        url = reverse("admin:orders_execution_change", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.exec_id)

    @admin.display(description="CumQty")
    def cum_qty(self, obj):
        return obj.cum_quantity


def _search_by_venue_id_or_order(queryset, term: str, venue_id_field: str):
    """Exact and indexed: the venue's id for the record, or our order id."""
    term = term.strip()
    if not term:
        return queryset, False
    if (order_id := parse_uuid(term)) is not None:
        return queryset.filter(order_id=order_id), False
    return queryset.filter(**{venue_id_field: term}), False


@admin.register(Execution)
class ExecutionAdmin(BackOfficeModelAdmin):
    list_display = ("exec_id", "order_page", "quantity", "price", "cum_quantity", "executed_at")
    list_display_links = ("exec_id",)
    # Newest first by primary key: executed_at has no index of its own.
    ordering = ("-id",)
    sortable_by = ()
    search_fields = ("exec_id",)  # the real search is get_search_results
    search_help_text = "ExecID, or our order id."
    fields = ("exec_id", "order_page", "quantity", "price", "cum_quantity", "executed_at", "created_at")
    readonly_fields = fields

    @admin.display(description="order")
    def order_page(self, obj):
        return order_link(obj.order_id)

    def get_search_results(self, request, queryset, search_term):
        return _search_by_venue_id_or_order(queryset, search_term, "exec_id")


@admin.register(CancelRequest)
class CancelRequestAdmin(BackOfficeModelAdmin):
    list_display = ("cl_ord_id", "order_page", "requested_at", "outcome", "reason")
    list_display_links = ("cl_ord_id",)
    ordering = ("-id",)
    sortable_by = ()
    search_fields = ("cl_ord_id",)  # the real search is get_search_results
    search_help_text = "The cancel's ClOrdID, or our order id."
    fields = ("cl_ord_id", "order_page", "requested_at", "rejected_at", "reason")
    readonly_fields = fields

    @admin.display(description="order")
    def order_page(self, obj):
        return order_link(obj.order_id)

    @admin.display(description="venue answer")
    def outcome(self, obj):
        return "refused" if obj.rejected_at else "not refused"

    def get_search_results(self, request, queryset, search_term):
        return _search_by_venue_id_or_order(queryset, search_term, "cl_ord_id")


@admin.register(QuarantinedReport)
class QuarantinedReportAdmin(BackOfficeModelAdmin):
    """Venue reports that were not applied: an unknown order, or a contradiction. Each one is an alert."""

    list_display = ("report_link", "cl_ord_id", "exec_id", "reason", "created_at")
    list_display_links = ("report_link",)
    ordering = ("-id",)
    sortable_by = ()
    search_fields = ("cl_ord_id",)  # the real search is get_search_results
    search_help_text = "ClOrdID (our order id), or ExecID."
    fields = ("report_link", "cl_ord_id", "exec_id", "reason", "created_at")
    readonly_fields = fields

    @admin.display(description="stored report")
    def report_link(self, obj):
        url = reverse("admin:exchange_executionreportrecord_change", args=[obj.report_id])
        return format_html('<a href="{}">#{}</a>', url, obj.report_id)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(cl_ord_id=term) | Q(exec_id=term)), False
