"""Test overrides, all in one place: a fast, deterministic exchange on real MySQL."""

from django.core.exceptions import ImproperlyConfigured

from ordersite.settings import *  # noqa: F403
from ordersite.settings import DATABASES

if DATABASES["default"]["ENGINE"] != "django.db.backends.mysql":
    raise ImproperlyConfigured(
        "The tests run on MySQL/MariaDB only: run `make test`, or set "
        "DATABASE_URL=mysql://user:pass@host:port/name"
    )

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EXCHANGE_LATENCY = 0.0
EXCHANGE_FAILURE_RATE = 0.0
MATCHING_WINDOW = 0.0
EXCHANGE_RETRY_BASE = 0.01
EXCHANGE_RETRY_CAP = 0.05
