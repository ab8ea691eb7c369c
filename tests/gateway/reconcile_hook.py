"""A GATEWAY_RECONCILE_HOOK for tests: the ClOrdIDs in GATEWAY_TEST_EXTRA_IDS (comma separated)."""

import os


def extra_cl_ord_ids() -> list[str]:
    return [c for c in os.environ.get("GATEWAY_TEST_EXTRA_IDS", "").split(",") if c]
