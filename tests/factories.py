"""factory_boy factories for the order service's models."""

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
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
    matched_quantity = 0
    matched_notional = Decimal("0")
    placed_quantity = 0
    remaining_quantity = factory.LazyAttribute(lambda o: o.quantity)
    # Internal matches are fills (SPEC §9).
    filled_quantity = factory.LazyAttribute(lambda o: o.matched_quantity)
    filled_notional = factory.LazyAttribute(lambda o: o.matched_notional)

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


class ExecutionFactory(factory.django.DjangoModelFactory):
    """One venue fill of an order (SPEC §9), as the gateway stores it from an ExecutionReport.

    Like ``OrderMatchFactory`` it writes the fill row only; tests set the order's
    quantities themselves.
    """

    class Meta:
        model = "orders.Execution"

    order = factory.SubFactory(OrderFactory)
    exec_id = factory.Sequence(lambda n: f"E{n:08d}")
    quantity = 10
    price = Decimal("10.0000")
    cum_quantity = factory.LazyAttribute(lambda e: e.quantity)
    executed_at = factory.LazyFunction(timezone.now)


# --- Back office (admin) -------------------------------------------------------------------


def backoffice_group(name: str):
    """The back-office group ``name`` as migrations orders/0003, 0008 and 0009 make it.

    Transactional tests flush the database, groups included; this puts them back.
    """
    import importlib

    from django.apps import apps
    from django.contrib.auth.models import Group

    group = Group.objects.filter(name=name).first()
    if group is None:
        importlib.import_module("orders.migrations.0003_backoffice_groups").backoffice_groups_sync(apps)
        importlib.import_module(
            "orders.migrations.0008_backoffice_venue_permissions"
        ).backoffice_venue_permissions_sync(apps)
        importlib.import_module("orders.migrations.0009_backoffice_fix_gateway").grant_views(apps)
        group = Group.objects.get(name=name)
    return group


class StaffUserFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True


class ClerkFactory(StaffUserFactory):
    """A staff user in the "Back office clerk" group."""

    class Meta:
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"clerk{n}")

    @factory.post_generation
    def backoffice_groups(self, create, extracted, **kwargs):
        if create:
            self.groups.add(backoffice_group(extracted or "Back office clerk"))


class FailedOrderFactory(OrderFactory):
    """An order whose routing gave up (SPEC §4): nothing working, a reason recorded."""

    status = Order.Status.FAILED
    remaining_quantity = 0
    cancelled_quantity = factory.LazyAttribute(lambda o: o.quantity - o.matched_quantity - o.placed_quantity)
    needs_match = False
    failure_reason = "Exchange placement deadline passed: Connection not available"
    last_error = "OrderPlacementError: Connection not available"


class PlacementAttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "orders.PlacementAttempt"

    order = factory.SubFactory(OrderFactory)
    number = factory.Sequence(lambda n: n + 1)
    quantity = factory.LazyAttribute(lambda a: a.order.quantity)
    outcome = "failed"
    error = "OrderPlacementError: Connection not available"


class ExchangeOrderFactory(factory.django.DjangoModelFactory):
    """The exchange's ledger row for an order it accepted."""

    class Meta:
        model = "exchange.ExchangeOrder"

    order_id = factory.LazyFunction(lambda: OrderFactory().pk)
    instrument = VALID_ISINS[0]
    side = Order.Side.BUY
    quantity = 100
    limit_price = Decimal("10.00")
