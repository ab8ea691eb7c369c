"""The order admin (SPEC §7): read-only records, service-backed actions, order books.

Nobody adds, edits or deletes an order through a form; the two actions call
``order_reprocess`` and ``order_cancel`` and report per order what they did or why
not.
"""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.filters import DateFieldListFilter
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from exchange.models import ExchangeOrder
from matching.models import OrderMatch
from orders.admin.kit import (
    BADGE_STYLE,
    BackOfficeModelAdmin,
    InstrumentListFilter,
    ReadOnlyInline,
    book_link,
    order_link,
    parse_uuid,
    status_badge,
    uuid_prefix,
)
from orders.admin.venue import VenueExecutionInline
from orders.backoffice import order_book_for_instrument, order_book_instruments
from orders.errors import OrderError
from orders.isin import is_valid_isin
from orders.models import Order, PlacementAttempt
from orders.reports import OrdStatus
from orders.selectors import order_event_last_id
from orders.services import order_cancel, order_reprocess

# How many per-order "skipped" messages one action shows before summarising the rest.
ACTION_MESSAGE_LIMIT = 20
# The most orders one "Cancel selected orders" confirmation lists, and so cancels.
CANCEL_CONFIRM_LIMIT = 1000


class _MatchInline(ReadOnlyInline):
    model = OrderMatch
    counterparty_field = ""
    fields = ("match", "quantity", "price", "counterparty", "counterparty_client", "matched_at")
    readonly_fields = fields
    ordering = ("matched_at", "id")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related(f"{self.counterparty_field}__owner")

    @admin.display(description="match")
    def match(self, obj):
        url = reverse("admin:matching_ordermatch_change", args=[obj.pk])
        return format_html('<a href="{}">#{}</a>', url, obj.pk)

    @admin.display(description="counterparty order")
    def counterparty(self, obj):
        return order_link(getattr(obj, f"{self.counterparty_field}_id"))

    @admin.display(description="counterparty client")
    def counterparty_client(self, obj):
        return getattr(obj, self.counterparty_field).owner.get_username()


class BuyMatchInline(_MatchInline):
    fk_name = "buy_order"
    counterparty_field = "sell_order"
    verbose_name = "match"
    verbose_name_plural = "matches (this order bought)"


class SellMatchInline(_MatchInline):
    fk_name = "sell_order"
    counterparty_field = "buy_order"
    verbose_name = "match"
    verbose_name_plural = "matches (this order sold)"


class PlacementAttemptInline(ReadOnlyInline):
    model = PlacementAttempt
    fields = ("number", "quantity", "started_at", "finished_at", "outcome", "error")
    readonly_fields = fields
    ordering = ("number",)
    verbose_name = "exchange placement attempt"
    verbose_name_plural = "history: exchange placement attempts"


