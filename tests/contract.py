"""The order representation SPEC §3 and §9 promise, shared by the tests that check it."""

REPRESENTATION_FIELDS = {
    "id",
    "client_order_id",
    "created_at",
    "updated_at",
    "type",
    "side",
    "instrument",
    "limit_price",
    "time_in_force",
    "quantity",
    "matched_quantity",
    "placed_quantity",
    "remaining_quantity",
    "average_match_price",
    "filled_quantity",
    "average_fill_price",
    "cancelled_quantity",
    "status",
    "failure_reason",
}

# GET /orders/{id} adds these to the representation.
DETAIL_FIELDS = REPRESENTATION_FIELDS | {"matches", "executions"}
EXECUTION_FIELDS = {"exec_id", "source", "quantity", "price", "executed_at"}
