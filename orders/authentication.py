"""Token authentication with a short per-process cache of key -> user.

POST /orders is the hot path; the token lookup is one query per request that
returns the same answer for a long time. A revoked token or deactivated user
stays valid for at most TOKEN_CACHE_SECONDS in each process.
"""

import time

from rest_framework.authentication import TokenAuthentication

TOKEN_CACHE_SECONDS = 5.0
_TOKEN_CACHE_MAX = 10_000
_cache: dict[str, tuple[float, tuple]] = {}


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        now = time.monotonic()
        hit = _cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        result = super().authenticate_credentials(key)
        if len(_cache) >= _TOKEN_CACHE_MAX:
            _cache.clear()
        _cache[key] = (now + TOKEN_CACHE_SECONDS, result)
        return result


def token_cache_clear() -> None:
    _cache.clear()
