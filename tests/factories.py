"""factory_boy factories for the order service's models."""

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from orders.models import Order

VALID_ISINS = ["US0378331005", "US5949181045", "DE000BAY0017", "GB0002634946", "NL0000235190"]


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"client{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("secret-pass-123")


class TokenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Token

    user = factory.SubFactory(UserFactory)


class OrderFactory(factory.django.DjangoModelFactory):
    """A limit order as POST /orders would store it (the signal queues it)."""

    class Meta:
        model = Order

    owner = factory.SubFactory(UserFactory)
    type = Order.Type.LIMIT
    side = Order.Side.BUY
    instrument = VALID_ISINS[0]
    limit_price = Decimal("10.00")
    quantity = 100
    remaining_quantity = factory.LazyAttribute(lambda o: o.quantity)

    class Params:
        market = factory.Trait(type=Order.Type.MARKET, limit_price=None)


class OrderMatchFactory(factory.django.DjangoModelFactory):
    """One fill between a buy and a sell order of the same instrument.

    It writes the match row only; tests that need the orders' quantities to agree
    set ``matched_quantity`` and ``matched_notional`` on the orders themselves.
    """

    class Meta:
        model = "matching.OrderMatch"

    buy_order = factory.SubFactory(OrderFactory, side=Order.Side.BUY)
    sell_order = factory.SubFactory(
        OrderFactory, side=Order.Side.SELL, instrument=factory.SelfAttribute("..instrument")
    )
    instrument = VALID_ISINS[0]
    quantity = 10
    price = Decimal("10.00")
