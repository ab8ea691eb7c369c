"""Query filters for GET /orders (SPEC §3)."""

import datetime

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField

from orders.models import Order


class UTCRepresentableIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 datetime that stays within datetime's range once converted to UTC.

    "0001-01-01T00:00:00+14:00" parses, but the query converts it to UTC, which
    underflows year 1 (OverflowError, a 500) unless it is refused here.
    """

    default_error_messages = {"out_of_range": "Enter a date and time between years 1 and 9999 in UTC."}

    def to_python(self, value):
        value = super().to_python(value)
        if value is not None:
            try:
                value.astimezone(datetime.UTC)
            except OverflowError:
                raise ValidationError(self.error_messages["out_of_range"], code="out_of_range") from None
        return value


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCRepresentableIsoDateTimeField


class OrderFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Order.Status.choices)
    side = django_filters.ChoiceFilter(choices=Order.Side.choices)
    type = django_filters.ChoiceFilter(choices=Order.Type.choices)
    time_in_force = django_filters.ChoiceFilter(choices=Order.TimeInForce.choices)
    instrument = django_filters.CharFilter(method="filter_instrument", max_length=12)
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    client_order_id = django_filters.CharFilter(max_length=64)

    class Meta:
        model = Order
        fields = [
            "status",
            "side",
            "type",
            "time_in_force",
            "instrument",
            "created_after",
            "created_before",
            "client_order_id",
        ]

    def filter_instrument(self, queryset, name, value):
        return queryset.filter(instrument=value.upper())
