"""Input and output shapes of the orders API (SPEC §3)."""

from decimal import Decimal

from rest_framework import serializers

from matching.models import OrderMatch
from orders.errors import LIMIT_PRICE_PROHIBITED, LIMIT_PRICE_REQUIRED
from orders.isin import ISIN_PATTERN, isin_check_digit
from orders.models import Order

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


class OrderMatchOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderMatch
        fields = ["id", "quantity", "price", "matched_at"]


class OrderOutputSerializer(serializers.ModelSerializer):
    average_match_price = serializers.DecimalField(
        max_digits=20, decimal_places=4, read_only=True, allow_null=True
    )

    class Meta:
        model = Order
        fields = [
            "id",
            "client_order_id",
            "created_at",
            "updated_at",
            "type",
            "side",
            "instrument",
            "limit_price",
            "quantity",
            "matched_quantity",
            "placed_quantity",
            "remaining_quantity",
            "average_match_price",
            "status",
            "in_flight",
            "failure_reason",
        ]
        read_only_fields = fields


class OrderDetailOutputSerializer(OrderOutputSerializer):
    matches = serializers.SerializerMethodField()

    class Meta(OrderOutputSerializer.Meta):
        fields = [*OrderOutputSerializer.Meta.fields, "matches"]
        read_only_fields = fields

    def get_matches(self, order) -> list[dict]:
        from orders.selectors import match_list_for_order

        return OrderMatchOutputSerializer(match_list_for_order(order=order), many=True).data
