import pytest

from tests.gateway.harness import GatewayProcess
from tests.venue.harness import VenueProcess


@pytest.fixture
def processes(tmp_path):
    """Build a venue and a gateway on it: ``venue, gateway = processes(venue_env, gateway_env)``."""
    made = []

    def build(venue_env=None, gateway_env=None):
        venue = VenueProcess(tmp_path, **(venue_env or {}))
        gateway = GatewayProcess(tmp_path, venue, **(gateway_env or {}))
        made.extend([gateway, venue])
        return venue, gateway

    yield build
    for process in made:
        process.stop()
