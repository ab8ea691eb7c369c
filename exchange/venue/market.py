"""The venue's simulated market: instrument check, reference prices, how orders fill.

Pure functions of their arguments and a ``random.Random``: no clock, no storage.
"""

from __future__ import annotations

import random
import re
import zlib
from decimal import ROUND_HALF_EVEN, Decimal

CENT = Decimal("0.01")
_ISIN = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")


def is_valid_isin(value: str) -> bool:
    """An ISIN with a correct check digit (ISO 6166): the venue lists every such instrument."""
    if not _ISIN.fullmatch(value):
        return False
    digits = "".join(str(int(char, 36)) for char in value[:-1])
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2 == 0:
            number *= 2
            if number > 9:
                number -= 9
        total += number
    return (10 - total % 10) % 10 == int(value[-1])


def reference_price(instrument: str) -> Decimal:
    """A stable per-instrument price between 10.00 and 99.99, where market orders trade."""
    return Decimal(1000 + zlib.crc32(instrument.encode()) % 9000) / 100


def fill_price(instrument: str, side: str, limit: Decimal | None, rng: random.Random) -> Decimal:
    """The reference price moved by up to ±0.5 %, never worse than ``limit`` for the order's side."""
    price = (reference_price(instrument) * Decimal(1 + rng.uniform(-0.005, 0.005))).quantize(
        CENT, ROUND_HALF_EVEN
    )
    if limit is not None:
        price = min(price, limit) if side == "buy" else max(price, limit)
    return max(price, CENT)


def plan_lots(quantity: int, max_fills: int, rng: random.Random) -> list[int]:
    """Split ``quantity`` into 1 to ``max_fills`` positive lots that sum to it."""
    count = rng.randint(1, max(1, min(max_fills, quantity)))
    cuts = sorted(rng.sample(range(1, quantity), count - 1)) if count > 1 else []
    bounds = [0, *cuts, quantity]
    return [bounds[i + 1] - bounds[i] for i in range(count)]


def available_now(quantity: int, rng: random.Random) -> int:
    """Shares the market offers at once (IOC/FOK): uniform in 1..2×quantity, so FOK fills half the time."""
    return rng.randint(1, 2 * quantity)
