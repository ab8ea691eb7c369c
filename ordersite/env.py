"""Typed readers for the process environment: settings read it once, here.

Each reader takes an optional ``environ`` mapping (default ``os.environ``) so a
settings-building function can be unit-tested with a plain dict.
"""

import os
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

# Values of a rate variable that switch the limit off.
RATE_OFF = {"off", "none", "0"}
_RATE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _raw(name: str, environ: Mapping[str, str] | None) -> str:
    return (os.environ if environ is None else environ).get(name, "").strip()


def env_str(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    return _raw(name, environ) or default


def env_bool(name: str, default: bool = False, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ).lower()
    if not value:
        return default
    return value in {"1", "true", "yes", "on"}


def env_float(name: str, default: float, environ: Mapping[str, str] | None = None) -> float:
    value = _raw(name, environ)
    return float(value) if value else default


def env_int(name: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    value = _raw(name, environ)
    return int(value) if value else default


def env_list(name: str, default: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    value = _raw(name, environ)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_rate(name: str, default: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """A DRF throttle rate such as ``600/min`` (period s, m, h or d); ``off`` gives None (no limit).

    Checked here, at start-up: a typo must not become a 500 on every request.
    """
    value = _raw(name, environ).lower() or default
    if value is None or value in RATE_OFF:
        return None
    number, _, period = value.partition("/")
    if not (number.isdigit() and int(number) > 0 and period[:1] in _RATE_PERIODS):
        raise ImproperlyConfigured(
            f"{name}={value!r}: expected a rate such as '600/min' (per s, min, hour or day) or 'off'"
        )
    return value
