"""Query filters for GET /orders (SPEC §3)."""

import django_filters

from orders.models import Order


class OrderFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Order.Status.choices)
    side = django_filters.ChoiceFilter(choices=Order.Side.choices)
    type = django_filters.ChoiceFilter(choices=Order.Type.choices)
    instrument = django_filters.CharFilter(method="filter_instrument", max_length=12)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    client_order_id = django_filters.CharFilter(max_length=64)

    class Meta:
        model = Order
        fields = [
            "status",
            "side",
            "type",
            "instrument",
            "created_after",
            "created_before",
            "client_order_id",
        ]

    def filter_instrument(self, queryset, name, value):
        return queryset.filter(instrument=value.upper())
