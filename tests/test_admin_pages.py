"""The back-office admin pages (SPEC §7): lists, filters, search, order pages, books, dashboard, access."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from matching.models import Instrument, OrderMatch
from orders.admin.kit import STATUS_COLOURS, EstimatedCountPaginator, table_rows_estimate
from orders.models import CancelRequest, Order
from tests.factories import (
    VALID_ISINS,
    ClerkFactory,
    ExchangeOrderFactory,
    ExecutionFactory,
    FailedOrderFactory,
    OrderFactory,
    OrderMatchFactory,
    PlacementAttemptFactory,
    StaffUserFactory,
    TokenFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

ORDERS_URL = reverse("admin:orders_order_changelist")
APPLE, MSFT, BAYER = VALID_ISINS[0], VALID_ISINS[1], VALID_ISINS[2]


@pytest.fixture(autouse=True)
def _fresh_dashboard():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clerk(db):
    return ClerkFactory()


@pytest.fixture
def clerk_client(client, clerk):
    client.force_login(clerk)
    return client


def results(response) -> list:
    return list(response.context["cl"].result_list)


def result_ids(response) -> set:
    return {order.pk for order in results(response)}


def change_url(order) -> str:
    return reverse("admin:orders_order_change", args=[order.pk])


def book_url(isin: str) -> str:
    return reverse("admin:orders_order_book", args=[isin])


# --- the order list ------------------------------------------------------------------------


def test_order_list_shows_the_columns_a_clerk_scans(clerk_client):
    owner = UserFactory(username="acme-fund")
    order = OrderFactory(owner=owner, instrument=MSFT, limit_price=Decimal("412.25"), quantity=70)
    Order.objects.filter(pk=order.pk).update(matched_quantity=20, placed_quantity=30, remaining_quantity=20)
    FailedOrderFactory(owner=owner)

    response = clerk_client.get(ORDERS_URL)

    assert response.status_code == 200
    html = response.content.decode()
    for header in (
        "client",
        "instrument",
        "side",
        "type",
        "limit price",
        "quantity",
        "matched / placed",
        "status",
    ):
        assert f">{header.capitalize()}<" in html or f">{header}<" in html.lower()
    assert str(order.pk) in html
    assert "acme-fund" in html
    assert f'href="{book_url(MSFT)}"' in html
    assert "412.25" in html
    assert "20 / 30" in html
    assert 'class="order-status order-status-failed"' in html
    assert 'class="order-status order-status-open"' in html


def test_order_list_filters_by_status_side_type_instrument_and_created_date(clerk_client):
    failed = FailedOrderFactory()
    open_buy = OrderFactory(instrument=APPLE)
    market_sell = OrderFactory(market=True, side=Order.Side.SELL, instrument=MSFT)
    old = OrderFactory(instrument=BAYER)
    Order.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))

    assert result_ids(clerk_client.get(ORDERS_URL, {"status__exact": "FAILED"})) == {failed.pk}
    assert result_ids(clerk_client.get(ORDERS_URL, {"side__exact": "sell"})) == {market_sell.pk}
    assert result_ids(clerk_client.get(ORDERS_URL, {"type__exact": "market"})) == {market_sell.pk}
    assert result_ids(clerk_client.get(ORDERS_URL, {"instrument": MSFT})) == {market_sell.pk}
    # What the filter's "Past 7 days" link sends.
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    week_ago, tomorrow = str(today - timedelta(days=7)), str(today + timedelta(days=1))
    recent = clerk_client.get(ORDERS_URL, {"created_at__gte": week_ago, "created_at__lt": tomorrow})
    assert result_ids(recent) == {failed.pk, open_buy.pk, market_sell.pk}
    this_year = clerk_client.get(ORDERS_URL, {"created_at__year": timezone.now().year})
    assert open_buy.pk in result_ids(this_year)


def test_instrument_filter_lists_instruments_from_the_instrument_table(clerk_client):
    Instrument.objects.create(isin=BAYER)
    OrderFactory(instrument=BAYER)

    response = clerk_client.get(ORDERS_URL)

    assert f"?instrument={BAYER}" in response.content.decode()


def test_order_search_by_id_its_prefix_client_order_id_and_isin(clerk_client):
    target = OrderFactory(client_order_id="desk-7-0042", instrument=APPLE)
    other = OrderFactory(client_order_id="desk-7-0043", instrument=MSFT)

    assert result_ids(clerk_client.get(ORDERS_URL, {"q": str(target.pk)})) == {target.pk}
    assert result_ids(clerk_client.get(ORDERS_URL, {"q": str(target.pk)[:13]})) == {target.pk}
    assert result_ids(clerk_client.get(ORDERS_URL, {"q": "desk-7-0042"})) == {target.pk}
    assert result_ids(clerk_client.get(ORDERS_URL, {"q": MSFT.lower()})) == {other.pk}
    assert result_ids(clerk_client.get(ORDERS_URL, {"q": "no such thing"})) == set()


def test_order_list_query_count_does_not_grow_with_rows(clerk_client, django_assert_max_num_queries):
    for index in range(30):
        OrderFactory(instrument=VALID_ISINS[index % len(VALID_ISINS)])  # 30 different owners

    with django_assert_max_num_queries(10):
        response = clerk_client.get(ORDERS_URL)

    assert len(results(response)) == 30


def test_date_hierarchy_drills_down_without_scanning_every_row(clerk_client):
    old, new = OrderFactory(), OrderFactory()
    Order.objects.filter(pk=old.pk).update(created_at=timezone.now().replace(year=2024, month=3, day=5))
    Order.objects.filter(pk=new.pk).update(created_at=timezone.now().replace(year=2026, month=1, day=9))

    with CaptureQueriesContext(connection) as queries:
        years = clerk_client.get(ORDERS_URL).content.decode()
    months = clerk_client.get(ORDERS_URL, {"created_at__year": 2024}).content.decode()
    days = clerk_client.get(ORDERS_URL, {"created_at__year": 2024, "created_at__month": 3})

    assert not [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper()]
    for year in (2024, 2025, 2026):
        assert f"?created_at__year={year}" in years
    assert "created_at__month=3" in months and "March 2024" in months
    assert result_ids(days) == {old.pk}
    assert "created_at__day=5" in days.content.decode()


def test_unfiltered_list_of_a_big_table_uses_the_row_estimate_not_count(clerk_client, monkeypatch):
    OrderFactory.create_batch(3)
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_above", 0)
    estimate = table_rows_estimate(Order.objects.all())

    with CaptureQueriesContext(connection) as queries:
        response = clerk_client.get(ORDERS_URL)

    assert response.status_code == 200
    assert response.context["cl"].result_count == estimate
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and "orders_order" in q["sql"]]
    assert all("WHERE" in sql.upper() for sql in counts), counts
    # Filtered lists are counted exactly.
    FailedOrderFactory()
    assert clerk_client.get(ORDERS_URL, {"status__exact": "FAILED"}).context["cl"].result_count == 1


def test_match_and_exchange_lists_load(clerk_client):
    match = OrderMatchFactory()
    placement = ExchangeOrderFactory()

    matches = clerk_client.get(reverse("admin:matching_ordermatch_changelist"))
    ledger = clerk_client.get(reverse("admin:exchange_exchangeorder_changelist"))

    assert matches.status_code == 200 and match in results(matches)
    assert ledger.status_code == 200 and placement in results(ledger)
    by_order = clerk_client.get(
        reverse("admin:matching_ordermatch_changelist"), {"q": str(match.sell_order_id)}
    )
    assert results(by_order) == [match]
    by_instrument = clerk_client.get(reverse("admin:matching_ordermatch_changelist"), {"instrument": APPLE})
    assert results(by_instrument) == [match]
    by_id = clerk_client.get(
        reverse("admin:exchange_exchangeorder_changelist"), {"q": str(placement.order_id)}
    )
    assert results(by_id) == [placement]


# --- read-only records ---------------------------------------------------------------------


def test_records_cannot_be_added_changed_or_deleted_through_admin(clerk_client):
    order = OrderFactory()
    match = OrderMatchFactory()
    placement = ExchangeOrderFactory()

    page = clerk_client.get(change_url(order))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert clerk_client.get(reverse("admin:orders_order_add")).status_code == 403
    assert clerk_client.post(change_url(order), {"quantity": 1}).status_code == 403
    assert (
        clerk_client.post(reverse("admin:orders_order_delete", args=[order.pk]), {"post": "yes"}).status_code
        == 403
    )
    for model, obj in (("matching_ordermatch", match), ("exchange_exchangeorder", placement)):
        assert clerk_client.get(reverse(f"admin:{model}_change", args=[obj.pk])).status_code == 200
        assert clerk_client.get(reverse(f"admin:{model}_add")).status_code == 403
        assert (
            clerk_client.post(reverse(f"admin:{model}_delete", args=[obj.pk]), {"post": "yes"}).status_code
            == 403
        )
    order.refresh_from_db()
    assert order.quantity == 100
    assert Order.objects.filter(pk=order.pk).exists()


def test_even_a_superuser_gets_read_only_records(client):
    client.force_login(StaffUserFactory(is_superuser=True))
    order = OrderFactory()

    assert client.get(reverse("admin:orders_order_add")).status_code == 403
    assert 'name="_save"' not in client.get(change_url(order)).content.decode()


# --- the order page ------------------------------------------------------------------------


def test_order_page_shows_matches_placement_and_history(clerk_client):
    buy = OrderFactory(quantity=100, limit_price=Decimal("10.00"))
    seller_a = OrderFactory(side=Order.Side.SELL, owner=UserFactory(username="seller-a"))
    seller_b = OrderFactory(side=Order.Side.SELL, owner=UserFactory(username="seller-b"))
    first = OrderMatchFactory(buy_order=buy, sell_order=seller_a, quantity=30, price=Decimal("9.90"))
    second = OrderMatchFactory(buy_order=buy, sell_order=seller_b, quantity=20, price=Decimal("10.00"))
    Order.objects.filter(pk=buy.pk).update(
        matched_quantity=50,
        placed_quantity=50,
        remaining_quantity=0,
        status=Order.Status.SUBMITTED,
        placement_attempts=2,
        last_error="OrderPlacementError: Connection not available",
    )
    placement = ExchangeOrderFactory(order_id=buy.pk, quantity=50)
    PlacementAttemptFactory(
        order=buy, number=1, quantity=50, outcome="failed", error="Connection not available"
    )
    PlacementAttemptFactory(order=buy, number=2, quantity=50, outcome="accepted", error="")

    response = clerk_client.get(change_url(buy))

    assert response.status_code == 200
    html = response.content.decode()
    assert "matches (this order bought)" in html.lower()
    for match, seller in ((first, seller_a), (second, seller_b)):
        assert reverse("admin:matching_ordermatch_change", args=[match.pk]) in html
        assert f'href="{change_url(seller)}"' in html
        assert seller.owner.username in html
    assert reverse("admin:exchange_exchangeorder_change", args=[placement.pk]) in html
    assert "history: exchange placement attempts" in html.lower()
    assert "Connection not available" in html
    assert "Failed (will retry)" in html and "Accepted" in html
    assert "Last error" in html and "Failure reason" in html and "Updated at" in html
    assert f'href="{book_url(buy.instrument)}"' in html


def test_sell_order_page_shows_its_buyers(clerk_client):
    match = OrderMatchFactory()

    html = clerk_client.get(change_url(match.sell_order)).content.decode()

    assert "matches (this order sold)" in html.lower()
    assert f'href="{change_url(match.buy_order)}"' in html


def test_failed_order_page_shows_why(clerk_client):
    order = FailedOrderFactory(failure_reason="Exchange placement deadline passed after 12 attempts")

    html = clerk_client.get(change_url(order)).content.decode()

    assert "Exchange placement deadline passed after 12 attempts" in html
    assert "not placed at the exchange" in html


def test_match_and_placement_pages_link_back_to_the_orders(clerk_client):
    match = OrderMatchFactory()
    placement = ExchangeOrderFactory()

    match_html = clerk_client.get(
        reverse("admin:matching_ordermatch_change", args=[match.pk])
    ).content.decode()
    placement_html = clerk_client.get(
        reverse("admin:exchange_exchangeorder_change", args=[placement.pk])
    ).content.decode()

    assert f'href="{change_url(match.buy_order)}"' in match_html
    assert f'href="{change_url(match.sell_order)}"' in match_html
    assert f'href="{reverse("admin:orders_order_change", args=[placement.order_id])}"' in placement_html


# --- venue executions and cancel requests (SPEC §9) ---------------------------------------


def test_order_list_filters_by_time_in_force_and_badges_the_venue_statuses(clerk_client):
    gtc = OrderFactory(time_in_force=Order.TimeInForce.GTC, status=Order.Status.PARTIALLY_FILLED)
    OrderFactory(status=Order.Status.PENDING_CANCEL)

    response = clerk_client.get(ORDERS_URL)
    html = response.content.decode()

    assert result_ids(clerk_client.get(ORDERS_URL, {"time_in_force__exact": "gtc"})) == {gtc.pk}
    assert "time in force" in html.lower()
    for status in ("partially_filled", "pending_cancel"):
        assert f'class="order-status order-status-{status}"' in html


def test_every_status_has_its_own_badge_colour():
    assert set(STATUS_COLOURS) == set(Order.Status.values)
    assert len(set(STATUS_COLOURS.values())) == len(STATUS_COLOURS)


def test_order_page_shows_fill_fields_and_venue_executions_next_to_matches(clerk_client):
    buy = OrderFactory(
        time_in_force=Order.TimeInForce.IOC,
        status=Order.Status.PARTIALLY_FILLED,
        needs_match=False,
        placed_quantity=100,
        remaining_quantity=40,
        filled_quantity=60,
        filled_notional=Decimal("607.50"),
        venue_status="1",
        venue_cum_quantity=60,
    )
    OrderMatchFactory(buy_order=buy, quantity=1)
    ExecutionFactory(order=buy, exec_id="VX-0001", quantity=25, price=Decimal("10.1000"), cum_quantity=25)
    ExecutionFactory(order=buy, exec_id="VX-0002", quantity=35, price=Decimal("10.1429"), cum_quantity=60)

    response = clerk_client.get(change_url(buy))

    assert response.status_code == 200
    html = response.content.decode()
    assert "matches (this order bought)" in html.lower()
    assert "venue executions" in html.lower()
    assert html.index("VX-0001") < html.index("VX-0002")
    first = buy.venue_executions.get(exec_id="VX-0001")
    assert reverse("admin:orders_execution_change", args=[first.pk]) in html
    assert "10.1429" in html
    for label in (
        "Time in force",
        "Filled quantity",
        "Cancelled quantity",
        "Average fill price",
        "CumQty",
        "ExecID",
    ):
        assert label.lower() in html.lower(), label
    assert "Immediate or cancel" in html
    assert "10.1250" in html  # 607.50 / 60
    assert "Partially filled (1)" in html
    assert 'class="order-status order-status-partially_filled"' in html


def test_venue_execution_and_cancel_request_lists_search_and_link_to_the_order(clerk_client):
    order = OrderFactory()
    execution = ExecutionFactory(order=order, exec_id="EXEC-42")
    ExecutionFactory(exec_id="EXEC-43")
    request = CancelRequest.objects.create(cl_ord_id="CXL-7", order=order, reason="Too late to cancel")
    CancelRequest.objects.create(cl_ord_id="CXL-8", order=OrderFactory())
    executions_url = reverse("admin:orders_execution_changelist")
    cancels_url = reverse("admin:orders_cancelrequest_changelist")

    assert results(clerk_client.get(executions_url, {"q": "EXEC-42"})) == [execution]
    assert results(clerk_client.get(executions_url, {"q": str(order.pk)})) == [execution]
    assert results(clerk_client.get(cancels_url, {"q": "CXL-7"})) == [request]
    assert results(clerk_client.get(cancels_url, {"q": str(order.pk)})) == [request]
    for url in (
        reverse("admin:orders_execution_change", args=[execution.pk]),
        reverse("admin:orders_cancelrequest_change", args=[request.pk]),
        executions_url,
        cancels_url,
    ):
        page = clerk_client.get(url)
        assert page.status_code == 200, url
        assert f'href="{change_url(order)}"' in page.content.decode()


def test_venue_records_are_read_only(clerk_client):
    execution = ExecutionFactory()
    request = CancelRequest.objects.create(cl_ord_id="CXL-1", order=execution.order)

    for model, obj in (("orders_execution", execution), ("orders_cancelrequest", request)):
        assert clerk_client.get(reverse(f"admin:{model}_add")).status_code == 403
        assert (
            'name="_save"'
            not in clerk_client.get(reverse(f"admin:{model}_change", args=[obj.pk])).content.decode()
        )
        assert (
            clerk_client.post(reverse(f"admin:{model}_delete", args=[obj.pk]), {"post": "yes"}).status_code
            == 403
        )
    assert CancelRequest.objects.filter(pk=request.pk).exists()


# --- order books ---------------------------------------------------------------------------


def _resting(side, price, quantity, **kwargs):
    market = price is None
    return OrderFactory(
        side=side,
        instrument=APPLE,
        market=market,
        limit_price=None if market else Decimal(price),
        quantity=quantity,
        needs_match=False,
        **kwargs,
    )


def test_order_book_aggregates_resting_orders_by_price_level(clerk_client):
    buy, sell = Order.Side.BUY, Order.Side.SELL
    _resting(buy, "10.00", 30)
    _resting(buy, "10.00", 20)
    _resting(buy, "9.50", 5)
    _resting(buy, None, 7)
    _resting(sell, "10.50", 40)
    _resting(sell, "11.00", 10)
    _resting(sell, None, 3)
    # Not resting: in flight, terminal, nothing left, another instrument.
    _resting(buy, "10.20", 99, in_flight=True)
    FailedOrderFactory(instrument=APPLE, limit_price=Decimal("10.30"))
    _resting(sell, "10.40", 50, status=Order.Status.CANCELLED, remaining_quantity=0)
    _resting(sell, "10.45", 50, status=Order.Status.PARTIAL, matched_quantity=50, remaining_quantity=0)
    OrderFactory(instrument=MSFT, limit_price=Decimal("10.60"))

    response = clerk_client.get(book_url(APPLE))

    assert response.status_code == 200
    book = response.context["book"]
    assert [(level.label, level.quantity, level.orders) for level in book.bids] == [
        ("MKT", 7, 1),
        ("10.00", 50, 2),
        ("9.50", 5, 1),
    ]
    assert [(level.label, level.quantity, level.orders) for level in book.asks] == [
        ("MKT", 3, 1),
        ("10.50", 40, 1),
        ("11.00", 10, 1),
    ]
    assert (book.best_bid, book.best_ask, book.spread) == (
        Decimal("10.00"),
        Decimal("10.50"),
        Decimal("0.50"),
    )
    html = response.content.decode()
    assert 'id="bids"' in html and 'id="asks"' in html and ">MKT<" in html


def test_order_book_shows_the_latest_50_matches_linked_to_their_orders(clerk_client):
    buy, sell = OrderFactory(), OrderFactory(side=Order.Side.SELL)
    now = timezone.now()
    OrderMatch.objects.bulk_create(
        OrderMatch(
            buy_order=buy,
            sell_order=sell,
            instrument=APPLE,
            quantity=1,
            price=Decimal("10.00"),
            matched_at=now - timedelta(seconds=60 - n),
        )
        for n in range(55)
    )
    OrderMatchFactory(instrument=MSFT, buy_order__instrument=MSFT)

    response = clerk_client.get(book_url(APPLE.lower()))

    matches = response.context["book"].matches
    assert len(matches) == 50
    assert all(match.instrument == APPLE for match in matches)
    assert matches == sorted(matches, key=lambda m: m.matched_at, reverse=True)
    assert f'href="{change_url(buy)}"' in response.content.decode()


def test_order_book_index_lists_instruments_and_links_their_books(clerk_client):
    Instrument.objects.create(isin=BAYER)
    _resting(Order.Side.BUY, "10.00", 30)

    response = clerk_client.get(reverse("admin:orders_order_book_index"))

    assert response.status_code == 200
    rows = {row.isin: row for row in response.context["instruments"]}
    assert rows[APPLE].bid_orders == 1 and rows[APPLE].bid_quantity == 30
    assert rows[BAYER].bid_orders == 0
    assert f'href="{book_url(BAYER)}"' in response.content.decode()


def test_order_book_of_a_non_isin_is_not_found(clerk_client):
    assert clerk_client.get(book_url("NOTANISIN123")).status_code == 404


def test_order_books_need_the_view_permission(client):
    client.force_login(StaffUserFactory())

    assert client.get(book_url(APPLE)).status_code == 403
    assert client.get(reverse("admin:orders_order_book_index")).status_code == 403


# --- the dashboard -------------------------------------------------------------------------


def test_dashboard_shows_orders_by_status_recent_failures_oldest_working_and_queue(clerk_client):
    oldest = OrderFactory()
    Order.objects.filter(pk=oldest.pk).update(created_at=timezone.now() - timedelta(hours=3))
    OrderFactory()
    FailedOrderFactory()
    stale_failure = FailedOrderFactory()
    Order.objects.filter(pk=stale_failure.pk).update(updated_at=timezone.now() - timedelta(hours=2))
    OrderFactory(status=Order.Status.CANCELLED, remaining_quantity=0)

    response = clerk_client.get(reverse("admin:index"))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="orders-dashboard"' in html
    assert '<td style="text-align:right" data-status="OPEN">2</td>' in html
    assert '<td style="text-align:right" data-status="FAILED">2</td>' in html
    assert '<td style="text-align:right" data-status="CANCELLED">1</td>' in html
    assert '<td style="text-align:right" id="dash-failed-last-hour">1</td>' in html
    assert change_url(oldest) in html and "3\xa0hours old" in html
    assert f'<td style="text-align:right" id="dash-queue">\n          {OrmQ.objects.count()}' in html
    assert OrmQ.objects.count() >= 5  # each order's processing was queued on insert
    assert "Orders" in html and reverse("admin:orders_order_changelist") in html  # the app list stays


def test_dashboard_asks_the_redis_broker_for_the_queue_size(clerk_client, settings, monkeypatch):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": "redis://127.0.0.1:6379/0"}
    settings.Q_CLUSTER.pop("orm", None)

    class Broker:
        def queue_size(self):
            return 17

    monkeypatch.setattr("django_q.brokers.get_broker", lambda *args, **kwargs: Broker())

    html = clerk_client.get(reverse("admin:index")).content.decode()

    assert "REDIS broker" in html
    assert '<td style="text-align:right" id="dash-queue">\n          17' in html


def test_dashboard_is_hidden_from_staff_who_cannot_view_orders(client):
    client.force_login(StaffUserFactory())

    response = client.get(reverse("admin:index"))

    assert response.status_code == 200
    assert 'id="orders-dashboard"' not in response.content.decode()


# --- who may log in ------------------------------------------------------------------------


def test_api_clients_cannot_log_into_admin(client):
    api_client = UserFactory(username="api-client")
    TokenFactory(user=api_client)

    response = client.post(
        reverse("admin:login"), {"username": "api-client", "password": "secret-pass-123", "next": "/admin/"}
    )

    assert response.status_code == 200
    assert "correct username and password for a staff account" in response.content.decode()
    client.force_login(api_client)
    assert client.get(ORDERS_URL).status_code == 302
    assert client.get(reverse("admin:index")).url.startswith(reverse("admin:login"))


def test_staff_without_a_back_office_group_sees_no_orders(client):
    client.force_login(StaffUserFactory())

    assert client.get(ORDERS_URL).status_code == 403


def test_migration_creates_the_back_office_groups():
    clerk = Group.objects.get(name="Back office clerk")
    admin = Group.objects.get(name="Back office admin")

    def codenames(group):
        return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}

    assert codenames(clerk) == {
        "orders.view_order",
        "orders.view_placementattempt",
        "orders.reprocess_order",
        "orders.cancel_order",
        "matching.view_ordermatch",
        "matching.view_instrument",
        "exchange.view_exchangeorder",
        "orders.view_execution",
        "orders.view_cancelrequest",
        "orders.view_quarantinedreport",
        "exchange.view_executionreportrecord",
        "exchange.view_outboxmessage",
        "exchange.view_fixsession",
    }
    assert codenames(clerk) < codenames(admin)
    assert {"auth.view_user", "auth.add_user", "auth.change_user"} <= codenames(admin)


def test_back_office_admins_manage_users_and_clerks_do_not(client):
    client.force_login(ClerkFactory(backoffice_groups="Back office admin"))
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 200
    assert client.get(ORDERS_URL).status_code == 200

    client.force_login(ClerkFactory())
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403


def test_task_queue_admin_stays_usable_for_superusers(client):
    client.force_login(StaffUserFactory(is_superuser=True))
    OrderFactory()  # queues a task

    for name in ("ormq", "schedule", "success", "failure"):
        assert client.get(reverse(f"admin:django_q_{name}_changelist")).status_code == 200, name
    queued = OrmQ.objects.first()
    assert client.get(reverse("admin:django_q_ormq_change", args=[queued.pk])).status_code == 200
