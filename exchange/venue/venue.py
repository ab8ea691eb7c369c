"""The venue's order handling: NewOrderSingle, cancels, status requests, fills and expiry.

``Venue`` is the application behind one acceptor ``Session``: it receives the
session's application messages in order and answers through ``session.send``. Every
state change is journaled in the same SQLite transaction as the report announcing it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from exchange.fix.codec import (
    BusinessRejectReason,
    CxlRejReason,
    ExecType,
    FieldValue,
    Message,
    MsgType,
    OrdRejReason,
    OrdStatus,
    SessionRejectReason,
    Tag,
    utc_timestamp,
)
from exchange.fix.session import Session
from exchange.venue import journal as j
from exchange.venue.market import available_now, fill_price, is_valid_isin, plan_lots

logger = logging.getLogger(__name__)

TRANSIENT_TEXT = "Connection not available"
UNKNOWN_ORDER_TEXT = "Unknown order"
DUPLICATE_TEXT = "Duplicate ClOrdID: the order's current state"
EXPIRED_TEXT = "End of trading day"
MAX_QUANTITY = 1_000_000_000  # the API's own limit: no order we accept is refused for size

SIDES = {"1": "buy", "2": "sell"}
ORD_TYPES = {"1": "market", "2": "limit"}
TIME_IN_FORCE = {"0": "day", "1": "gtc", "3": "ioc", "4": "fok"}
FIX_SIDE = {value: key for key, value in SIDES.items()}
FIX_ORD_TYPE = {value: key for key, value in ORD_TYPES.items()}
FIX_TIF = {value: key for key, value in TIME_IN_FORCE.items()}


@dataclass(frozen=True)
class VenueConfig:
    latency: float = 0.5
    failure_rate: float = 0.1
    max_fills: int = 5
    fill_interval: float = 1.0
    day_seconds: float = 3600.0
    firehose: int = 0  # reports a second over all orders; 0: normal fills
    seed: int | None = None


class Rejection(Exception):
    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


class Venue:
    def __init__(
        self,
        *,
        session: Session,
        journal: j.Journal,
        config: VenueConfig,
        loop: asyncio.AbstractEventLoop,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        self.journal = journal
        self.config = config
        self.loop = loop
        self.wall_clock = wall_clock
        self.rng = random.Random(config.seed)
        self.open: dict[str, j.VenueOrder] = {}
        # ClOrdIDs in their latency window, with messages about them that arrived meanwhile.
        self.pending: dict[str, list[Message]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._firehose_orders: deque[j.VenueOrder] = deque()
        self._day_timer: asyncio.TimerHandle | None = None
        self._firehose_task: asyncio.Task | None = None
        self.reports_sent = 0

    # --- start-up ----------------------------------------------------------------------

    def start(self) -> None:
        """Resume the orders the journal holds open, expire those of past days, arm the day timer."""
        for order in self.journal.open_orders():
            self.open[order.cl_ord_id] = order
        today = self.trading_day()
        for order in list(self.open.values()):
            if order.status == j.PENDING_CANCEL:
                self._finish_cancel(order)
            elif order.time_in_force == "day" and order.trading_day < today:
                self._expire(order)
            else:
                order.lots = plan_lots(order.leaves_qty, self.config.max_fills, self.rng)
                self._start_filling(order)
        self._arm_day_timer()
        if self.config.firehose:
            self._firehose_task = self.loop.create_task(self._firehose())
        logger.info("venue resumed %d open orders", len(self.open))

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._day_timer:
            self._day_timer.cancel()
        if self._firehose_task:
            self._firehose_task.cancel()

    def trading_day(self) -> int:
        """Days are windows of VENUE_DAY_SECONDS counted from the Unix epoch (86400: UTC midnight)."""
        return math.floor(self.wall_clock() / self.config.day_seconds)

    # --- inbound -----------------------------------------------------------------------

    def on_app(self, message: Message) -> None:
        msg_type = message.msg_type
        if msg_type == MsgType.NewOrderSingle:
            self._on_new_order(message)
        elif msg_type == MsgType.OrderCancelRequest:
            self._on_cancel(message)
        elif msg_type == MsgType.OrderStatusRequest:
            self._on_status(message)
        else:
            self.session.send(
                MsgType.BusinessMessageReject,
                [
                    (Tag.RefSeqNum, message.seq or 0),
                    (Tag.RefMsgType, msg_type),
                    (Tag.BusinessRejectReason, BusinessRejectReason.UnsupportedMessageType),
                    (Tag.Text, f"Unsupported MsgType {msg_type}"),
                ],
            )

    def _missing(self, message: Message, *tags: int) -> bool:
        for tag in tags:
            value = message.get(tag)
            if value is None or value == "":
                self.session.reject(
                    message, SessionRejectReason.RequiredTagMissing, f"Required tag missing: {tag}", tag
                )
                return True
        return False

    def _held_back(self, cl_ord_id: str, message: Message) -> bool:
        """Messages about an order still in its latency window wait for its outcome (in order)."""
        waiting = self.pending.get(cl_ord_id)
        if waiting is None:
            return False
        waiting.append(message)
        return True

    def _lookup(self, cl_ord_id: str) -> j.VenueOrder | None:
        return self.open.get(cl_ord_id) or self.journal.find(cl_ord_id)

    def _on_new_order(self, message: Message) -> None:
        if self._missing(message, Tag.ClOrdID, Tag.Side, Tag.OrderQty, Tag.OrdType):
            return
        if not message.get(Tag.Symbol) and not message.get(Tag.SecurityID):
            text = "Required tag missing: Symbol(55)"
            self.session.reject(message, SessionRejectReason.RequiredTagMissing, text, Tag.Symbol)
            return
        cl_ord_id = message.get(Tag.ClOrdID)
        if self._held_back(cl_ord_id, message):
            return
        existing = self._lookup(cl_ord_id)
        if existing is not None:
            self._send_report(existing, ExecType.OrderStatus, text=DUPLICATE_TEXT, journal=False)
            return
        self.pending[cl_ord_id] = []
        self.loop.call_later(self.config.latency, self._decide, message)

    def _decide(self, message: Message) -> None:
        cl_ord_id = message.get(Tag.ClOrdID)
        waiting = self.pending.pop(cl_ord_id, [])
        try:
            if self.rng.random() < self.config.failure_rate:
                self._send_transient_refusal(message)
            else:
                self._admit(message)
        finally:
            for held in waiting:
                self.on_app(held)

    def _send_transient_refusal(self, message: Message) -> None:
        """Nothing is held: the same ClOrdID may be sent again."""
        self._send_not_held(
            message,
            "T",
            ExecType.Rejected,
            OrdRejReason.Other,
            TRANSIENT_TEXT,
            (Tag.Symbol, Tag.Side, Tag.OrderQty),
        )

    def _send_not_held(
        self, message: Message, prefix: str, exec_type: str, reason: str, text: str, echoed: tuple
    ) -> None:
        """An ExecutionReport about an order the venue does not hold (OrdStatus=8, nothing journaled)."""
        body: list[tuple[int, FieldValue]] = [
            (Tag.OrderID, "NONE"),
            (Tag.ClOrdID, message.get(Tag.ClOrdID)),
            (Tag.ExecID, f"{prefix}{uuid.uuid4().hex}"),
            (Tag.ExecType, exec_type),
            (Tag.OrdStatus, OrdStatus.Rejected),
            (Tag.OrdRejReason, reason),
        ]
        for tag in echoed:
            if message.get(tag):
                body.append((tag, message.get(tag)))
        body += [
            (Tag.LeavesQty, 0),
            (Tag.CumQty, 0),
            (Tag.AvgPx, 0),
            (Tag.TransactTime, utc_timestamp()),
            (Tag.Text, text),
        ]
        self.session.send(MsgType.ExecutionReport, body)

    def _admit(self, message: Message) -> None:
        instrument = message.get(Tag.Symbol) or message.get(Tag.SecurityID) or ""
        values = {
            "cl_ord_id": message.get(Tag.ClOrdID),
            "instrument": instrument[:32],
            "side": SIDES.get(message.get(Tag.Side), message.get(Tag.Side)[:8]),
            "ord_type": ORD_TYPES.get(message.get(Tag.OrdType), message.get(Tag.OrdType)[:8]),
            "price": None,
            "quantity": 0,
            "time_in_force": TIME_IN_FORCE.get(message.get(Tag.TimeInForce, "0"), "?"),
            "status": j.NEW,
            "trading_day": self.trading_day(),
        }
        try:
            self._validate(message, values)
        except Rejection as rejection:
            order = self.journal.new_order(**values, reject_reason=rejection.reason, text=rejection.text)
            order.status = j.REJECTED
            self.journal.insert_order(order, utc_timestamp())
            self._send_report(order, ExecType.Rejected, text=rejection.text)
            return
        order = self.journal.new_order(**values)
        order.leaves_qty = order.quantity
        self.journal.insert_order(order, utc_timestamp())
        self.open[order.cl_ord_id] = order
        self._send_report(order, ExecType.New)
        if order.time_in_force in ("ioc", "fok"):
            self._execute_at_once(order)
        else:
            order.lots = plan_lots(order.quantity, self.config.max_fills, self.rng)
            self._start_filling(order)

    def _validate(self, message: Message, values: dict) -> None:
        """Fill ``values`` from ``message``; raise ``Rejection`` for a permanent refusal."""
        instrument = values["instrument"]
        if message.get(Tag.SecurityID) and not message.get(Tag.Symbol) and message.get(Tag.IDSource) != "4":
            raise Rejection(OrdRejReason.UnknownSymbol, "SecurityID must be an ISIN (IDSource 22=4)")
        if not is_valid_isin(instrument):
            raise Rejection(OrdRejReason.UnknownSymbol, f"Unknown instrument {instrument!r}")
        if values["side"] not in ("buy", "sell"):
            raise Rejection(OrdRejReason.UnsupportedOrderCharacteristic, "Side must be 1 (buy) or 2 (sell)")
        if values["ord_type"] not in ("market", "limit"):
            raise Rejection(OrdRejReason.UnsupportedOrderCharacteristic, "OrdType must be 1 or 2")
        if values["time_in_force"] == "?":
            raise Rejection(OrdRejReason.UnsupportedOrderCharacteristic, "TimeInForce must be 0, 1, 3 or 4")
        quantity_text = message.get(Tag.OrderQty)
        try:
            quantity = Decimal(quantity_text)
        except InvalidOperation:
            raise Rejection(OrdRejReason.IncorrectQuantity, "OrderQty is not a number") from None
        if not quantity.is_finite() or quantity != quantity.to_integral_value() or quantity <= 0:
            raise Rejection(OrdRejReason.IncorrectQuantity, "OrderQty must be a whole number above 0")
        if quantity > MAX_QUANTITY:
            raise Rejection(OrdRejReason.OrderExceedsLimit, f"OrderQty above {MAX_QUANTITY}")
        values["quantity"] = int(quantity)
        price_text = message.get(Tag.Price)
        if values["ord_type"] == "limit":
            try:
                price = Decimal(price_text or "")
            except InvalidOperation:
                raise Rejection(
                    OrdRejReason.UnsupportedOrderCharacteristic, "Price(44) required for a limit order"
                ) from None
            if not price.is_finite() or price <= 0 or price != price.quantize(Decimal("0.0001")):
                raise Rejection(OrdRejReason.UnsupportedOrderCharacteristic, "Price must be above 0")
            values["price"] = Decimal(format(price, "f"))  # "1E+3" would be no FIX price
        elif price_text:
            raise Rejection(OrdRejReason.UnsupportedOrderCharacteristic, "No Price(44) on a market order")

    def _on_cancel(self, message: Message) -> None:
        if self._missing(message, Tag.OrigClOrdID, Tag.ClOrdID):
            return
        orig = message.get(Tag.OrigClOrdID)
        if self._held_back(orig, message):
            return
        order = self._lookup(orig)
        if order is None:
            self._cancel_reject(message, None, CxlRejReason.UnknownOrder, UNKNOWN_ORDER_TEXT)
        elif not order.is_open:
            self._cancel_reject(
                message, order, CxlRejReason.TooLateToCancel, f"Too late to cancel: order {order.status}"
            )
        else:
            cancel_id = message.get(Tag.ClOrdID)
            order.status = j.PENDING_CANCEL
            self._send_report(order, ExecType.PendingCancel, cl_ord_id=cancel_id)
            self._finish_cancel(order, cancel_id)

    def _cancel_reject(self, message: Message, order: j.VenueOrder | None, reason: str, text: str) -> None:
        self.session.send(
            MsgType.OrderCancelReject,
            [
                (Tag.OrderID, order.order_id if order else "NONE"),
                (Tag.ClOrdID, message.get(Tag.ClOrdID)),
                (Tag.OrigClOrdID, message.get(Tag.OrigClOrdID)),
                (Tag.OrdStatus, j.ORD_STATUS[order.status] if order else OrdStatus.Rejected),
                (Tag.CxlRejResponseTo, "1"),
                (Tag.CxlRejReason, reason),
                (Tag.Text, text),
            ],
        )

    def _on_status(self, message: Message) -> None:
        if self._missing(message, Tag.ClOrdID):
            return
        cl_ord_id = message.get(Tag.ClOrdID)
        if self._held_back(cl_ord_id, message):
            return
        order = self._lookup(cl_ord_id)
        if order is not None:
            self._send_report(order, ExecType.OrderStatus, journal=False)
            return
        self._send_not_held(
            message,
            "S",
            ExecType.OrderStatus,
            OrdRejReason.UnknownOrder,
            UNKNOWN_ORDER_TEXT,
            (Tag.Symbol, Tag.Side),
        )

    # --- order life --------------------------------------------------------------------

    def _send_report(
        self,
        order: j.VenueOrder,
        exec_type: str,
        *,
        last_qty: int = 0,
        last_px: Decimal | None = None,
        text: str | None = None,
        cl_ord_id: str | None = None,
        journal: bool = True,
    ) -> None:
        """One ExecutionReport; journaled (execution row + order row) unless it only reports state."""
        now = utc_timestamp(self.wall_clock())
        if journal:
            order.exec_count += 1
            exec_id = f"{order.order_id}-{order.exec_count}"
            self.journal.insert_execution(
                exec_id=exec_id,
                order=order,
                exec_type=exec_type,
                last_qty=last_qty,
                last_px=last_px,
                text=text,
                transact_time=now,
            )
            self.journal.update_order(order, now)
        else:
            exec_id = f"S{uuid.uuid4().hex}"
        body: list[tuple[int, FieldValue]] = [
            (Tag.OrderID, order.order_id),
            (Tag.ClOrdID, cl_ord_id or order.cl_ord_id),
        ]
        if cl_ord_id:
            body.append((Tag.OrigClOrdID, order.cl_ord_id))
        body += [
            (Tag.ExecID, exec_id),
            (Tag.ExecType, exec_type),
            (Tag.OrdStatus, j.ORD_STATUS[order.status]),
        ]
        if order.status == j.REJECTED:
            body.append((Tag.OrdRejReason, order.reject_reason or OrdRejReason.Other))
        body += [
            (Tag.Symbol, order.instrument),
            (Tag.Side, FIX_SIDE.get(order.side, order.side)),
            (Tag.OrderQty, order.quantity),
            (Tag.OrdType, FIX_ORD_TYPE.get(order.ord_type, order.ord_type)),
        ]
        if order.price is not None:
            body.append((Tag.Price, str(order.price)))
        body.append((Tag.TimeInForce, FIX_TIF.get(order.time_in_force, "0")))
        if exec_type == ExecType.Trade:
            body += [(Tag.LastQty, last_qty), (Tag.LastPx, str(last_px))]
        body += [
            (Tag.LeavesQty, order.leaves_qty),
            (Tag.CumQty, order.cum_qty),
            (Tag.AvgPx, str(order.avg_px)),
            (Tag.TransactTime, now),
        ]
        text = text or (order.text if order.status == j.REJECTED else None)
        if text:
            body.append((Tag.Text, text))
        self.session.send(MsgType.ExecutionReport, body)
        self.reports_sent += 1

    def _close(self, order: j.VenueOrder) -> None:
        self.open.pop(order.cl_ord_id, None)
        timer = self._timers.pop(order.cl_ord_id, None)
        if timer:
            timer.cancel()

    def _trade(self, order: j.VenueOrder, quantity: int) -> None:
        price = fill_price(order.instrument, order.side, order.price, self.rng)
        order.cum_qty += quantity
        order.leaves_qty -= quantity
        order.notional += price * quantity
        order.status = j.FILLED if order.leaves_qty == 0 else j.PARTIALLY_FILLED
        if order.leaves_qty == 0:
            self._close(order)
        self._send_report(order, ExecType.Trade, last_qty=quantity, last_px=price)

    def _execute_at_once(self, order: j.VenueOrder) -> None:
        available = available_now(order.quantity, self.rng)
        if order.time_in_force == "ioc":
            self._trade(order, min(order.quantity, available))
        elif available >= order.quantity:
            self._trade(order, order.quantity)
        if order.leaves_qty:
            order.status = j.CANCELLED
            order.leaves_qty = 0
            self._close(order)
            text = f"{order.time_in_force.upper()}: not filled at once"
            self._send_report(order, ExecType.Canceled, text=text)

    def _start_filling(self, order: j.VenueOrder) -> None:
        if self.config.firehose:
            self._firehose_orders.append(order)
        else:
            self._timers[order.cl_ord_id] = self.loop.call_later(
                self.config.fill_interval, self._fill_next, order
            )

    def _fill_next(self, order: j.VenueOrder) -> None:
        self._timers.pop(order.cl_ord_id, None)
        if not order.is_open or order.status == j.PENDING_CANCEL:
            return
        lot = min(order.lots.pop(0) if order.lots else order.leaves_qty, order.leaves_qty)
        self._trade(order, lot)
        if order.is_open:
            self._start_filling(order)

    def _finish_cancel(self, order: j.VenueOrder, cancel_id: str | None = None) -> None:
        order.status = j.CANCELLED
        order.leaves_qty = 0
        self._close(order)
        self._send_report(order, ExecType.Canceled, cl_ord_id=cancel_id)

    def _expire(self, order: j.VenueOrder) -> None:
        order.status = j.EXPIRED
        order.leaves_qty = 0
        self._close(order)
        self._send_report(order, ExecType.Expired, text=EXPIRED_TEXT)

    def _arm_day_timer(self) -> None:
        day_end = (self.trading_day() + 1) * self.config.day_seconds
        delay = max(0.0, day_end - self.wall_clock()) + 0.001
        self._day_timer = self.loop.call_later(delay, self._end_of_day)

    def _end_of_day(self) -> None:
        today = self.trading_day()
        for order in list(self.open.values()):
            if order.time_in_force == "day" and order.trading_day < today and order.is_open:
                self._expire(order)
        self._arm_day_timer()

    def _client_backlog(self) -> int:
        """Bytes written to the client's socket and not yet sent (0 without a connection)."""
        stream = getattr(self.session.transport, "transport", None)
        return stream.get_write_buffer_size() if stream is not None else 0

    async def _firehose(self) -> None:
        """Fill open orders one share per report, round robin, at ``config.firehose`` reports a second."""
        rate = self.config.firehose
        period = 0.005
        budget = 0.0
        last = self.loop.time()
        while True:
            await asyncio.sleep(period)
            now = self.loop.time()
            budget = min(budget + (now - last) * rate, rate * 0.1)
            last = now
            orders = self._firehose_orders
            if self._client_backlog() > 4 * 1024 * 1024:
                budget = 0.0  # a slow reader: produce no faster than it takes
                continue
            while budget >= 1 and orders:
                order = orders[0]
                if not order.is_open or order.status == j.PENDING_CANCEL:
                    orders.popleft()
                    continue
                orders.rotate(-1)
                self._trade(order, 1)
                budget -= 1
            if not orders:
                budget = 0.0
