"""Test overrides, all in one place: a fast, deterministic exchange on real MySQL."""

import atexit
import os
import shutil
import tempfile

from django.core.exceptions import ImproperlyConfigured

# A test run's files go to a directory of its own, never to a running service's var/
# (set before the settings, and inherited by the processes tests start): its metrics, so
# prometheus_client starts in multiprocess mode; and the venue journal's path, which
# check_invariants reads if a file is there (make run leaves one in var/, with orders of
# another database). Tests with a real venue name their own journal.
_RUN_DIR = tempfile.mkdtemp(prefix="orders-test-")
atexit.register(shutil.rmtree, _RUN_DIR, ignore_errors=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(_RUN_DIR, "metrics")
os.mkdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])
os.environ["VENUE_DB"] = os.path.join(_RUN_DIR, "venue.sqlite3")

from ordersite.settings import *  # noqa: E402, F403
from ordersite.settings import DATABASES  # noqa: E402

MYSQL_ONLY = (
    "The tests run on MySQL/MariaDB only: run `make test`, or set "
    "DATABASE_URL=mysql://user:pass@host:port/name"
)
if DATABASES["default"]["ENGINE"] != "ordersite.mysql":
    if os.environ.get("DATABASE_URL"):
        raise ImproperlyConfigured(MYSQL_ONLY)
    # No database given: pure tests (tests/unit) still run; any test that asks for
    # the database fails with MYSQL_ONLY (tests/conftest.py), never falls back to SQLite.
    DATABASES = {"default": {"ENGINE": "django.db.backends.dummy"}}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The dispatcher calls the in-process exchange of SPEC §6 in this process's tests; the
# venue transport is tested with real venue and gateway processes (tests/gateway/).
EXCHANGE_TRANSPORT = "inprocess"
EXCHANGE_LATENCY = 0.0
EXCHANGE_FAILURE_RATE = 0.0
MATCHING_WINDOW = 0.0
EXCHANGE_RETRY_BASE = 0.01
EXCHANGE_RETRY_CAP = 0.05
