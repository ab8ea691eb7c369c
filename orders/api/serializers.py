"""Input and output shapes of the orders API (SPEC §3)."""

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from orders.errors import LIMIT_PRICE_PROHIBITED, LIMIT_PRICE_REQUIRED
from orders.isin import ISIN_PATTERN, isin_check_digit
from orders.models import Order
from orders.selectors import INTERNAL, VENUE, execution_list_for_order

MAX_QUANTITY = 1_000_000_000


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only: DRF's IntegerField would take 10.0, "10" and true-ish strings."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A JSON string only: DRF's CharField would turn 42 into "42" and 1.5 into "1.5"."""

    default_error_messages = {"invalid": "Must be a JSON string, not a number or other value."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class PriceField(serializers.DecimalField):
    """A positive decimal with at most two places, as a JSON number or string; never a bool."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class InstrumentField(serializers.CharField):
    default_error_messages = {
        "format": "Enter a valid ISIN: 2 letters, 9 letters or digits, 1 check digit.",
        "check_digit": "Invalid ISIN check digit.",
    }

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        # Before upper-casing: "ſ".upper() is "S" and "ı".upper() is "I".
        if not value.isascii():
            self.fail("format")
        value = value.upper()
        if not ISIN_PATTERN.match(value):
            self.fail("format")
        if isin_check_digit(value[:11]) != int(value[11]):
            self.fail("check_digit")
        return value


class OrderCreateInputSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=Order.Type.choices)
    side = serializers.ChoiceField(choices=Order.Side.choices)
    instrument = InstrumentField(max_length=12, min_length=12)
    limit_price = PriceField(
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0.01"),
        required=False,
        allow_null=True,
    )
    quantity = StrictIntegerField(min_value=1, max_value=MAX_QUANTITY)
    client_order_id = StrictCharField(max_length=64, required=False, allow_null=True)
    time_in_force = serializers.ChoiceField(
        choices=Order.TimeInForce.choices, required=False, default=Order.TimeInForce.DAY
    )

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)

    def validate(self, attrs):
        limit_price = attrs.get("limit_price")
        if attrs["type"] == Order.Type.LIMIT and limit_price is None:
            raise serializers.ValidationError({"limit_price": [LIMIT_PRICE_REQUIRED]})
        if attrs["type"] == Order.Type.MARKET and limit_price is not None:
            raise serializers.ValidationError({"limit_price": [LIMIT_PRICE_PROHIBITED]})
        return attrs


_order_create_input = OrderCreateInputSerializer()


def order_create_input_validate(data) -> dict:
    """POST /orders' body checked as ``OrderCreateInputSerializer(data=data).is_valid(raise_exception=True)``.

    A JSON object is checked by one shared instance (``run_validation`` keeps no
    per-call state), which saves deep-copying seven fields on every request; anything
    else takes the serializer's own path, whose error body for it is its own.
    """
    if not isinstance(data, dict):
        serializer = OrderCreateInputSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data
    return _order_create_input.run_validation(data)


class OrderMatchOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    quantity = serializers.IntegerField(read_only=True)
    price = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)
    matched_at = serializers.DateTimeField(read_only=True)


class OrderExecutionOutputSerializer(serializers.Serializer):
    """One execution (SPEC §9): an internal match (``M<match id>``) or a venue fill (its ExecID)."""

    exec_id = serializers.CharField(read_only=True)
    source = serializers.ChoiceField(
        choices=[(INTERNAL, "Internal match"), (VENUE, "Venue fill")], read_only=True
    )
    quantity = serializers.IntegerField(read_only=True)
    # Four places: venue prices (LastPx) may be finer than our two-place limit prices.
    price = serializers.DecimalField(max_digits=14, decimal_places=4, read_only=True)
    executed_at = serializers.DateTimeField(read_only=True)


