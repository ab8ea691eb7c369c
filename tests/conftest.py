import pytest
from rest_framework.test import APIClient

from orders.authentication import token_cache_clear
from tests.factories import TokenFactory, UserFactory


@pytest.fixture(scope="session")
def django_db_modify_db_settings():
    """Refuse, with the reason, to set up a test database anywhere but on MySQL/MariaDB."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "ordersite.mysql":
        pytest.fail(settings.MYSQL_ONLY, pytrace=False)


@pytest.fixture(autouse=True)
def _fresh_token_cache():
    token_cache_clear()
    yield
    token_cache_clear()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def api(user):
    """An API client authenticated with the user's token."""
    client = APIClient()
    token = TokenFactory(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    client.user = user
    return client


@pytest.fixture
def api_for(db):
    """Build an API client for another user: ``api_for(user)``."""

    def build(owner):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {TokenFactory(user=owner).key}")
        client.user = owner
        return client

    return build


@pytest.fixture
def staff_api(api_for):
    return api_for(UserFactory(username="clerk", is_staff=True))


class CollectingDispatcher:
    """Stands in for the placement dispatcher in tests that run inside one transaction.

    The real dispatcher's threads use their own connections and could not see the
    test's uncommitted rows; these tests run placements themselves from ``plans``.
    Tests with ``transactional_db`` get the real dispatcher.
    """

    def __init__(self):
        self.plans = []

    def schedule(self, plans):
        self.plans.extend(plans)

    def take(self):
        plans, self.plans = self.plans, []
        return plans


@pytest.fixture(autouse=True)
def dispatcher(request, monkeypatch):
    import os

    from orders import dispatcher as dispatcher_module

    marker = request.node.get_closest_marker("django_db")
    transactional = marker is not None and marker.kwargs.get("transaction", False)
    if transactional or "transactional_db" in request.fixturenames or "live_server" in request.fixturenames:
        yield dispatcher_module.get_dispatcher()
        return
    collecting = CollectingDispatcher()
    monkeypatch.setattr(dispatcher_module, "_dispatcher", collecting)
    monkeypatch.setattr(dispatcher_module, "_dispatcher_pid", os.getpid())
    yield collecting


@pytest.fixture
def cluster_factory():
    """Real ``qcluster`` processes on the test database: ``cluster_factory(**env).start()``."""
    from tests.pipeline_helpers import Cluster

    clusters = []

    def build(**env):
        cluster = Cluster(**env)
        clusters.append(cluster)
        return cluster

    yield build
    for cluster in clusters:
        cluster.stop()
