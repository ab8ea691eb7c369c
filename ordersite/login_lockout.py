"""Password logins lock out after repeated failures (SPEC §7), with django-axes.

Every password login goes through Django's ``authenticate(request, ...)``: the admin's
(/admin/login/) and DRF's browsable API's (/api-auth/login/). Axes counts failures per
account and client address in the database (shared by every process) and refuses
that pair for ``LOGIN_LOCKOUT_MINUTES`` once it reaches ``LOGIN_FAILURE_LIMIT``; the
settings are in ``ordersite/settings.py``, the reasoning in docs/security.md.
"""

import ipaddress

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.contrib import admin
from django.shortcuts import render
from rest_framework.throttling import BaseThrottle


class LoginLockoutBackend(AxesStandaloneBackend):
    """Axes' check, for logins that come with a request; no opinion on the others.

    Axes refuses (with an exception) any ``authenticate()`` without a request, and
    there is nothing to count one by. Only code calls it that way (the test client's
    ``login()``, a shell), never a login page: both pages pass the request.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


def login_client_address(request) -> str | None:
    """The address failures count against: the one the API's throttles use.

    REMOTE_ADDR, or with ``DJANGO_TRUSTED_PROXIES`` the entry that many from the right
    of X-Forwarded-For, so a client cannot dodge the count with a header of its own.
    """
    address = BaseThrottle().get_ident(request)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return request.META.get("REMOTE_ADDR")
    return address


def login_locked_out(request, original_response=None, credentials=None):
    """The page a locked-out login gets: 429, what happened, when to try again."""
    cool_off = get_cool_off(request)
    minutes = max(1, round(cool_off.total_seconds() / 60))
    context = {
        **admin.site.each_context(request),
        "title": "Too many failed logins",
        "lockout_minutes": minutes,
    }
    response = render(request, "registration/login_locked_out.html", context, status=429)
    response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response
