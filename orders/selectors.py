"""Reads of orders (STYLE: selectors own the queries the API and admin run)."""

from django.db.models import QuerySet

from matching.models import OrderMatch
from orders.models import Order


def order_list(*, user, filters=None) -> QuerySet[Order]:
    """The orders ``user`` may see: their own, or every order for staff."""
    queryset = Order.objects.all()
    if not user.is_staff:
        queryset = queryset.filter(owner=user)
    if filters:
        queryset = queryset.filter(**filters)
    return queryset


def match_list_for_order(*, order: Order) -> QuerySet[OrderMatch]:
    """The fills of one order, oldest first."""
    field = "buy_order" if order.side == Order.Side.BUY else "sell_order"
    return OrderMatch.objects.filter(**{field: order}).order_by("matched_at", "id")
