"""GET /orders/events refuses what it cannot serve with the API's JSON errors (SPEC §10, §8)."""

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client

from orders.api.events import ASGI_ONLY, EVENT_ID_ERROR
from tests.factories import TokenFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_without_credentials_it_is_401_with_the_token_challenge():
    response = Client().get("/orders/events")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_a_bad_token_is_401():
    response = Client().get("/orders/events", HTTP_AUTHORIZATION="Token nope")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


@pytest.mark.parametrize("suffix", ["", "/"])
def test_token_and_session_open_a_stream_under_asgi(suffix):
    token = TokenFactory().key
    session = AsyncClient()
    session.force_login(UserFactory())

    by_token = async_to_sync(AsyncClient().get)(
        f"/orders/events{suffix}", headers={"Authorization": f"Token {token}"}
    )
    by_session = async_to_sync(session.get)("/orders/events")

    for response in (by_token, by_session):
        assert response.status_code == 200
        assert response["Content-Type"] == "text/event-stream"
        assert response["Cache-Control"] == "no-cache"
        assert response.streaming


def test_under_wsgi_the_stream_is_refused_rather_than_holding_a_worker(api):
    response = api.get("/orders/events")

    assert response.status_code == 501
    assert response.json() == {"detail": ASGI_ONLY}


def test_only_get_is_served(api):
    assert api.post("/orders/events").status_code == 405


@pytest.mark.parametrize(
    ("query", "headers", "field", "message"),
    [
        ("?since=abc", {}, "since", EVENT_ID_ERROR),
        ("?since=-1", {}, "since", EVENT_ID_ERROR),
        ("?since=1.5", {}, "since", EVENT_ID_ERROR),
        ("?since=" + "9" * 40, {}, "since", EVENT_ID_ERROR),
        ("", {"HTTP_LAST_EVENT_ID": "x"}, "Last-Event-ID", EVENT_ID_ERROR),
        ("", {"HTTP_LAST_EVENT_ID": ""}, "Last-Event-ID", EVENT_ID_ERROR),
        ("?since=3", {"HTTP_LAST_EVENT_ID": "x"}, "Last-Event-ID", EVENT_ID_ERROR),
        ("?since=1&since=2", {}, "since", "Give this parameter at most once."),
        ("?status=NOPE", {}, "status", "Select a valid choice. NOPE is not one of the available choices."),
        ("?instrument=XX", {}, "instrument", "Enter a valid ISIN: 12 letters or digits."),
    ],
)
def test_bad_resume_points_and_filters_get_a_clear_400(api, query, headers, field, message):
    response = api.get(f"/orders/events{query}", **headers)

    assert response.status_code == 400
    assert response.json() == {field: [message]}


@pytest.mark.parametrize("header", ["4", "9"])
def test_last_event_id_may_come_with_a_since_in_the_url(api, header):
    # A browser's EventSource reconnects to the same URL, adding the last id it got.
    response = api.get("/orders/events?since=4", HTTP_LAST_EVENT_ID=header)

    assert response.status_code == 501  # past the input checks; the test client is WSGI
