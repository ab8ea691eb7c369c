"""The order representation SPEC §3 promises, shared by the tests that check it."""

REPRESENTATION_FIELDS = {
    "id",
    "client_order_id",
    "created_at",
    "updated_at",
    "type",
    "side",
    "instrument",
    "limit_price",
    "quantity",
    "matched_quantity",
    "placed_quantity",
    "remaining_quantity",
    "average_match_price",
    "status",
    "failure_reason",
}
