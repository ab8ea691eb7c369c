"""Malformed requests of every shape get a clear 4xx, never a 500, and store nothing (SPEC §3, §8)."""

import json
import uuid

import pytest
from django_q.models import OrmQ
from rest_framework.test import APIClient

from orders.models import Order
from tests.factories import OrderFactory, UserFactory

ISIN = "US0378331005"
VALID = {
    "type": "limit",
    "side": "buy",
    "instrument": ISIN,
    "limit_price": "10.00",
    "quantity": 5,
}
UNKNOWN_ID = "7d9f1f6e-3c44-4a55-9b4c-9e1b1b1b1b1b"


def assert_nothing_stored():
    assert Order.objects.count() == 0
    assert OrmQ.objects.count() == 0


def post_raw(client, body, content_type="application/json"):
    return client.generic("POST", "/orders", body, content_type=content_type)


# --- bodies that are not a JSON object ------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "{",
        '{"type": "market",}',
        "{'type': 'market'}",
        "not json",
        '{"quantity": NaN}',
        '{"quantity": Infinity}',
        b'{"type": "\xff"}',
    ],
    ids=[
        "truncated",
        "trailing-comma",
        "single-quotes",
        "bare-words",
        "nan",
        "infinity",
        "invalid-utf8",
    ],
)
def test_invalid_json_is_a_parse_error(api, body):
    response = post_raw(api, body)

    assert response.status_code == 400, response.content
    assert "JSON parse error" in response.json()["detail"]
    assert_nothing_stored()


@pytest.mark.parametrize(
    "body",
    ["[]", json.dumps([VALID]), '"an order"', "42", "4.2", "true", "null"],
    ids=[
        "empty-list",
        "list-of-orders",
        "string",
        "integer",
        "float",
        "boolean",
        "null",
    ],
)
def test_json_that_is_not_an_object_is_refused(api, body):
    response = post_raw(api, body)

    assert response.status_code == 400, response.content
    assert "non_field_errors" in response.json()
    assert_nothing_stored()


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
        "application/xml",
        "",
    ],
)
def test_body_that_is_not_json_is_unsupported_media_type(api, content_type):
    response = post_raw(api, json.dumps(VALID), content_type=content_type)

    assert response.status_code == 415, response.content
    assert "Unsupported media type" in response.json()["detail"]
    assert_nothing_stored()


def test_empty_body_reports_every_required_field(api):
    response = post_raw(api, "")

    assert response.status_code == 400, response.content
    assert set(response.json()) == {"type", "side", "instrument", "quantity"}
    assert_nothing_stored()


def test_empty_object_reports_every_required_field(api):
    response = post_raw(api, "{}")

    assert response.status_code == 400, response.content
    assert set(response.json()) == {"type", "side", "instrument", "quantity"}
    assert_nothing_stored()


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({**VALID, "client_order_id": "x" * (70 * 1024)}),
        json.dumps(VALID) + " " * (64 * 1024),
        "[" * (40 * 1024) + "]" * (40 * 1024),
    ],
    ids=["long-field", "padding", "deep-nesting"],
)
def test_body_over_64_kib_is_too_large(api, body):
    response = post_raw(api, body)

    assert response.status_code == 413, response.content
    assert response.json() == {"detail": "Request body too large."}
    assert_nothing_stored()


# --- missing fields and wrong types ---------------------------------------


@pytest.mark.parametrize("field", ["type", "side", "instrument", "quantity"])
def test_missing_required_field_is_refused(api, field):
    payload = {k: v for k, v in VALID.items() if k != field}

    response = api.post("/orders", payload, format="json")

    assert response.status_code == 400, response.content
    assert response.json()[field] == ["This field is required."]
    assert_nothing_stored()


