"""Back-office admin for internal matches: read-only, linked to both orders and the book."""

from django.contrib import admin
from django.contrib.admin.filters import DateFieldListFilter
from django.db.models import Q

from matching.models import OrderMatch
from orders.admin.kit import (
    BackOfficeModelAdmin,
    InstrumentListFilter,
    book_link,
    order_link,
    parse_uuid,
)
from orders.isin import is_valid_isin


@admin.register(OrderMatch)
class OrderMatchAdmin(BackOfficeModelAdmin):
    list_display = ("id", "instrument_book", "quantity", "price", "buy", "sell", "matched_at")
    list_display_links = ("id",)
    list_filter = (InstrumentListFilter, ("matched_at", DateFieldListFilter))
    sortable_by = ("id", "matched_at")
    search_fields = ("instrument",)  # the real search is get_search_results
    search_help_text = "Match number, an order id (buyer or seller), or ISIN."
    fields = ("id", "instrument_book", "quantity", "price", "buy", "sell", "matched_at")
    readonly_fields = fields

    def get_ordering(self, request):
        # Newest first: by id over the whole table (the primary key), by time within
        # one instrument (the instrument/time index); matched_at alone has no index.
        if request.GET.get(InstrumentListFilter.parameter_name):
            return ("-matched_at", "-id")
        return ("-id",)

    @admin.display(description="instrument")
    def instrument_book(self, obj):
        return book_link(obj.instrument)

    @admin.display(description="buy order")
    def buy(self, obj):
        return order_link(obj.buy_order_id)

    @admin.display(description="sell order")
    def sell(self, obj):
        return order_link(obj.sell_order_id)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        if (order_id := parse_uuid(term)) is not None:
            return queryset.filter(Q(buy_order_id=order_id) | Q(sell_order_id=order_id)), False
        if is_valid_isin(term.upper()):
            return queryset.filter(instrument=term.upper()), False
        return queryset.none(), False
