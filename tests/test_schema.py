"""The OpenAPI schema, the Swagger UI and the health check are public (SPEC §3)."""

import pytest
from rest_framework.test import APIClient

from tests.contract import DETAIL_FIELDS, EXECUTION_FIELDS, REPRESENTATION_FIELDS


@pytest.fixture
def anonymous(db):
    return APIClient()


def schema(client):
    response = client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200, response.content
    return response.json()


def test_schema_is_an_openapi_3_document(anonymous):
    document = schema(anonymous)

    assert document["openapi"].startswith("3.")
    assert document["info"]["title"]


def test_schema_documents_the_orders_endpoints(anonymous):
    paths = schema(anonymous)["paths"]

    orders = next(p for p in paths if p.rstrip("/") == "/orders")
    detail = next(p for p in paths if p.rstrip("/") == "/orders/{id}")
    cancel = next(p for p in paths if p.rstrip("/") == "/orders/{id}/cancel")
    assert {"get", "post"} <= set(paths[orders])
    assert "get" in paths[detail]
    assert "post" in paths[cancel]
    assert {"200", "202", "403", "404", "409"} <= set(paths[cancel]["post"]["responses"])


LIST_PARAMETERS = {
    "status",
    "side",
    "type",
    "time_in_force",
    "instrument",
    "created_after",
    "created_before",
    "client_order_id",
    "cursor",
    "page_size",
}


def list_parameters(document):
    paths = document["paths"]
    orders = next(p for p in paths if p.rstrip("/") == "/orders")
    return {p["name"] for p in paths[orders]["get"]["parameters"]}


def test_schema_documents_the_list_filters(api):
    assert LIST_PARAMETERS <= list_parameters(schema(api))


def test_public_schema_documents_the_list_filters(anonymous):
    assert LIST_PARAMETERS <= list_parameters(schema(anonymous))


def test_schema_is_the_same_for_everyone(anonymous, api):
    assert schema(anonymous)["paths"].keys() == schema(api)["paths"].keys()


def test_schema_documents_the_order_representation(anonymous):
    schemas = schema(anonymous)["components"]["schemas"]

    properties = set(schemas["OrderOutput"]["properties"])

    assert REPRESENTATION_FIELDS <= properties


def test_schema_documents_the_order_detail_with_its_executions(anonymous):
    schemas = schema(anonymous)["components"]["schemas"]

    assert DETAIL_FIELDS <= set(schemas["OrderDetailOutput"]["properties"])
    executions = schemas["OrderDetailOutput"]["properties"]["executions"]
    execution = schemas[executions["items"]["$ref"].rsplit("/", 1)[-1]]
    assert set(execution["properties"]) == EXECUTION_FIELDS


def test_schema_documents_time_in_force_and_the_new_statuses(anonymous):
    document = schema(anonymous)
    schemas = document["components"]["schemas"]

    body = schemas["OrderCreateInput"]["properties"]["time_in_force"]
    assert "time_in_force" not in schemas["OrderCreateInput"].get("required", [])
    assert body["default"] == "day"
    assert body["allOf"] == [{"$ref": "#/components/schemas/TimeInForceEnum"}]
    assert set(schemas["TimeInForceEnum"]["enum"]) == {"day", "gtc", "ioc", "fok"}
    statuses = set(schemas["StatusEnum"]["enum"])
    assert {"PARTIALLY_FILLED", "FILLED", "PENDING_CANCEL", "EXPIRED", "REJECTED"} <= statuses


def test_schema_documents_the_cancel_answers(anonymous):
    paths = schema(anonymous)["paths"]
    cancel = next(p for p in paths if p.rstrip("/") == "/orders/{id}/cancel")
    responses = paths[cancel]["post"]["responses"]

    assert "PENDING_CANCEL" in responses["202"]["description"]
    assert "CANCELLED" in responses["200"]["description"]


def test_schema_is_served_as_yaml_by_default(anonymous):
    response = anonymous.get("/api/schema")

    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3.")


def test_swagger_ui_is_an_html_page(anonymous):
    response = anonymous.get("/api/docs")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"swagger" in response.content.lower()


def test_healthz_answers_without_authentication(anonymous):
    response = anonymous.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_swagger_ui_assets_are_served_locally_not_from_a_cdn(client):
    page = client.get("/api/docs")

    assert page.status_code == 200
    assert b"/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page.content
    assert b"cdn.jsdelivr" not in page.content