@pytest.mark.parametrize("field", ["type", "side", "instrument", "quantity"])
def test_null_required_field_is_refused(api, field):
    response = api.post("/orders", {**VALID, field: None}, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json()
    assert_nothing_stored()


WRONG_TYPES = [
    ("type", "stop"),
    ("type", "MARKET"),
    ("type", 1),
    ("type", True),
    ("type", ["limit"]),
    ("type", {"v": "limit"}),
    ("type", ""),
    ("side", "long"),
    ("side", 0),
    ("side", False),
    ("side", ["buy"]),
    ("side", {}),
    ("instrument", 378331005),
    ("instrument", True),
    ("instrument", [ISIN]),
    ("instrument", {"isin": ISIN}),
    ("limit_price", "abc"),
    ("limit_price", "10,00"),
    ("limit_price", "NaN"),
    ("limit_price", "Infinity"),
    ("limit_price", "-Infinity"),
    ("limit_price", ""),
    ("limit_price", [10]),
    ("limit_price", {"amount": 10}),
    ("limit_price", True),
    ("quantity", "5"),
    ("quantity", 5.0),
    ("quantity", True),
    ("quantity", [5]),
    ("quantity", {"n": 5}),
    ("client_order_id", True),
    ("client_order_id", ["a"]),
    ("client_order_id", {"a": 1}),
    ("client_order_id", ""),
    ("client_order_id", "a\x00b"),
]


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES, ids=[f"{f}={v!r}" for f, v in WRONG_TYPES])
def test_field_of_the_wrong_type_is_refused(api, field, value):
    response = api.post("/orders", {**VALID, field: value}, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json()
    assert_nothing_stored()


@pytest.mark.parametrize("value", [42, 1.5], ids=["int", "float"])
def test_numeric_client_order_id_is_refused(api, value):
    response = api.post("/orders", {**VALID, "client_order_id": value}, format="json")

    assert response.status_code == 400, response.content
    assert_nothing_stored()


@pytest.mark.parametrize("isin", ["uſ0378331005", "ıe00B4L5Y983"])
def test_non_ascii_letters_are_not_isin_letters(api, isin):
    response = api.post("/orders", {**VALID, "instrument": isin}, format="json")

    assert response.status_code == 400, response.content
    assert_nothing_stored()


def test_several_bad_fields_are_all_reported(api):
    response = api.post(
        "/orders",
        {
            "type": "stop",
            "side": "up",
            "instrument": "XX",
            "quantity": -1,
            "limit_price": "x",
        },
        format="json",
    )

    assert response.status_code == 400
    assert {"type", "side", "instrument", "quantity", "limit_price"} <= set(response.json())
    assert_nothing_stored()


# --- ids: unknown, malformed, someone else's ------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"/orders/{UNKNOWN_ID}",
        f"/orders/{UNKNOWN_ID}/",
        f"/orders/{UNKNOWN_ID.replace('-', '')}",
    ],
)
def test_unknown_order_id_is_404_json(api, path):
    response = api.get(path)

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in response.json()


def test_cancelling_an_unknown_order_is_404_json(api):
    response = api.post(f"/orders/{UNKNOWN_ID}/cancel")

    assert response.status_code == 404
    assert "detail" in response.json()
    assert_nothing_stored()


@pytest.mark.parametrize(
    "order_id",
    [
        "123",
        "not-a-uuid",
        "7d9f1f6e-3c44-4a55-9b4c-9e1b1b1b1b1",
        "7d9f1f6e-3c44-4a55-9b4c-9e1b1b1b1b1bz",
        "gggggggg-3c44-4a55-9b4c-9e1b1b1b1b1b",
        "%00",
        "..%2F..%2Fetc",
    ],
)
@pytest.mark.parametrize("action", ["get", "cancel"])
def test_order_id_that_is_not_a_uuid_is_404_json(api, order_id, action):
    if action == "get":
        response = api.get(f"/orders/{order_id}")
    else:
        response = api.post(f"/orders/{order_id}/cancel")

    assert response.status_code == 404, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "Not found."}
    assert_nothing_stored()


def test_another_clients_order_is_404_for_get(api):
    theirs = OrderFactory(owner=UserFactory())

    response = api.get(f"/orders/{theirs.id}")

    assert response.status_code == 404
    assert "detail" in response.json()


def test_another_clients_order_is_404_for_cancel_and_stays_open(api):
    theirs = OrderFactory(owner=UserFactory())

    response = api.post(f"/orders/{theirs.id}/cancel")

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == Order.Status.OPEN
    assert theirs.remaining_quantity == theirs.quantity


# --- authentication -------------------------------------------------------


def _anonymous():
    return APIClient()


def _bad_token():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    return client


def _malformed_header():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token two words")
    return client


def _inactive_user():
    from tests.factories import TokenFactory

    client = APIClient()
    token = TokenFactory(user=UserFactory(is_active=False))
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


