"""The per-process reader of the order event log (orders/event_stream.py), driven in this process.

One reader serves every stream of a process; a stream that ends (the client went away)
leaves nothing behind; with REDIS_URL a commit wakes the reader at once.
"""

import asyncio
import socket
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection

from orders import event_stream
from orders.event_stream import EventFilter, stream
from orders.services import order_create
from tests.factories import TokenFactory, UserFactory
from tests.pipeline_helpers import WebServer

pytestmark = pytest.mark.django_db(transaction=True)

ISIN = "US0378331005"


def place(owner):
    return order_create(owner=owner, type="market", side="buy", instrument=ISIN, quantity=1)[0]


def test_many_streams_share_one_reader_and_a_closed_stream_leaves_nothing_behind(settings):
    settings.ORDER_EVENTS_POLL_INTERVAL = 0.05
    users = [UserFactory() for _ in range(20)]

    async def scenario():
        streams = [stream(EventFilter(owner_id=user.pk), since=None) for user in users]
        for body in streams:
            assert await body.__anext__() == b"retry: 1000\n\n"
        hub = event_stream.hub()
        assert len(hub.subscriptions) == 20
        ticks = hub.ticks
        await asyncio.sleep(1.0)
        # One read of the log per tick for all twenty streams, not one per stream.
        reads = hub.ticks - ticks
        # A client going away: the ASGI handler closes (cancels) its generator.
        for body in streams:
            await body.aclose()
        left, task = len(hub.subscriptions), hub.task
        await hub.stop()
        return reads, left, task

    reads, left, task = async_to_sync(scenario)()

    assert 5 <= reads <= 25
    assert left == 0
    assert task is not None


def test_a_stream_gets_its_clients_live_events_and_no_one_elses(settings):
    settings.ORDER_EVENTS_POLL_INTERVAL = 0.05
    alice, bob = UserFactory(), UserFactory()

    async def scenario():
        body = stream(EventFilter(owner_id=alice.pk), since=None)
        await body.__anext__()

        def write():
            try:
                place(bob)
                return place(alice)
            finally:
                connection.close()

        mine = await sync_to_async(write, thread_sensitive=False)()
        message = await asyncio.wait_for(body.__anext__(), timeout=5)
        await body.aclose()
        await event_stream.hub().stop()
        return mine, message

    mine, message = async_to_sync(scenario)()

    assert b"event: accepted\n" in message
    assert str(mine.pk).encode() in message
    assert message.count(b"event:") == 1


def _redis_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.3).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _redis_reachable(), reason="no Redis at 127.0.0.1:6379 (the wake-up test needs one)")
def test_with_redis_a_commit_wakes_the_streams_long_before_the_next_poll(settings):
    from bench.stream_follower import StreamFollower

    redis_url = "redis://127.0.0.1:6379/15"
    settings.REDIS_URL = redis_url  # this process publishes on commit
    # With Redis the poll runs every 10 x 3 s: only the wake-up can deliver within a second or two.
    server = WebServer(REDIS_URL=redis_url, ORDER_EVENTS_POLL_INTERVAL=3).start()
    try:
        user = UserFactory()
        follower = StreamFollower(server.url, TokenFactory(user=user).key, since=None).start()
        try:
            time.sleep(1.0)  # the stream is open and its reader started
            started = time.monotonic()
            order = place(user)
            assert follower.wait_for(1, timeout=10), (follower.errors, follower.connections, follower.other)
            elapsed = time.monotonic() - started
        finally:
            follower.stop()
    finally:
        server.stop()

    assert follower.seen[0][1:] == (str(order.pk), "accepted")
    assert elapsed < 2.5, elapsed
