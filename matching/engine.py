"""Price-time priority matching core for one instrument's order book.

Pure standard library so it can be tested and benchmarked without Django.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from itertools import count

BUY = "buy"
SELL = "sell"
_SIDES = (BUY, SELL)

# Lazy deletion leaves cancelled entries queued; rebuild a queue once at least
# this many (and at least half of it) are stale, so cancel-heavy books stay small.
_COMPACT_MIN_STALE = 64


@dataclass(slots=True)
class BookOrder:
    id: object
    side: str
    price: Decimal | None
    remaining: int
    sequence: int


@dataclass(frozen=True, slots=True)
class Fill:
    incoming_id: object
    resting_id: object
    buy_id: object
    sell_id: object
    quantity: int
    price: Decimal


def _validate(order: BookOrder) -> None:
    if order.side not in _SIDES:
        raise ValueError(f"invalid side {order.side!r} for order {order.id!r}")
    if order.remaining <= 0:
        raise ValueError(f"order {order.id!r} has remaining {order.remaining} <= 0")
    if order.price is not None:
        if not isinstance(order.price, Decimal):
            kind = type(order.price).__name__
            raise TypeError(f"order {order.id!r} price must be Decimal or None, got {kind}")
        # NaN would make heap comparisons raise mid-match and corrupt the book.
        if not order.price.is_finite():
            raise ValueError(f"order {order.id!r} has non-finite price {order.price}")


class _Side:
    """Resting orders of one side: FIFO of market orders plus a limit heap."""

    __slots__ = ("is_buy", "limit", "market", "stale_limit", "stale_market")

    def __init__(self, side: str) -> None:
        self.is_buy = side == BUY
        self.market: deque[tuple[int, int, BookOrder]] = deque()  # (sequence, token, order)
        self.limit: list[tuple[Decimal, int, int, BookOrder]] = []  # (price key, sequence, token, order)
        self.stale_market = 0
        self.stale_limit = 0


class OrderBook:
    """Resting orders of one instrument, matched by price-time priority.

    Entries are deleted lazily: each live order id maps to the token of its one
    valid queue entry, so removed or re-added orders leave harmless stale
    entries that are discarded when they surface.
    """

    def __init__(self, resting: Iterable[BookOrder] = ()) -> None:
        self._sides = {BUY: _Side(BUY), SELL: _Side(SELL)}
        self._live: dict[object, int] = {}
        self._orders: dict[object, BookOrder] = {}
        self._tokens = count()
        # Sorting keeps the market FIFO in sequence order without insertion scans.
        for order in sorted(resting, key=lambda o: o.sequence):
            self.add(order)

    # -- mutation -------------------------------------------------------

    def add(self, order: BookOrder) -> None:
        _validate(order)
        if order.id in self._live:
            raise ValueError(f"order {order.id!r} is already resting")
        token = next(self._tokens)
        book = self._sides[order.side]
        self._live[order.id] = token
        self._orders[order.id] = order
        if order.price is None:
            entry = (order.sequence, token, order)
            fifo = book.market
            if not fifo or fifo[-1][0] <= order.sequence:
                fifo.append(entry)
            else:
                # Callers normally hand out increasing sequences; an out-of-order
                # add still has to respect time priority, at O(n) cost.
                pos = len(fifo)
                while pos > 0 and fifo[pos - 1][0] > order.sequence:
                    pos -= 1
                fifo.insert(pos, entry)
        else:
            # Bids need the highest price on top of a min-heap; copy_negate is exact,
            # unlike unary minus, which rounds to the context precision.
            key = order.price.copy_negate() if book.is_buy else order.price
            heapq.heappush(book.limit, (key, order.sequence, token, order))

    def remove(self, order_id) -> None:
        if order_id not in self._live:
            return
        order = self._orders.pop(order_id)
        del self._live[order_id]
        book = self._sides[order.side]
        if order.price is None:
            book.stale_market += 1
        else:
            book.stale_limit += 1
        self._maybe_compact(book)

    def match(self, incoming: BookOrder) -> list[Fill]:
        _validate(incoming)
        if incoming.id in self._live:
            raise ValueError(f"order {incoming.id!r} is already resting in the book")
        book = self._sides[SELL if incoming.side == BUY else BUY]
        is_buy = incoming.side == BUY
        limit = incoming.price
        fills: list[Fill] = []

        while incoming.remaining > 0:
            # Resting market orders rank first, but never trade with a market order.
            if limit is not None and self._front_market(book) is not None:
                resting = book.market[0][2]
                price = limit
                from_heap = False
            else:
                top = self._front_limit(book)
                if top is None:
                    break
                resting = top[3]
                price = resting.price
                if limit is not None and (limit < price if is_buy else limit > price):
                    break
                from_heap = True

            qty = min(incoming.remaining, resting.remaining)
            incoming.remaining -= qty
            resting.remaining -= qty
            fills.append(
                Fill(
                    incoming_id=incoming.id,
                    resting_id=resting.id,
                    buy_id=incoming.id if is_buy else resting.id,
                    sell_id=resting.id if is_buy else incoming.id,
                    quantity=qty,
                    price=price,
                )
            )
            if resting.remaining == 0:
                if from_heap:
                    heapq.heappop(book.limit)
                else:
                    book.market.popleft()
                del self._live[resting.id]
                del self._orders[resting.id]
        return fills

    def submit(self, incoming: BookOrder) -> list[Fill]:
        fills = self.match(incoming)
        if incoming.remaining > 0:
            self.add(incoming)
        return fills

    # -- queries --------------------------------------------------------

    def best_bid(self) -> BookOrder | None:
        return self._best(self._sides[BUY])

    def best_ask(self) -> BookOrder | None:
        return self._best(self._sides[SELL])

    def orders(self) -> list[BookOrder]:
        return [o for o in self._orders.values() if o.remaining > 0]

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id) -> bool:
        return order_id in self._live

    # -- internals ------------------------------------------------------

    def _is_live(self, token: int, order: BookOrder) -> bool:
        if self._live.get(order.id) != token:
            return False
        if order.remaining <= 0:
            # Only reachable if a caller zeroed a resting order by hand; evict it
            # so it cannot be matched or reported as best.
            del self._live[order.id]
            del self._orders[order.id]
            return False
        return True

    def _front_market(self, book: _Side) -> BookOrder | None:
        fifo = book.market
        while fifo:
            _, token, order = fifo[0]
            if self._is_live(token, order):
                return order
            fifo.popleft()
            if book.stale_market:
                book.stale_market -= 1
        return None

    def _front_limit(self, book: _Side) -> tuple[Decimal, int, int, BookOrder] | None:
        heap = book.limit
        while heap:
            top = heap[0]
            if self._is_live(top[2], top[3]):
                return top
            heapq.heappop(heap)
            if book.stale_limit:
                book.stale_limit -= 1
        return None

    def _best(self, book: _Side) -> BookOrder | None:
        order = self._front_market(book)
        if order is not None:
            return order
        top = self._front_limit(book)
        return None if top is None else top[3]

    def _maybe_compact(self, book: _Side) -> None:
        if book.stale_limit >= _COMPACT_MIN_STALE and book.stale_limit * 2 >= len(book.limit):
            book.limit = [e for e in book.limit if self._live.get(e[3].id) == e[2]]
            heapq.heapify(book.limit)
            book.stale_limit = 0
        if book.stale_market >= _COMPACT_MIN_STALE and book.stale_market * 2 >= len(book.market):
            book.market = deque(e for e in book.market if self._live.get(e[2].id) == e[1])
            book.stale_market = 0
