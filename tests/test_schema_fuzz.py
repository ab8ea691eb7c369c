"""Bad-input campaign: schemathesis against the service's own OpenAPI schema (SPEC §3, §8).

The schema is the one GET /api/schema serves, loaded in-process through Django's
WSGI handler. Every operation in it gets schema-valid and schema-violating
requests (schemathesis's examples, coverage and fuzzing phases) from an
authenticated client, and every response must pass schemathesis's default checks:

- ``not_a_server_error``: never a 5xx (SPEC §8);
- ``status_code_conformance``, ``content_type_conformance``,
  ``response_headers_conformance``, ``response_schema_conformance``: the answer is
  one the schema documents, body included;
- ``negative_data_rejection``: a request that violates the schema gets a 4xx,
  never a 2xx;
- ``positive_data_acceptance``: a request the schema allows is not refused --
  except for POST /orders, see ``EXCLUDED_CHECKS``;
- ``ignored_auth``: the request without the token gets a 401;
  ``unsupported_method`` and ``allow_header_conformance``: other verbs get a 405
  with an ``Allow`` header. (The stateful checks have nothing to do here.)

The public pages outside the schema (/api/schema, /api/docs, /healthz) get a
plain hypothesis campaign of query strings and ``Accept`` headers at the end.

Bounded for a 2-core CI machine: ``MAX_EXAMPLES`` generated requests per operation
on top of the coverage phase's fixed cases, derandomized so that a failure
reproduces; the whole file takes well under a minute.
"""

import re
import uuid
from urllib.parse import quote

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from orders.api.views import UUID_PATTERN
from orders.models import Order
from tests.factories import (
    VALID_ISINS,
    FailedOrderFactory,
    OrderFactory,
    OrderMatchFactory,
    TokenFactory,
    UserFactory,
)

MAX_EXAMPLES = 100
# Each operation must really be exercised: the fuzzing phase alone aims at MAX_EXAMPLES.
MIN_REQUESTS_PER_OPERATION = MAX_EXAMPLES // 2
CAMPAIGN = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # One user, token and set of orders per operation, shared by its examples on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# The ISIN check digit and "limit_price required for limit, prohibited for market"
# (SPEC §3) are beyond what the schema can state, so most schema-valid bodies are
# rightly refused with 400; every other check stays on for POST /orders.
EXCLUDED_CHECKS = {"POST /orders/": [positive_data_acceptance]}

# Orders of the fuzzing client (and one of somebody else's) with fixed ids, which
# generated path ids are mapped onto (see ``flatmap_path_parameters``), so GET and
# cancel meet real orders in every state and not only 404s.
OPEN_ID = uuid.UUID("0f0e0d0c-0b0a-4998-8776-655443322110")
FAILED_ID = uuid.UUID("1f1e1d1c-1b1a-4998-8776-655443322111")
IN_FLIGHT_ID = uuid.UUID("2f2e2d2c-2b2a-4998-8776-655443322112")
MATCHED_ID = uuid.UUID("3f3e3d3c-3b3a-4998-8776-655443322113")
THEIRS_ID = uuid.UUID("4f4e4d4c-4b4a-4998-8776-655443322114")
KNOWN_IDS = [OPEN_ID, FAILED_ID, IN_FLIGHT_ID, MATCHED_ID, THEIRS_ID]
ID_RE = re.compile(rf"^{UUID_PATTERN}$")

schema = schemathesis.openapi.from_wsgi("/api/schema", WSGIHandler())


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half the schema-valid ids become one of ``KNOWN_IDS``, in any spelling the API takes."""
    value = (path_parameters or {}).get("id")
    if not (isinstance(value, str) and ID_RE.match(value)):
        return st.just(path_parameters)
    known = st.sampled_from(KNOWN_IDS).flatmap(
        lambda order_id: st.sampled_from([str(order_id), order_id.hex, str(order_id).upper()])
    )
    return st.one_of(st.just(value), known).map(lambda order_id: {**path_parameters, "id": order_id})


@schema.hook
def flatmap_body(context, body):
    """Half the 12-character instruments become real ISINs, so bodies also reach order creation."""
    if not (
        isinstance(body, dict) and isinstance(body.get("instrument"), str) and len(body["instrument"]) == 12
    ):
        return st.just(body)
    isin = st.sampled_from(VALID_ISINS).flatmap(lambda code: st.sampled_from([code, code.lower()]))
    return st.one_of(st.just(body["instrument"]), isin).map(lambda code: {**body, "instrument": code})


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    """Rate limits are not under test here, and the suite's earlier requests count towards them."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": None, "anon": None},
    }


