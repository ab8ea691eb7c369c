"""Per-client API rate limits: 429 with ``Retry-After``, at O(1) cost per request.

DRF's ``SimpleRateThrottle`` keeps one timestamp per request in the cache and
re-pickles the whole list on every request. At a limit generous enough for
trading clients (tens of thousands a minute) that list is hundreds of KB:
about 3 ms per request at 30,000 entries, as much as the rest of POST /orders.
These throttles keep two counters per client instead, the current and the
previous fixed window, and estimate the requests in the sliding window ending
now as ``previous * (share of the window still to come) + current`` (the
"sliding window counter"). Cost: one ``get_many`` and one ``incr`` on the cache.

The counters live in Django's default cache: per process with LocMemCache (each
gunicorn worker counts on its own, so the effective limit is the rate times the
number of workers), shared with RedisCache when ``REDIS_URL`` is set. If the
cache fails, requests are let through (a rate limit must not take the API down)
and a warning is logged at most once a minute per process.
"""

import logging
import math
import time

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

logger = logging.getLogger("orders.api.throttling")

_CACHE_ERROR_LOG_INTERVAL = 60.0
_last_cache_error_log = 0.0


class WindowCounterThrottleMixin:
    """Replaces ``SimpleRateThrottle``'s timestamp list with two window counters."""

    def get_rate(self):
        # Read on every request, not frozen at import like DRF's THROTTLE_RATES,
        # so that a settings override (tests, a reload) takes effect.
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"No throttle rate set for the {self.scope!r} scope") from None

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        current_key, previous_key = f"{key}_{window}", f"{key}_{window - 1}"
        try:
            counts = self.cache.get_many([previous_key, current_key])
            previous, current = counts.get(previous_key, 0), counts.get(current_key, 0)
            elapsed = now - window * self.duration
            if previous * (1 - elapsed / self.duration) + current >= self.num_requests:
                self._wait = self._time_to_room(previous, current, elapsed)
                return False
            self._count(current_key)
        except Exception:
            _log_cache_error()
        return True

    def _count(self, key):
        try:
            self.cache.incr(key)
        except ValueError:  # first request of the window (or the key just expired)
            # Kept through the next window, where it is the "previous" counter.
            if not self.cache.add(key, 1, 2 * self.duration + 1):
                self.cache.incr(key)  # another request created it meanwhile

    def _time_to_room(self, previous, current, elapsed):
        """Seconds until the estimate drops below the limit, if no other request counts meanwhile."""
        limit, duration = self.num_requests, self.duration
        if current >= limit:
            # The current window alone is full: wait for the next one, then for this
            # window's weight (as the "previous" one) to decay enough.
            return (duration - elapsed) + duration * (1 - limit / current)
        return duration * (1 - (limit - current) / previous) - elapsed

    def wait(self):
        # At least 1: DRF omits Retry-After when the wait rounds to 0.
        return max(1, math.ceil(getattr(self, "_wait", self.duration)))


class UserThrottle(WindowCounterThrottleMixin, UserRateThrottle):
    """Authenticated requests, counted per user (``API_THROTTLE_USER``)."""

    def get_cache_key(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return None  # AnonThrottle's
        return f"throttle_{self.scope}_{request.user.pk}"


class AnonThrottle(WindowCounterThrottleMixin, AnonRateThrottle):
    """Unauthenticated requests, counted per client address (``API_THROTTLE_ANON``).

    The address is REMOTE_ADDR, or the entry ``NUM_PROXIES`` from the right of
    X-Forwarded-For when ``DJANGO_TRUSTED_PROXIES`` says proxies set it.
    """


def _log_cache_error():
    global _last_cache_error_log
    now = time.monotonic()
    if now - _last_cache_error_log >= _CACHE_ERROR_LOG_INTERVAL:
        _last_cache_error_log = now
        logger.warning("throttle cache unavailable: requests are not rate-limited", exc_info=True)
