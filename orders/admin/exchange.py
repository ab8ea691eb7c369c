"""Back-office admin for the simulated exchange's ledger of accepted placements: read-only.

It lives here, not in ``exchange/``: the exchange app is an adapter that imports
nothing of ours, and the back office is ours.
"""

from django.contrib import admin
from django.contrib.admin.filters import DateFieldListFilter

from exchange.models import ExchangeOrder
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
