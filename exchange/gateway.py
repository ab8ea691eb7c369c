"""The exchange gateway: ``place_order(order)`` and its errors (SPEC §6).

The default exchange is the simulated one with the original contract: every call
takes ``EXCHANGE_LATENCY`` seconds and fails with ``OrderPlacementError`` with
probability ``EXCHANGE_FAILURE_RATE``. It keeps its own ledger
(``exchange.ExchangeOrder``) keyed by our order id, so a repeated call for the
same order is acknowledged and not placed again.
"""

import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils.module_loading import import_string

from exchange.models import ExchangeOrder


class ExchangeError(Exception):
    """Base class of exchange failures."""


class OrderPlacementError(ExchangeError):
    """Transient: the exchange did not take the order; retrying may succeed."""


class OrderRejectedError(ExchangeError):
    """Permanent: the exchange refused the order; retrying will not help."""


@dataclass(frozen=True)
class Acknowledgement:
    order_id: object
    quantity: int
    duplicate: bool


class SimulatedExchange:
    def __init__(
        self,
        latency: float,
        failure_rate: float,
        rng: random.Random | None = None,
        outage_file: str = "",
    ):
        self.latency = latency
        self.failure_rate = failure_rate
        self.rng = rng or random.Random()
        # While this file exists every call fails: an exchange outage on demand (make chaos).
        self.outage_file = outage_file

    def place_order(self, order) -> Acknowledgement:
        """Place ``order.remaining_quantity`` of ``order``; idempotent per ``order.id``."""
        if self.latency > 0:
            time.sleep(self.latency)
        if self.rng.random() < self.failure_rate or (self.outage_file and os.path.exists(self.outage_file)):
            raise OrderPlacementError(f"Failed to place order {order.id}: Connection not available")
        if order.remaining_quantity <= 0:
            raise OrderRejectedError(f"Order {order.id} rejected: quantity must be positive")
        try:
            # A savepoint only when called inside a transaction: on its own the
            # INSERT is atomic and a duplicate needs no rollback.
            with transaction.atomic() if connection.in_atomic_block else nullcontext():
                ExchangeOrder.objects.create(
                    order_id=order.id,
                    instrument=order.instrument,
                    side=order.side,
                    quantity=order.remaining_quantity,
                    limit_price=order.limit_price,
                )
        except IntegrityError:
            accepted = ExchangeOrder.objects.get(order_id=order.id)
            return Acknowledgement(order_id=order.id, quantity=accepted.quantity, duplicate=True)
        return Acknowledgement(order_id=order.id, quantity=order.remaining_quantity, duplicate=False)


def get_exchange():
    """The configured exchange (``EXCHANGE_BACKEND``, a dotted path), built from settings."""
    backend = getattr(settings, "EXCHANGE_BACKEND", "exchange.gateway.SimulatedExchange")
    return import_string(backend)(
        latency=settings.EXCHANGE_LATENCY,
        failure_rate=settings.EXCHANGE_FAILURE_RATE,
        outage_file=settings.EXCHANGE_OUTAGE_FILE,
    )


def place_order(order) -> Acknowledgement:
    return get_exchange().place_order(order)
