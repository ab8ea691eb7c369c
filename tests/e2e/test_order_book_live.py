"""The back office's order-book page follows the order event stream (SPEC §10) in a real browser.

The page is served by uvicorn (the ASGI application, as ``make run`` serves it): the
stream is an async view, which a WSGI test server cannot keep open.
"""

from decimal import Decimal

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from playwright.sync_api import expect

from matching.services import instrument_match_pending
from orders.services import order_create
from tests.e2e.test_backoffice_browser import ISIN, page, shot  # noqa: F401 (page is a fixture)
from tests.e2e.test_backoffice_browser import pytestmark as browser_marks
from tests.factories import ClerkFactory, UserFactory
from tests.pipeline_helpers import WebServer

pytestmark = [*browser_marks, pytest.mark.slow]


@pytest.fixture
def web():
    server = WebServer(ORDER_EVENTS_HEARTBEAT=1).start()
    yield server
    server.stop()


def test_the_order_book_updates_itself_when_orders_change(web, page):  # noqa: F811
    clerk = ClerkFactory(username="clara")
    # The server runs the production settings, whose hashers do not read the tests' MD5.
    clerk.password = PBKDF2PasswordHasher().encode("secret-pass-123", "somesalt", iterations=1000)
    clerk.save(update_fields=["password"])
    client = UserFactory()
    page.goto(f"{web.url}/admin/login/?next=/admin/orders/order/book/{ISIN}/")
    page.fill("#id_username", "clara")
    page.fill("#id_password", "secret-pass-123")
    page.click("input[type=submit]")
    expect(page.locator("#bids")).to_contain_text("No resting bids.")
    expect(page.locator("#book-live-status")).to_contain_text("Live")

    order_create(
        owner=client, type="limit", side="buy", instrument=ISIN, quantity=70, limit_price=Decimal("9.50")
    )
    instrument_match_pending(isin=ISIN)  # no fill: it rests (no event of its own)
    order_create(
        owner=client, type="limit", side="sell", instrument=ISIN, quantity=30, limit_price=Decimal("9.40")
    )

    # No reload by the clerk: the accepted events made the page fetch the book again.
    expect(page.locator("#asks")).to_contain_text("9.40", timeout=10_000)
    instrument_match_pending(isin=ISIN)  # crosses: matched and partially_filled events
    expect(page.locator("#recent-matches")).to_contain_text("9.50", timeout=10_000)
    expect(page.locator("#bids")).to_contain_text("40")
    shot(page, "order-book-live")
