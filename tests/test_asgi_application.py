"""The ASGI application (``ordersite/asgi.py``) under a real uvicorn process.

Sync views run in a fixed pool of threads through Django's WSGI handler, so each
thread keeps its database connection; async views (the event stream) run in Django's
ASGI handler. Seen on the server: MariaDB's process list names each connection to the
test database by an id it never gives again.
"""

import asyncio
import http.client
import json
import urllib.error
import urllib.request

import pytest
from django.db import connection

from orders.errors import INTERNAL_ERROR
from orders.models import Order
from ordersite.asgi import _path_info, serves_async, with_length
from tests.factories import TokenFactory, UserFactory
from tests.pipeline_helpers import WebServer, free_port

THREADS = 3
REQUESTS = 60


def server_connections() -> set[int]:
    """Ids of the open connections to the test database other than this test's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM information_schema.PROCESSLIST WHERE db = DATABASE() AND id <> CONNECTION_ID()"
        )
        return {id_ for (id_,) in cursor.fetchall()}


def call(url: str, token: str, body: dict | bytes | None = None) -> tuple[int, dict]:
    """Status and JSON body of a request, error statuses included."""
    request = urllib.request.Request(
        url,
        data=body if body is None or isinstance(body, bytes) else json.dumps(body).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize(
    ("path", "is_async"),
    [
        ("/orders/events", True),
        ("/orders/events/", True),
        ("/orders", False),
        ("/orders/0b0a7e4e-3c1f-4a51-9d53-8c5a2b1e9f10/cancel", False),
        ("/healthz", False),
        ("/admin/", False),
        ("/no/such/page", False),
    ],
)
def test_only_async_views_go_to_the_asgi_handler(path, is_async):
    assert serves_async(path) is is_async


def test_a_prefix_the_server_is_mounted_at_is_not_part_of_the_path():
    assert _path_info({"path": "/api/orders/events", "root_path": "/api"}) == "/orders/events"
    assert _path_info({"path": "/orders/events", "root_path": ""}) == "/orders/events"
    assert _path_info({"path": "/orders/events"}) == "/orders/events"


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        server = WebServer(WEB_THREADS=THREADS).start()
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_requests_reuse_the_pool_threads_database_connections(web):
    token = TokenFactory(user=UserFactory()).key
    statuses, seen = [], []
    for n in range(REQUESTS):
        order = {"type": "limit", "side": "buy", "instrument": "US0378331005", "quantity": 1 + n}
        status, _ = call(f"{web.url}/orders", token, {**order, "limit_price": 5})
        statuses.append(status)
        status, listed = call(f"{web.url}/orders?limit=5", token)
        statuses.append(status)
        if n + 1 in (REQUESTS // 2, REQUESTS):
            seen.append(server_connections())
    halfway, after = seen

    assert statuses == [201, 200] * REQUESTS
    assert listed["results"][0]["quantity"] == REQUESTS
    # The pool threads' connections stay open and serve the later requests: at most one
    # per thread, none replaced (a thread per request closed each of its 120).
    assert halfway and halfway <= after, (halfway, after)
    assert len(after) <= THREADS, after


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_event_stream_is_still_served_by_the_asgi_handler(web):
    token = TokenFactory(user=UserFactory()).key
    request = urllib.request.Request(f"{web.url}/orders/events", headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_bad_input_through_the_pool_is_refused_and_stores_nothing(web):
    token = TokenFactory(user=UserFactory()).key

    malformed = call(f"{web.url}/orders", token, b'{"type": "market",')
    too_large = call(f"{web.url}/orders", token, b'{"pad": "' + b"x" * 70_000 + b'"}')

    assert malformed[0] == 400 and "detail" in malformed[1]
    assert too_large == (413, {"detail": "Request body too large."})
    assert not Order.objects.exists()


def call_chunked(web, token: str, pieces: list[bytes]) -> tuple[int, dict]:
    """POST /orders with a chunked body (``Transfer-Encoding: chunked``, no ``Content-Length``)."""
    client = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    try:
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        client.request("POST", "/orders", body=iter(pieces), headers=headers, encode_chunked=True)
        response = client.getresponse()
        return response.status, json.loads(response.read())
    finally:
        client.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_chunked_body_is_read_whole(web):
    token = TokenFactory(user=UserFactory()).key
    order = {"type": "market", "side": "sell", "instrument": "US0378331005", "quantity": 7}
    order = json.dumps(order).encode()

    status, body = call_chunked(web, token, [order[:10], order[10:25], order[25:]])

    assert status == 201, body
    assert Order.objects.get(pk=body["id"]).quantity == 7


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_chunked_body_too_large_is_refused_and_stores_nothing(web):
    token = TokenFactory(user=UserFactory()).key

    status, body = call_chunked(web, token, [b'{"pad": "', *[b"x" * 8192] * 9, b'"}'])

    assert (status, body) == (413, {"detail": "Request body too large."})
    assert not Order.objects.exists()


def test_a_client_gone_while_its_chunked_body_is_read_is_passed_on():
    scope = {"type": "http", "headers": [(b"transfer-encoding", b"chunked")]}
    messages = [{"type": "http.disconnect"}, {"type": "http.request", "body": b"{", "more_body": True}]

    async def receive():
        return messages.pop()

    async def read():
        handed_on, receive_after = await with_length(scope, receive)
        return handed_on, await receive_after()

    assert asyncio.run(read()) == (scope, {"type": "http.disconnect"})


@pytest.mark.slow
def test_an_internal_error_through_the_pool_is_the_specs_500_body():
    # Nothing listens where this server looks for its database.
    server = WebServer(
        WEB_THREADS=THREADS, DATABASE_URL=f"mysql://root@127.0.0.1:{free_port()}/nowhere"
    ).start()
    try:
        order = {"type": "market", "side": "buy", "instrument": "US0378331005", "quantity": 1}
        status, body = call(f"{server.url}/orders", "0" * 40, order)
    finally:
        server.stop()

    assert (status, body) == (500, {"message": INTERNAL_ERROR})
