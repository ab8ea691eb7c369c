"""Template tags of the back-office admin: the index dashboard and a cheap date hierarchy."""

import datetime

from django import template
from django.core.cache import cache
from django.db.models import Max, Min
from django.utils import formats, timezone
from django.utils.text import capfirst

from orders.backoffice import dashboard

register = template.Library()

# Counting orders by status reads a whole index; a few seconds of staleness spare the
# database when several clerks keep the admin index open.
DASHBOARD_CACHE_KEY = "orders:admin-dashboard"
DASHBOARD_CACHE_SECONDS = 10


@register.simple_tag(takes_context=True)
def orders_dashboard(context):
    """The dashboard for users who may view orders, else None."""
    request = context.get("request")
    if request is None or not request.user.has_perm("orders.view_order"):
        return None
    stats = cache.get(DASHBOARD_CACHE_KEY)
    if stats is None:
        stats = dashboard()
        cache.set(DASHBOARD_CACHE_KEY, stats, DASHBOARD_CACHE_SECONDS)
    return stats


@register.simple_tag
def order_status_badge(status, label=None):
    from orders.admin.kit import status_badge

    return status_badge(status, label)


@register.inclusion_tag("admin/date_hierarchy.html")
def orders_date_hierarchy(cl):
    """Django's date drill-down without its SELECT DISTINCT over every row.

    The stock tag lists the years, months or days that have rows, a scan of the
    whole table on a big one. This one reads the first and last date of the
    current selection (MIN/MAX, served by the date's index) and offers every
    period between them; an empty period just shows an empty list.
    """
    field_name = cl.date_hierarchy
    year_field, month_field, day_field = (f"{field_name}__{part}" for part in ("year", "month", "day"))
    year, month, day = (cl.params.get(name) for name in (year_field, month_field, day_field))

    def link(filters):
        return cl.get_query_string(filters, [f"{field_name}__"])

    def local(value):
        return timezone.localtime(value) if timezone.is_aware(value) else value

    if year and month and day:
        date = datetime.date(int(year), int(month), int(day))
        return {
            "show": True,
            "back": {
                "link": link({year_field: year, month_field: month}),
                "title": capfirst(formats.date_format(date, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(date, "MONTH_DAY_FORMAT"))}],
        }
    bounds = cl.queryset.aggregate(first=Min(field_name), last=Max(field_name))
    if bounds["first"] is None or bounds["last"] is None:
        return {"show": False}
    first, last = local(bounds["first"]), local(bounds["last"])
    if not year and first.year == last.year:
        year = first.year
        if first.month == last.month:
            month = first.month
    if year and month:
        start = first.date() if hasattr(first, "date") else first
        end = last.date() if hasattr(last, "date") else last
        days = [start + datetime.timedelta(days=n) for n in range((end - start).days + 1)]
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({year_field: year, month_field: month, day_field: date.day}),
                    "title": capfirst(formats.date_format(date, "MONTH_DAY_FORMAT")),
                }
                for date in days
            ],
        }
    if year:
        return {
            "show": True,
            "back": {"link": link({}), "title": "All dates"},
            "choices": [
                {
                    "link": link({year_field: year, month_field: number}),
                    "title": capfirst(
                        formats.date_format(datetime.date(int(year), number, 1), "YEAR_MONTH_FORMAT")
                    ),
                }
                for number in range(first.month, last.month + 1)
            ],
        }
    return {
        "show": True,
        "back": None,
        "choices": [
            {"link": link({year_field: number}), "title": str(number)}
            for number in range(first.year, last.year + 1)
        ],
    }
