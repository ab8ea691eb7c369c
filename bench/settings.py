"""Benchmark settings: the production settings plus the yardstick endpoint."""

from ordersite.settings import *  # noqa: F403
from ordersite.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
ROOT_URLCONF = "bench.urls"