class OrderOutputSerializer(serializers.Serializer):
    """An order as clients see it (SPEC §3).

    Declared field by field rather than as a ModelSerializer: this is the API
    contract, and ModelSerializer re-derives its fields from the model on every
    response, which was a quarter of the cost of POST /orders.
    """

    id = serializers.UUIDField(read_only=True)
    client_order_id = serializers.CharField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    type = serializers.ChoiceField(choices=Order.Type.choices, read_only=True)
    side = serializers.ChoiceField(choices=Order.Side.choices, read_only=True)
    instrument = serializers.CharField(read_only=True)
    limit_price = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True, allow_null=True)
    time_in_force = serializers.ChoiceField(choices=Order.TimeInForce.choices, read_only=True)
    quantity = serializers.IntegerField(read_only=True)
    matched_quantity = serializers.IntegerField(read_only=True)
    placed_quantity = serializers.IntegerField(read_only=True)
    remaining_quantity = serializers.IntegerField(read_only=True)
    average_match_price = serializers.DecimalField(
        max_digits=20, decimal_places=4, read_only=True, allow_null=True
    )
    filled_quantity = serializers.IntegerField(read_only=True)
    average_fill_price = serializers.DecimalField(
        max_digits=20, decimal_places=4, read_only=True, allow_null=True
    )
    cancelled_quantity = serializers.IntegerField(read_only=True)
    status = serializers.ChoiceField(choices=Order.Status.choices, read_only=True)
    in_flight = serializers.BooleanField(read_only=True)
    failure_reason = serializers.CharField(read_only=True)


def _plain(field: serializers.Field):
    """A cheaper function equal to ``field.to_representation`` for the values an order holds.

    Integers, text, UUIDs and booleans come out as they are stored (DRF's functions
    return exactly that for them); decimals, datetimes and choices keep DRF's own.
    """
    kind = type(field)
    if kind is serializers.IntegerField:
        return int
    if kind is serializers.CharField:
        return str
    if kind is serializers.UUIDField and field.uuid_format == "hex_verbose":
        return str
    if kind is serializers.BooleanField:
        return bool
    return field.to_representation


class _CompiledRepresentation:
    """``serializer.to_representation(instance)`` for a serializer of plain attributes, as one loop.

    DRF's own loop resolves each field's source generically (dotted paths, callables,
    mappings) and turns every value through its field; an order has none of the first
    and mostly plain values, and this runs on every event and every response.
    ``tests/unit/test_order_representation.py`` holds it equal to the serializer's.
    """

    def __init__(self, serializer: serializers.Serializer):
        self.fields = []
        for field in serializer.fields.values():
            if field.write_only:
                continue
            plain = field.source != "*" and "." not in field.source
            if not plain or isinstance(field, serializers.SerializerMethodField):
                raise TypeError(f"{field.field_name}: only plain attributes compile")
            self.fields.append((field.field_name, field.source, _plain(field)))

    def __call__(self, instance) -> dict:
        return {
            name: None if (value := getattr(instance, source)) is None else to_representation(value)
            for name, source, to_representation in self.fields
        }


order_representation = _CompiledRepresentation(OrderOutputSerializer())
"""One order as OrderOutputSerializer renders it (the API's responses and every order event)."""


class OrderDetailOutputSerializer(OrderOutputSerializer):
    """GET /orders/{id}: the order, its matches and its executions (SPEC §3, §9)."""

    matches = serializers.SerializerMethodField()
    executions = serializers.SerializerMethodField()

    def to_representation(self, order):
        # One read (two queries) serves both lists: the matches are the internal executions.
        self._executions = execution_list_for_order(order=order)
        return super().to_representation(order)

    @extend_schema_field(OrderMatchOutputSerializer(many=True))
    def get_matches(self, order) -> list[dict]:
        matches = [
            {"id": e.match_id, "quantity": e.quantity, "price": e.price, "matched_at": e.executed_at}
            for e in self._executions
            if e.source == INTERNAL
        ]
        return OrderMatchOutputSerializer(matches, many=True).data

    @extend_schema_field(OrderExecutionOutputSerializer(many=True))
    def get_executions(self, order) -> list[dict]:
        return OrderExecutionOutputSerializer(self._executions, many=True).data
