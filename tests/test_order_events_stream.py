"""GET /orders/events served by a real uvicorn process on the test database (SPEC §10).

Clients follow with ``bench/stream_follower.py`` (resumes with Last-Event-ID after any
drop); what they saw is checked against the event log: nothing missed, nothing
repeated, nobody else's events.
"""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import Max

from bench.stream_follower import StreamFollower
from orders.events import order_events_prune
from orders.models import Order, OrderEvent
from orders.services import order_cancel, order_create
from tests.factories import TokenFactory, UserFactory
from tests.pipeline_helpers import WebServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ISINS = ["US0378331005", "US5949181045", "DE000BAY0017"]
# Long enough that only a closed transaction, never the timeout, settles a gap here.
GAP_TIMEOUT = 30


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        server = WebServer(ORDER_EVENTS_GAP_TIMEOUT=GAP_TIMEOUT, ORDER_EVENTS_HEARTBEAT=1).start()
    yield server
    server.stop()


@pytest.fixture
def followers():
    started = []

    def follow(url, user, **kwargs):
        token = TokenFactory(user=user).key
        follower = StreamFollower(url, token, **kwargs).start()
        started.append(follower)
        return follower

    yield follow
    for follower in started:
        follower.stop()


def last_event_id() -> int:
    return OrderEvent.objects.aggregate(last=Max("id"))["last"] or 0


def place(owner, n: int, quantity: int = 5) -> Order:
    order, _ = order_create(
        owner=owner,
        type="limit",
        side="buy",
        instrument=ISINS[n % len(ISINS)],
        quantity=quantity,
        limit_price=1 + n % 7,
    )
    return order


def log_of(user, after: int):
    return list(OrderEvent.objects.filter(owner=user, id__gt=after).values_list("id", "order_id", "name"))


def wait_until(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_clients_see_only_their_own_events_and_staff_sees_everyones(web, followers):
    alice, bob = UserFactory(), UserFactory()
    start = last_event_id()
    alices = followers(web.url, alice, since=start)
    bobs = followers(web.url, bob, since=start)
    staff = followers(web.url, UserFactory(is_staff=True), since=start)
    for n in range(6):
        place(alice if n % 2 else bob, n)

    assert wait_until(lambda: len(staff.seen) >= 6)
    assert wait_until(lambda: len(alices.seen) >= 3 and len(bobs.seen) >= 3)
    time.sleep(0.3)
    assert alices.report(log_of(alice, start)).ok, alices.report(log_of(alice, start))
    assert bobs.report(log_of(bob, start)).ok
    everyone = list(OrderEvent.objects.filter(id__gt=start).values_list("id", "order_id", "name"))
    assert staff.report(everyone).ok
    assert {o for _, o, _ in alices.seen} == {
        str(pk) for pk in Order.objects.filter(owner=alice).values_list("pk", flat=True)
    }


def test_filters_by_instrument_and_status(web, followers):
    user = UserFactory()
    start = last_event_id()
    follower = followers(web.url, user, since=start, query={"instrument": ISINS[0], "status": ["CANCELLED"]})
    orders = [place(user, n) for n in range(3)]  # instruments 0, 1, 2
    for order in orders:
        order_cancel(order=order)

    assert wait_until(lambda: len(follower.seen) >= 1)
    time.sleep(0.5)
    assert follower.seen == [(follower.seen[0][0], str(orders[0].pk), "cancelled")]


def test_a_client_dropped_mid_stream_resumes_with_no_gap_and_no_duplicate(web, followers):
    user = UserFactory()
    start = last_event_id()
    follower = followers(web.url, user, since=start)
    done = threading.Event()

    def keep_changing():
        try:
            for n in range(120):
                order = place(user, n)
                if n % 3 == 0:
                    order_cancel(order=order)
                time.sleep(0.01)  # a steady flow across several drops
        finally:
            connection.close()
            done.set()

    writer = threading.Thread(target=keep_changing)
    writer.start()
    while not done.is_set():
        time.sleep(0.1)
        follower.drop()  # the network cuts the stream; the follower resumes from its last id
    writer.join()

    expected = log_of(user, start)
    assert len(expected) == 160
    assert wait_until(lambda: len(follower.seen) >= len(expected))
    report = follower.report(expected)
    assert report.ok, report
    assert follower.reconnects >= 3
    assert follower.ids() == sorted(follower.ids())


def test_a_web_process_killed_mid_stream_loses_nothing_for_a_resuming_client(followers):
    server = WebServer().start()
    try:
        user = UserFactory()
        start = last_event_id()
        follower = followers(server.url, user, since=start)
        for n in range(30):
            place(user, n)
        assert wait_until(lambda: len(follower.seen) >= 10)
        server.kill()  # SIGKILL: no goodbye to the client
        for n in range(30, 60):
            place(user, n)
        server = _restart_on(server)
        for n in range(60, 80):
            place(user, n)

        expected = log_of(user, start)
        assert wait_until(lambda: len(follower.seen) >= len(expected), timeout=20)
        report = follower.report(expected)
        assert report.ok, report
        assert follower.connections >= 2
    finally:
        server.stop()


def _restart_on(killed: WebServer) -> WebServer:
    server = WebServer()
    server.port, server.url = killed.port, killed.url
    return server.start()


def test_an_event_is_held_back_until_its_change_commits_and_then_delivered_in_order(web, followers):
    user = UserFactory()
    start = last_event_id()
    follower = followers(web.url, user, since=start)
    inserted, release = threading.Event(), threading.Event()
    early = {}

    def slow_transaction():
        try:
            with transaction.atomic():
                early["order"] = place(user, 0)  # takes the lower event id
                inserted.set()
                release.wait(20)
        finally:
            connection.close()

    slow = threading.Thread(target=slow_transaction)
    slow.start()
    assert inserted.wait(10)
    later = place(user, 1)  # a higher id, committed first
    time.sleep(1.5)
    held = list(follower.seen)
    release.set()
    slow.join()

    assert held == []  # the later event waited for the earlier id: a resuming reader skips nothing
    assert wait_until(lambda: len(follower.seen) >= 2)
    assert [order for _, order, _ in follower.seen] == [str(early["order"].pk), str(later.pk)]
    assert follower.report(log_of(user, start)).ok


def test_a_rolled_back_event_leaves_a_gap_the_stream_moves_past(web, followers):
    user = UserFactory()
    start = last_event_id()
    follower = followers(web.url, user, since=start)
    with pytest.raises(RuntimeError), transaction.atomic():
        place(user, 0)
        raise RuntimeError("rolled back: its event id never commits")
    began = time.monotonic()
    after = place(user, 1)

    assert wait_until(lambda: len(follower.seen) >= 1, timeout=GAP_TIMEOUT - 5)
    assert [order for _, order, _ in follower.seen] == [str(after.pk)]
    assert time.monotonic() - began < GAP_TIMEOUT - 5  # settled by the open-transaction check


def test_resuming_from_pruned_events_says_so(web, followers):
    user = UserFactory()
    start = last_event_id()
    for n in range(3):
        place(user, n)
    _, pruned_through = order_events_prune(older_than=timedelta(0))
    kept = place(user, 3)

    follower = followers(web.url, user, since=start)

    assert wait_until(lambda: len(follower.seen) >= 1)
    assert [name for name, _ in follower.other] == ["pruned"]
    assert json.loads(follower.other[0][1])["oldest_available_id"] == pruned_through + 1
    assert [order for _, order, _ in follower.seen] == [str(kept.pk)]
