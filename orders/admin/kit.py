"""The back office's shared kit: read-only, scale-safe admin bases, filters, links and badges.

Every back-office admin (orders, matches, exchange placements) builds on these, so
that lists stay fast on millions of rows (no full-table COUNT(*), indexed filters)
and records stay read-only whatever the user's permissions.
"""

import string
import uuid

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

from matching.models import Instrument
from orders.models import Order

INSTRUMENT_FILTER_LIMIT = 100

# One colour per status: blues and violets still working with us, teals at the venue,
# greens filled, greys ended without a fill, reds refused or given up.
STATUS_COLOURS = {
    Order.Status.OPEN: "#1d4ed8",
    Order.Status.PARTIAL: "#7c3aed",
    Order.Status.MATCHED: "#15803d",
    Order.Status.SUBMITTED: "#0f766e",
    Order.Status.PARTIALLY_FILLED: "#0e7490",
    Order.Status.FILLED: "#166534",
    Order.Status.PENDING_CANCEL: "#a16207",
    Order.Status.CANCELLED: "#6b7280",
    Order.Status.EXPIRED: "#57534e",
    Order.Status.REJECTED: "#9f1239",
    Order.Status.FAILED: "#b91c1c",
}
BADGE_STYLE = (
    "display:inline-block;padding:2px 7px;border-radius:10px;color:#fff;"
    "font-size:11px;font-weight:600;letter-spacing:.02em;white-space:nowrap;background:{}"
)


class EstimatedCountPaginator(Paginator):
    """A paginator that never runs COUNT(*) over a whole big MySQL table.

    An unfiltered changelist of a large table takes InnoDB's row estimate from
    information_schema; a filtered one (its WHERE served by an index) and a small
    table are counted exactly. Page links past the real end show an empty page.
    """

    estimate_above = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return len(queryset)
        if not queryset.query.where:
            estimate = table_rows_estimate(queryset)
            if estimate is not None and estimate >= self.estimate_above:
                return estimate
        return queryset.count()


def table_rows_estimate(queryset: QuerySet) -> int | None:
    """The storage engine's row estimate for the queryset's table (MySQL/MariaDB only)."""
    connection = connections[queryset.db]
    if connection.vendor != "mysql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_ROWS FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            [queryset.model._meta.db_table],
        )
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else None


class InstrumentListFilter(admin.SimpleListFilter):
    """Instruments from the (small) Instrument table, not a SELECT DISTINCT over every row."""

    title = "instrument"
    parameter_name = "instrument"
    field_name = "instrument"

    def lookups(self, request, model_admin):
        isins = list(
            Instrument.objects.order_by("isin").values_list("isin", flat=True)[:INSTRUMENT_FILTER_LIMIT]
        )
        selected = (self.value() or "").strip().upper()
        if selected and selected not in isins:
            isins.append(selected)  # beyond the limit, or typed into the URL: still applied and shown
        return [(isin, isin) for isin in isins]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.field_name: self.value().strip().upper()})
        return queryset


class ReadOnlyAdminMixin:
    """Records are viewable, never added, changed or deleted through admin forms."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class BackOfficeModelAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only, and no query that counts or scans a whole big table."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts are one COUNT per filter choice
    paginator = EstimatedCountPaginator
    list_per_page = 100


def parse_uuid(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term.strip())
    except ValueError:
        return None


def uuid_prefix(term: str) -> str | None:
    """The first 8+ hex digits of a UUID as typed by a clerk, in the canonical hyphenated form.

    Hyphenated, the prefix matches both a native UUID column (MariaDB >= 10.7 shows
    hyphens) and a char(32) one (Django strips them from the pattern there).
    """
    digits = term.strip().replace("-", "").lower()
    if not (8 <= len(digits) < 32 and all(char in string.hexdigits for char in digits)):
        return None
    groups, start = [], 0
    for end in (8, 12, 16, 20, 32):
        if start < len(digits):
            groups.append(digits[start:end])
        start = end
    return "-".join(groups)


def order_link(order_id, text=None) -> str:
    url = reverse("admin:orders_order_change", args=[order_id])
    return format_html('<a href="{}">{}</a>', url, text or order_id)


def book_link(isin: str) -> str:
    url = reverse("admin:orders_order_book", args=[isin])
    return format_html('<a href="{}" title="Order book of {}">{}</a>', url, isin, isin)


def status_badge(status: str, label: str | None = None) -> str:
    colour = STATUS_COLOURS.get(status, "#374151")
    return format_html(
        '<span class="order-status order-status-{}" style="{}">{}</span>',
        status.lower(),
        BADGE_STYLE.format(colour),
        label or status,
    )


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    """An inline of related records, shown and never edited."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
