"""A back-office clerk's day in a real browser (SPEC §7), against the live server.

Headless Debian chromium driven by Playwright; `make test` installs the browser
(scripts/browser.sh ensure). Screenshots go to artifacts/e2e/ for a human to look at.
"""

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from orders.models import Order
from tests.factories import (
    ClerkFactory,
    FailedOrderFactory,
    OrderFactory,
    OrderMatchFactory,
    PlacementAttemptFactory,
    UserFactory,
)

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "artifacts" / "e2e"
ISIN = "US0378331005"

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no browser at {CHROMIUM}: run `scripts/browser.sh ensure` (make test does)",
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the test's own ORM
    # calls are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_clerk_finds_a_failed_order_reprocesses_it_and_checks_the_book(live_server, page):
    ClerkFactory(username="clara")
    failed = FailedOrderFactory(
        instrument=ISIN,
        quantity=100,
        matched_quantity=40,
        matched_notional=Decimal("398.00"),
        limit_price=Decimal("10.00"),
    )
    seller = OrderFactory(
        side=Order.Side.SELL,
        instrument=ISIN,
        owner=UserFactory(username="north-fund"),
        status=Order.Status.MATCHED,
        quantity=40,
        matched_quantity=40,
        remaining_quantity=0,
        matched_notional=Decimal("398.00"),
        needs_match=False,
    )
    match = OrderMatchFactory(buy_order=failed, sell_order=seller, quantity=40, price=Decimal("9.95"))
    for number in (1, 2):
        PlacementAttemptFactory(order=failed, number=number, quantity=60, finished_at=timezone.now())
    OrderFactory(
        side=Order.Side.SELL, instrument=ISIN, limit_price=Decimal("10.50"), quantity=25, needs_match=False
    )
    resting_buy = OrderFactory(
        side=Order.Side.BUY, instrument=ISIN, limit_price=Decimal("9.80"), quantity=15, needs_match=False
    )
    FailedOrderFactory(instrument="US5949181045")

    # Log in: the dashboard greets the clerk.
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "clara")
    page.fill("#id_password", "secret-pass-123")
    page.click("input[type=submit]")
    expect(page.locator("#orders-dashboard")).to_be_visible()
    expect(page.locator('#orders-dashboard [data-status="FAILED"]')).to_have_text("2")
    shot(page, "01-dashboard")

    # Filter the failed orders.
    page.goto(f"{live_server.url}/admin/orders/order/")
    page.locator("#changelist-filter").get_by_role("link", name="Failed", exact=True).click()
    expect(page).to_have_url(re.compile(r"status__exact=FAILED"))
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#result_list .order-status-failed")).to_have_count(2)
    shot(page, "02-failed-orders")

    # Open the one with a match: its fill, counterparty and history are there.
    page.get_by_title(str(failed.pk)).click()
    expect(page.locator("h2", has_text="Matches (this order bought)")).to_be_visible()
    expect(page.get_by_role("link", name=f"#{match.pk}")).to_be_visible()
    expect(page.get_by_role("link", name=str(seller.pk))).to_be_visible()
    expect(page.locator("body")).to_contain_text("north-fund")
    expect(page.locator("body")).to_contain_text(failed.failure_reason)
    expect(page.locator("body")).to_contain_text("Failed (will retry)")
    shot(page, "03-failed-order")

    # The match links back to both of its orders.
    page.get_by_role("link", name=f"#{match.pk}").click()
    expect(page.get_by_role("link", name=str(failed.pk))).to_be_visible()
    expect(page.get_by_role("link", name=str(seller.pk))).to_be_visible()
    shot(page, "03b-match")
    page.go_back()

    # Back to the failed list; reprocess it with the action.
    page.go_back()
    page.check(f'input[name="_selected_action"][value="{failed.pk}"]')
    page.select_option("select[name=action]", "reprocess_selected")
    page.click("button[name=index]")
    success = page.locator(".messagelist .success")
    expect(success).to_contain_text("Reprocessed 1 order, now back in the pipeline")
    expect(success).to_contain_text(str(failed.pk))
    shot(page, "04-reprocessed")
    failed.refresh_from_db()
    assert (failed.status, failed.remaining_quantity) == (Order.Status.PARTIAL, 60)

    # The order book: the reprocessed remainder rests among the bids.
    page.goto(f"{live_server.url}/admin/orders/order/")
    page.locator("#result_list").get_by_role("link", name=ISIN).first.click()
    expect(page.locator("h1")).to_have_text(f"Order book {ISIN}")
    bids = page.locator("#bids tbody tr")
    expect(bids).to_have_count(2)
    expect(bids.nth(0)).to_contain_text("10.00")
    expect(bids.nth(0)).to_contain_text("60")
    expect(page.locator("#asks tbody tr").first).to_contain_text("10.50")
    expect(page.locator("#recent-matches tbody tr")).to_have_count(1)
    shot(page, "05-order-book")
    page.locator(".breadcrumbs").get_by_role("link", name="Order books").click()
    expect(page.locator("#instruments")).to_contain_text(ISIN)
    shot(page, "06-order-books")

    # Cancel the resting buy: the action asks first, and "No" changes nothing.
    def choose_cancel():
        page.goto(f"{live_server.url}/admin/orders/order/")
        page.check(f'input[name="_selected_action"][value="{resting_buy.pk}"]')
        page.select_option("select[name=action]", "cancel_selected")
        page.click("button[name=index]")
        expect(page.locator("h1")).to_have_text("Cancel orders?")
        rows = page.locator("#orders-to-cancel tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(str(resting_buy.pk))
        expect(rows.first).to_contain_text("Buy")
        expect(rows.first).to_contain_text("15")

    choose_cancel()
    shot(page, "07-cancel-confirmation")
    page.get_by_role("link", name="No, take me back").click()
    expect(page.locator("#result_list")).to_be_visible()
    resting_buy.refresh_from_db()
    assert resting_buy.status == Order.Status.OPEN

    choose_cancel()
    page.get_by_role("button", name="Yes, I’m sure").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Cancelled 1 order, now cancelled")
    shot(page, "08-cancelled")
    resting_buy.refresh_from_db()
    assert resting_buy.status == Order.Status.CANCELLED