@admin.register(Order)
class OrderAdmin(BackOfficeModelAdmin):
    list_display = (
        "short_id",
        "client",
        "instrument_book",
        "side",
        "type",
        "limit_price",
        "time_in_force",
        "quantity",
        "matched_placed",
        "filled_quantity",
        "status_badge",
        "created",
    )
    list_display_links = ("short_id",)
    list_filter = (
        "status",
        "side",
        "type",
        "time_in_force",
        InstrumentListFilter,
        ("created_at", DateFieldListFilter),
    )
    list_select_related = ("owner",)
    # Sorting by an unindexed column of millions of rows would sort them all.
    sortable_by = ("created", "status_badge", "quantity", "limit_price")
    date_hierarchy = "created_at"
    search_fields = ("client_order_id",)  # the real search is get_search_results
    search_help_text = "Order id (full, or its first 8+ characters), client order id, or ISIN."
    actions = ("reprocess_selected", "cancel_selected")
    change_list_template = "admin/orders/order/change_list.html"
    change_form_template = "admin/orders/order/change_form.html"

    fieldsets = (
        (
            "Order",
            {
                "fields": (
                    "id",
                    "owner",
                    "client_order_id",
                    "instrument_book",
                    "side",
                    "type",
                    "limit_price",
                    "time_in_force",
                    "quantity",
                )
            },
        ),
        (
            "Where it stands",
            {
                "fields": (
                    "status_badge",
                    "matched_quantity",
                    "placed_quantity",
                    "filled_quantity",
                    "remaining_quantity",
                    "cancelled_quantity",
                    "average_match_price",
                    "average_fill_price",
                    "needs_match",
                    "in_flight",
                    "route_at",
                )
            },
        ),
        (
            "Exchange placement",
            {
                "fields": (
                    "exchange_placement",
                    "venue_ord_status",
                    "venue_cum_quantity",
                    "placement_attempts",
                    "first_attempt_at",
                    "last_attempt_at",
                    "last_error",
                    "failure_reason",
                )
            },
        ),
        ("Timestamps", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = tuple(name for _, options in fieldsets for name in options["fields"])

    # -- list columns -----------------------------------------------------------------------

    @admin.display(description="id")
    def short_id(self, obj):
        # The first 8 hex digits are what clerks quote and search by; hover shows the rest.
        return format_html(
            '<span title="{}" style="font-family:monospace">{}</span>', obj.pk, str(obj.pk)[:8]
        )

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        return format_html(
            '<span style="white-space:nowrap">{}<br>{}</span>',
            obj.created_at.strftime("%Y-%m-%d"),
            obj.created_at.strftime("%H:%M:%S"),
        )

    @admin.display(description="client")
    def client(self, obj):
        return obj.owner.get_username()

    @admin.display(description="instrument")
    def instrument_book(self, obj):
        return book_link(obj.instrument)

    @admin.display(description="matched / placed")
    def matched_placed(self, obj):
        return f"{obj.matched_quantity} / {obj.placed_quantity}"

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        badge = status_badge(obj.status, obj.get_status_display())
        if obj.in_flight:
            return format_html(
                '{} <span style="{}" title="An exchange call is under way">in flight</span>',
                badge,
                BADGE_STYLE.format("#b45309"),
            )
        return badge

    @admin.display(description="average match price")
    def average_match_price(self, obj):
        return obj.average_match_price

    @admin.display(description="average fill price")
    def average_fill_price(self, obj):
        return obj.average_fill_price

    @admin.display(description="venue status (FIX OrdStatus)")
    def venue_ord_status(self, obj):
        if not obj.venue_status:
            return "no answer from the venue"
        try:
            name = OrdStatus(obj.venue_status).name.replace("_", " ").capitalize()
        except ValueError:
            return obj.venue_status
        return f"{name} ({obj.venue_status})"

    @admin.display(description="accepted by the exchange")
    def exchange_placement(self, obj):
        placement = ExchangeOrder.objects.filter(order_id=obj.pk).first()
        if placement is None:
            return "not placed at the exchange"
        url = reverse("admin:exchange_exchangeorder_change", args=[placement.pk])
        return format_html(
            '<a href="{}">{} {} accepted at {}</a>',
            url,
            placement.quantity,
            placement.instrument,
            placement.accepted_at.isoformat(sep=" ", timespec="seconds"),
        )

    # -- search and inlines -----------------------------------------------------------------

    def get_search_results(self, request, queryset, search_term):
        """Exact, index-friendly search: an ISIN, an order id or its prefix, a client order id."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if is_valid_isin(term.upper()):
            return queryset.filter(instrument=term.upper()), False
        condition = Q(client_order_id=term)
        if (order_id := parse_uuid(term)) is not None:
            condition |= Q(pk=order_id)
        elif (prefix := uuid_prefix(term)) is not None:
            condition |= Q(id__startswith=prefix)
        return queryset.filter(condition), False

    def get_inlines(self, request, obj):
        if obj is None:
            return []
        matches = BuyMatchInline if obj.side == Order.Side.BUY else SellMatchInline
        return [matches, VenueExecutionInline, PlacementAttemptInline]

    # -- actions ----------------------------------------------------------------------------

    def has_reprocess_permission(self, request):
        return request.user.has_perm("orders.reprocess_order")

    def has_cancel_permission(self, request):
        return request.user.has_perm("orders.cancel_order")

    @admin.action(description="Reprocess selected failed orders", permissions=["reprocess"])
    def reprocess_selected(self, request, queryset):
        self._apply(request, queryset, order_reprocess, done="Reprocessed", what="back in the pipeline")

    @admin.action(description="Cancel selected orders", permissions=["cancel"])
    def cancel_selected(self, request, queryset):
        """Like Django's delete action: a page lists the selection, and only its "Yes" cancels.

        The page posts the listed ids back, not "all matching the filter", so what was
        confirmed is exactly what gets cancelled.
        """
        if request.POST.get("post") == "yes":
            self._apply(request, queryset, order_cancel, done="Cancelled", what="cancelled")
            return None
        orders = list(
            queryset.select_related("owner").order_by("created_at", "id")[: CANCEL_CONFIRM_LIMIT + 1]
        )
        if len(orders) > CANCEL_CONFIRM_LIMIT:
            self.message_user(
                request,
                f"Select at most {CANCEL_CONFIRM_LIMIT} orders to cancel at once; nothing was cancelled.",
                messages.ERROR,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Cancel orders?",
            "subtitle": None,
            "opts": self.opts,
            "orders": [(order, self.status_badge(order)) for order in orders],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/orders/order/cancel_selected_confirmation.html", context)

    def _apply(self, request, queryset, service, *, done: str, what: str) -> None:
        """Run ``service`` on each selected order; report what it did and, per order, why it did not."""
        succeeded: list[Order] = []
        skipped: list[str] = []
        for order in queryset.order_by("created_at", "id"):
            try:
                order = service(order=order)
            except OrderError as exc:
                skipped.append(str(exc))
                continue
            succeeded.append(order)
            # The order's admin history (and "Recent actions") keep who did it and when.
            self.log_change(request, order, f"{done} via the admin action.")
        if succeeded:
            shown = ", ".join(str(order.pk) for order in succeeded[:ACTION_MESSAGE_LIMIT])
            more = (
                f" and {len(succeeded) - ACTION_MESSAGE_LIMIT} more"
                if len(succeeded) > ACTION_MESSAGE_LIMIT
                else ""
            )
            self.message_user(
                request,
                f"{done} {_orders(len(succeeded))}, now {what}: {shown}{more}.",
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request,
                f"Skipped {_orders(len(skipped))} of {len(succeeded) + len(skipped)} selected:",
                messages.WARNING,
            )
            for reason in skipped[:ACTION_MESSAGE_LIMIT]:
                self.message_user(request, f"Skipped: {reason}.", messages.WARNING)
            if len(skipped) > ACTION_MESSAGE_LIMIT:
                self.message_user(
                    request, f"… and {len(skipped) - ACTION_MESSAGE_LIMIT} more skipped.", messages.WARNING
                )

    # -- order book pages -------------------------------------------------------------------

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        custom = [
            path("book/", self.admin_site.admin_view(self.book_index_view), name=f"{prefix}_book_index"),
            path("book/<str:isin>/", self.admin_site.admin_view(self.book_view), name=f"{prefix}_book"),
            path(
                "<path:object_id>/reprocess/",
                self.admin_site.admin_view(self.reprocess_view),
                name=f"{prefix}_reprocess",
            ),
        ]
        return custom + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_reprocess": self.has_reprocess_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def reprocess_view(self, request, object_id):
        """The "Reprocess" button on a FAILED order's page: the same service as the list action."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_reprocess_permission(request):
            raise PermissionDenied
        order = self.get_object(request, unquote(object_id))
        if order is None:
            raise Http404("No such order")
        self._apply(
            request,
            Order.objects.filter(pk=order.pk),
            order_reprocess,
            done="Reprocessed",
            what="back in the pipeline",
        )
        return redirect("admin:orders_order_change", order.pk)

    def _book_context(self, request, **extra):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return {**self.admin_site.each_context(request), "opts": self.opts, **extra}

    def book_index_view(self, request):
        context = self._book_context(request, title="Order books", instruments=order_book_instruments())
        return TemplateResponse(request, "admin/orders/order/book_index.html", context)

    def book_view(self, request, isin: str):
        isin = isin.strip().upper()
        if not is_valid_isin(isin):
            raise Http404(f"{isin!r} is not an ISIN")
        context = self._book_context(
            request,
            title=f"Order book {isin}",
            book=order_book_for_instrument(isin=isin),
            # The page follows the event stream from here: nothing between render and connect is missed.
            last_event_id=order_event_last_id(),
        )
        return TemplateResponse(request, "admin/orders/order/book.html", context)


def _orders(count: int) -> str:
    return f"{count} order" if count == 1 else f"{count} orders"