CLIENTS = {
    "anonymous": _anonymous,
    "bad-token": _bad_token,
    "malformed-header": _malformed_header,
    "inactive-user": _inactive_user,
}
REQUESTS = [
    ("post", "/orders"),
    ("get", "/orders"),
    ("get", f"/orders/{UNKNOWN_ID}"),
    ("post", f"/orders/{UNKNOWN_ID}/cancel"),
]


@pytest.mark.parametrize("who", CLIENTS)
@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_unauthenticated_requests_are_401(db, who, method, path):
    client = CLIENTS[who]()

    response = getattr(client, method)(path, VALID if method == "post" else None, format="json")

    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == "Token"
    assert "detail" in response.json()
    assert_nothing_stored()


def test_unauthenticated_client_cannot_read_an_existing_order(db):
    order = OrderFactory()

    response = APIClient().get(f"/orders/{order.id}")

    assert response.status_code == 401
    assert str(order.id) not in response.content.decode()


# --- verbs ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
@pytest.mark.parametrize("target", ["list", "detail", "cancel"])
def test_other_verbs_are_405_and_change_nothing(api, method, target):
    order = OrderFactory(owner=api.user)
    path = {
        "list": "/orders",
        "detail": f"/orders/{order.id}",
        "cancel": f"/orders/{order.id}/cancel",
    }[target]

    response = getattr(api, method)(path, {"status": "CANCELLED", "quantity": 1}, format="json")

    assert response.status_code == 405, response.content
    assert "detail" in response.json()
    assert Order.objects.count() == 1
    order.refresh_from_db()
    assert order.status == Order.Status.OPEN
    assert order.quantity == 100


def test_get_on_cancel_is_405_and_does_not_cancel(api):
    order = OrderFactory(owner=api.user)

    response = api.get(f"/orders/{order.id}/cancel")

    assert response.status_code == 405
    order.refresh_from_db()
    assert order.status == Order.Status.OPEN


def test_post_on_an_order_is_405(api):
    order = OrderFactory(owner=api.user)

    response = api.post(f"/orders/{order.id}", VALID, format="json")

    assert response.status_code == 405
    assert Order.objects.count() == 1


def test_unknown_path_is_404_json(api):
    response = api.get(f"/orders/{uuid.uuid4()}/explode")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/no-such-page", None),
        ("/no-such-page", "*/*"),
        ("/no-such-page", "application/json"),
        (f"/orders/{UNKNOWN_ID}/explode", BROWSER_ACCEPT),
    ],
    ids=["no-accept", "any", "json", "browser-under-orders"],
)
def test_unknown_path_is_404_json_for_api_clients_and_always_under_orders(client, path, accept):
    headers = {"Accept": accept} if accept else {}

    response = client.get(path, headers=headers)

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/admin/no-such-page/", None),
        ("/admin/no-such-page/", "application/json"),
        ("/no-such-page", BROWSER_ACCEPT),
    ],
    ids=["admin", "admin-asking-json", "browser"],
)
def test_unknown_admin_or_browser_page_is_djangos_html_404(db, client, path, accept):
    client.force_login(UserFactory(is_staff=True))
    headers = {"Accept": accept} if accept else {}

    response = client.get(path, headers=headers)

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert b"Not Found" in response.content


# --- oversized query strings ----------------------------------------------

TOO_MANY_PARAMS = "&".join(["status=OPEN"] * 1001)  # over DATA_UPLOAD_MAX_NUMBER_FIELDS


@pytest.mark.parametrize("method", ["get", "post"])
def test_too_many_query_parameters_is_400(api, method):
    if method == "get":
        response = api.get(f"/orders?{TOO_MANY_PARAMS}")
    else:
        response = api.post(f"/orders?{TOO_MANY_PARAMS}", VALID, format="json")

    assert response.status_code == 400, response.content
    assert_nothing_stored()


# --- found by the schema campaign (tests/test_schema_fuzz.py) -------------


@pytest.mark.parametrize(
    "value",
    ["null", "abc", "-1", "0", "000", "1.5", "1e2", "+5", " 5", "٣", "５"],
)
def test_page_size_that_is_not_a_whole_number_is_rejected_with_400(api, value):
    # DRF's pagination fell back to the default page size: a 200 for garbage.
    response = api.get("/orders", {"page_size": value})

    assert response.status_code == 400, response.content
    assert list(response.json()) == ["page_size"]