@pytest.fixture(autouse=True)
def _one_connection_for_every_request(db):
    """Keep the test's connection, and so its transaction, across requests, as Django's test client does.

    The WSGI handler would otherwise close it at the end of each request.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fuzzer(db):
    return UserFactory(username="fuzzer")


@pytest.fixture
def auth_headers(fuzzer):
    return {"Authorization": f"Token {TokenFactory(user=fuzzer).key}"}


@pytest.fixture
def known_orders(fuzzer):
    OrderFactory(id=OPEN_ID, owner=fuzzer)
    FailedOrderFactory(id=FAILED_ID, owner=fuzzer)
    OrderFactory(id=IN_FLIGHT_ID, owner=fuzzer, in_flight=True, market=True, side=Order.Side.SELL)
    OrderMatchFactory(buy_order=OrderFactory(id=MATCHED_ID, owner=fuzzer))
    OrderFactory(id=THEIRS_ID, owner=UserFactory())


@pytest.fixture
def statuses():
    """Statuses of the answers to the operation under test: the campaign must really have run."""
    seen = []
    yield seen
    assert len(seen) >= MIN_REQUESTS_PER_OPERATION, f"the campaign got only {len(seen)} answers"
    assert 429 not in seen, "rate-limited: the campaign did not reach the endpoint"


@schema.parametrize()
@CAMPAIGN
def test_schema_campaign_finds_no_server_error_nor_contract_violation(
    case, auth_headers, known_orders, statuses
):
    excluded = EXCLUDED_CHECKS.get(case.operation.label, [])
    response = case.call_and_validate(headers=auth_headers, excluded_checks=excluded)
    statuses.append(response.status_code)


def test_campaign_covers_every_orders_operation():
    operations = {result.ok().label for result in schema.get_all_operations()}

    assert operations == {"GET /orders/", "POST /orders/", "GET /orders/{id}/", "POST /orders/{id}/cancel/"}


# --- the public pages outside the schema ------------------------------------------

PUBLIC_PATHS = ["/api/schema", "/api/docs", "/healthz"]
QUERY_NAMES = ["format", "lang", "version", "q", "cursor", ""]
ACCEPT = [
    "*/*",
    "application/json",
    "text/html",
    "application/vnd.oai.openapi",
    "application/vnd.oai.openapi+json",
    "application/yaml",
    "text/plain",
    "image/png",
    "application/json; version=2",
    "text/html;q=0, */*;q=0",
]


@st.composite
def public_requests(draw):
    path = draw(st.sampled_from(PUBLIC_PATHS))
    trailing = draw(st.sampled_from(["", "/"]))
    pairs = draw(
        st.lists(
            st.tuples(
                st.one_of(st.sampled_from(QUERY_NAMES), st.text(max_size=8)),
                st.one_of(st.sampled_from(["json", "yaml", "openapi", "xx", ""]), st.text(max_size=16)),
            ),
            max_size=4,
        )
    )
    query = "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)
    printable = st.characters(min_codepoint=32, max_codepoint=126)
    accept = draw(st.one_of(st.sampled_from(ACCEPT), st.text(printable, max_size=32)))
    return path + trailing + (f"?{query}" if query else ""), accept


@pytest.mark.django_db
def test_public_pages_give_no_server_error_for_any_query_or_accept_header():
    client = Client(raise_request_exception=False)
    statuses = []

    @CAMPAIGN
    @given(public_request=public_requests())
    def campaign(public_request):
        url, accept = public_request
        response = client.get(url, headers={"Accept": accept})
        statuses.append(response.status_code)
        assert response.status_code < 500, (url, accept, response.status_code, response.content[:300])

    campaign()

    assert len(statuses) >= MIN_REQUESTS_PER_OPERATION
    assert 429 not in statuses
