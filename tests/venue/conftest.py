import pytest

from tests.venue.harness import VenueProcess


@pytest.fixture
def venue_process(tmp_path):
    """Build venue processes: ``venue_process(VENUE_MAX_FILLS="3").start()``; all stopped at the end."""
    made = []

    def build(**env):
        process = VenueProcess(tmp_path, **env)
        made.append(process)
        return process

    yield build
    for process in made:
        process.stop()
    for process in made:
        process.assert_no_tracebacks()