def test_page_size_of_thousands_of_digits_counts_as_the_cap(api):
    OrderFactory(owner=api.user)

    response = api.get("/orders", {"page_size": "9" * 5000})

    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == 1


@pytest.mark.parametrize(
    "query",
    [
        "page_size=null&page_size=null",
        "page_size=1&page_size=2",
        "side=buy&side=sell",
        "type=limit&type=market",
        "time_in_force=day&time_in_force=gtc",
        f"instrument={ISIN}&instrument=US5949181045",
        "client_order_id=a&client_order_id=b",
        "created_after=2020-01-01T00:00:00Z&created_after=2021-01-01T00:00:00Z",
        "cursor=a&cursor=b",
    ],
)
def test_repeated_single_value_query_parameter_is_rejected_with_400(api, query):
    # django-filter and DRF took the last value: a 200 (for two cursors, an "Invalid cursor" 404).
    response = api.get(f"/orders?{query}")

    assert response.status_code == 400, response.content
    assert list(response.json()) == [query.split("=")[0]]


def test_several_statuses_are_still_a_filter_not_a_repeat(api):
    OrderFactory(owner=api.user)

    response = api.get("/orders?status=OPEN&status=FAILED")

    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == 1


@pytest.mark.parametrize(
    "name",
    [
        "side",
        "type",
        "time_in_force",
        "instrument",
        "client_order_id",
        "created_after",
        "created_before",
        "cursor",
        "page_size",
    ],
)
def test_empty_query_value_means_not_given(api, name):
    # As the schema now says (allowEmptyValue): the browsable API's filter form sends empty fields.
    OrderFactory(owner=api.user)

    response = api.get(f"/orders?{name}=")

    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("instrument", "US03783310051"),
        ("client_order_id", "x" * 65),
        ("instrument", "US\x00"),
        ("client_order_id", "a\x00b"),
    ],
    ids=["instrument-too-long", "client-order-id-too-long", "instrument-nul", "client-order-id-nul"],
)
def test_filter_value_the_schema_refuses_is_rejected_with_400(api, name, value):
    response = api.get("/orders", {name: value})

    assert response.status_code == 400, response.content
    assert list(response.json()) == [name]


def _schema(client):
    response = client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200, response.content
    return response.json()


def _operation(document, path, method):
    return next(ops for p, ops in document["paths"].items() if p.rstrip("/") == path)[method]


@pytest.mark.parametrize(
    ("path", "method", "statuses"),
    [
        ("/orders", "post", {"200", "201", "400", "401", "409", "413", "415", "429", "500"}),
        ("/orders", "get", {"200", "400", "401", "404", "429", "500"}),
        ("/orders/{id}", "get", {"200", "401", "404", "429", "500"}),
        ("/orders/{id}/cancel", "post", {"200", "202", "401", "403", "404", "409", "429", "500"}),
    ],
)
def test_schema_documents_every_status_the_api_answers(api, path, method, statuses):
    # Only the 2xx were documented: every 4xx was a contract violation.
    responses = _operation(_schema(api), path, method)["responses"]

    assert set(responses) == statuses
    for status_code, response in responses.items():
        assert "application/json" in response["content"], status_code


def test_schema_states_the_limits_of_the_list_query_parameters(api):
    parameters = {p["name"]: p for p in _operation(_schema(api), "/orders", "get")["parameters"]}

    assert parameters["instrument"]["schema"]["maxLength"] == 12
    assert parameters["client_order_id"]["schema"]["maxLength"] == 64
    assert "pattern" in parameters["instrument"]["schema"]
    assert parameters["page_size"]["schema"]["minimum"] == 1
    assert {name for name, p in parameters.items() if p.get("allowEmptyValue")} == {
        "side",
        "type",
        "time_in_force",
        "instrument",
        "client_order_id",
        "created_after",
        "created_before",
        "cursor",
        "page_size",
    }


def test_schema_states_the_rules_of_the_order_body(api):
    body = _schema(api)["components"]["schemas"]["OrderCreateInput"]
    properties = body["properties"]

    assert body["additionalProperties"] is False
    assert properties["instrument"]["pattern"] == "^[A-Za-z]{2}[A-Za-z0-9]{9}[0-9]$"
    assert {branch["type"] for branch in properties["limit_price"]["oneOf"]} == {"string", "number"}
    assert properties["client_order_id"]["minLength"] == 1
