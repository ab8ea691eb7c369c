"""Template tags of the back-office admin: the dashboard on the admin index."""

from django import template
from django.core.cache import cache

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
    from orders.admin import status_badge

    return status_badge(status, label)
