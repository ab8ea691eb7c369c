"""The order domain's errors, one hierarchy, with the messages tests import."""

LIMIT_PRICE_REQUIRED = "Attribute `limit_price` is required for type `limit`"
LIMIT_PRICE_PROHIBITED = "Providing a `limit_price` is prohibited for type `market`"
INTERNAL_ERROR = "Internal server error while placing the order"
CLIENT_ORDER_ID_CONFLICT = "An order with this `client_order_id` already exists with a different payload"
NOT_CANCELLABLE = (
    "Order {order_id} cannot be cancelled: it is {status}{detail}; only orders resting "
    "in the internal book with no exchange call in flight, or working at the venue, can be cancelled"
)
NOT_REPROCESSABLE = "Order {order_id} is {status}, not FAILED: nothing to reprocess"
EXCHANGE_STATUS_UNKNOWN = (
    "Order {order_id} was not reprocessed: the exchange could not say whether it holds the order "
    "({error}); try again"
)


class OrderError(Exception):
    """Base class of everything the order services refuse to do."""


class InvalidOrder(OrderError):
    pass


class ClientOrderIdConflict(OrderError):
    def __init__(self):
        super().__init__(CLIENT_ORDER_ID_CONFLICT)


class OrderNotCancellable(OrderError):
    def __init__(self, order):
        detail = " with an exchange call in flight" if order.in_flight else ""
        super().__init__(NOT_CANCELLABLE.format(order_id=order.id, status=order.status, detail=detail))


class OrderNotReprocessable(OrderError):
    def __init__(self, order):
        super().__init__(NOT_REPROCESSABLE.format(order_id=order.id, status=order.status))


class ExchangeStatusUnknown(OrderError):
    """Reprocess needs the exchange's word that it does not hold the order, and did not get it."""

    def __init__(self, order, error):
        super().__init__(EXCHANGE_STATUS_UNKNOWN.format(order_id=order.id, error=error))
