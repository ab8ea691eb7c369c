"""``order_representation``, the compiled renderer, equals OrderOutputSerializer's own (no database)."""

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from orders.api.serializers import OrderOutputSerializer, order_representation
from orders.models import Order

quantities = st.integers(min_value=0, max_value=1_000_000_000)
notionals = st.decimals(min_value=0, max_value=10**12, places=4, allow_nan=False, allow_infinity=False)
# What the model holds: DecimalField(max_digits=14, decimal_places=2).
limit_prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999999999999.99"), places=2)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))

orders = st.builds(
    Order,
    id=st.uuids(version=4),
    client_order_id=st.none() | st.text(max_size=64),
    created_at=moments,
    updated_at=moments,
    type=st.sampled_from(Order.Type.values) | st.sampled_from(list(Order.Type)),
    side=st.sampled_from(list(Order.Side)),
    instrument=st.text(min_size=12, max_size=12),
    limit_price=st.none() | limit_prices,
    time_in_force=st.sampled_from(list(Order.TimeInForce)),
    quantity=quantities,
    matched_quantity=quantities,
    matched_notional=notionals,
    placed_quantity=quantities,
    remaining_quantity=quantities,
    filled_quantity=quantities,
    filled_notional=notionals,
    cancelled_quantity=quantities,
    status=st.sampled_from(Order.Status.values) | st.sampled_from(list(Order.Status)),
    in_flight=st.booleans(),
    failure_reason=st.text(max_size=200),
)


@settings(max_examples=300, deadline=None)
@given(orders)
def test_the_compiled_renderer_gives_the_serializers_fields_values_and_json(order):
    ours = order_representation(order)
    theirs = OrderOutputSerializer(order).data
    assert ours == dict(theirs)
    assert list(ours) == list(theirs)  # the same order of keys: the same JSON text
    assert json.dumps(ours) == json.dumps(theirs)


def test_an_order_as_post_orders_builds_it_before_saving():
    order = Order(
        type="limit",
        side="buy",
        instrument="US0378331005",
        quantity=5,
        remaining_quantity=5,
        limit_price=Decimal("10.5"),
        time_in_force="day",
        id=uuid.uuid4(),
    )
    assert order_representation(order) == dict(OrderOutputSerializer(order).data)
    assert order_representation(order)["limit_price"] == "10.50"
