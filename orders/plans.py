"""What the pipeline hands its placement dispatcher: which order is due at the exchange, and when."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RoutePlan:
    """An order due at the exchange at ``route_at``.

    A plan with ``recover`` asks the exchange about attempt ``attempt`` instead of
    sending anything: that attempt's outcome is unknown (its process died, its answer
    or its record was lost), so only the exchange's answer may end it (SPEC §6). The
    attempt number ties the question to that attempt: once the order has moved on,
    the plan matches nothing.
    """

    order_id: object
    instrument: str
    route_at: datetime
    recover: bool = False
    attempt: int | None = None
