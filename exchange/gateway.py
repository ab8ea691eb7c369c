"""The exchange gateway: ``place_order(order)``, ``order_status(order_id)`` and their errors (SPEC §6).

The default exchange is the simulated one with the original contract: every call
takes ``EXCHANGE_LATENCY`` seconds and fails with ``OrderPlacementError`` with
probability ``EXCHANGE_FAILURE_RATE``. It keeps its own ledger
(``exchange.ExchangeOrder``) keyed by our order id, so a repeated call for the
same order is acknowledged and not placed again, and ``order_status`` answers
from that ledger whether it holds an order and for how much.

This module is an adapter: it imports nothing of ours but its own ledger and
reads only the attributes of the order it is handed.
"""

import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from exchange.models import ExchangeOrder

CONNECTION_NOT_AVAILABLE = "Connection not available"


class ExchangeError(Exception):
    """Base class of exchange failures."""


class OrderPlacementError(ExchangeError):
    """Transient: this call did not reach the exchange; retrying may succeed."""


class OrderRejectedError(ExchangeError):
    """Permanent: the exchange refused the order; retrying will not help."""


@dataclass(frozen=True)
class Acknowledgement:
    order_id: object
    quantity: int
    duplicate: bool


@dataclass(frozen=True)
class OrderStatus:
    """The exchange's own answer about one order: does it hold it, and for how much."""

    order_id: object
    held: bool
    quantity: int = 0


class SimulatedExchange:
    def __init__(
        self,
        latency: float,
        failure_rate: float,
        rng: random.Random | None = None,
        outage_file: str = "",
        stale_after: float | None = None,
    ):
        self.latency = latency
        self.failure_rate = failure_rate
        self.rng = rng or random.Random()
        # While this file exists every call fails: an exchange outage on demand (drills).
        self.outage_file = outage_file
        # An order that reaches the exchange longer than this after it was sent is refused,
        # as venues refuse stale orders by their sending time: once that long has passed,
        # a "not held" from order_status stays true (no call still on its way can land).
        self.stale_after = stale_after

    def place_order(self, order) -> Acknowledgement:
        """Place ``order.remaining_quantity`` of ``order``; idempotent per ``order.id``.

        ``order.last_attempt_at``, when set, is when the call was sent.
        """
        self._travel()
        # The ledger first: an order the exchange already holds is acknowledged as it
        # stands, whatever becomes of this call (SPEC §6: it dedupes by our order id).
        accepted = ExchangeOrder.objects.filter(order_id=order.id).first()
        if accepted is not None:
            return Acknowledgement(order_id=order.id, quantity=accepted.quantity, duplicate=True)
        self._fail_sometimes(f"Failed to place order {order.id}")
        sent_at = getattr(order, "last_attempt_at", None)
        if self._stale(sent_at):
            raise OrderPlacementError(
                f"Failed to place order {order.id}: sent at {sent_at}, arrived too late"
            )
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

    def order_status(self, order_id) -> OrderStatus:
        """Whether the exchange holds ``order_id``, from its ledger; the call itself may fail."""
        self._travel()
        self._fail_sometimes(f"Failed to query order {order_id}")
        quantity = ExchangeOrder.objects.filter(order_id=order_id).values_list("quantity", flat=True).first()
        if quantity is None:
            return OrderStatus(order_id=order_id, held=False)
        return OrderStatus(order_id=order_id, held=True, quantity=quantity)

    def _travel(self) -> None:
        if self.latency > 0:
            time.sleep(self.latency)

    def _fail_sometimes(self, what: str) -> None:
        if self.rng.random() < self.failure_rate or (self.outage_file and os.path.exists(self.outage_file)):
            raise OrderPlacementError(f"{what}: {CONNECTION_NOT_AVAILABLE}")

    def _stale(self, sent_at: datetime | None) -> bool:
        if self.stale_after is None or sent_at is None:
            return False
        return timezone.now() - sent_at > timedelta(seconds=self.stale_after)


def get_exchange():
    """The configured exchange (``EXCHANGE_BACKEND``, a dotted path), built from settings."""
    backend = getattr(settings, "EXCHANGE_BACKEND", "exchange.gateway.SimulatedExchange")
    return import_string(backend)(
        latency=settings.EXCHANGE_LATENCY,
        failure_rate=settings.EXCHANGE_FAILURE_RATE,
        outage_file=settings.EXCHANGE_OUTAGE_FILE,
        stale_after=settings.EXCHANGE_CALL_TIMEOUT,
    )


def place_order(order) -> Acknowledgement:
    return get_exchange().place_order(order)


def order_status(order_id) -> OrderStatus:
    return get_exchange().order_status(order_id)
