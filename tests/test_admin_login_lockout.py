"""Staff passwords cannot be guessed by brute force (SPEC §7): logins lock out after repeated failures."""

import io
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ordersite.settings import login_lockout_settings
from tests.factories import ClerkFactory, UserFactory

pytestmark = pytest.mark.django_db

ADMIN_LOGIN = "/admin/login/"
API_LOGIN = "/api-auth/login/"
PASSWORD = "secret-pass-123"  # the factories' password
LOCKED_OUT = "Too many failed login attempts"


def log_in(client, username, password, path=ADMIN_LOGIN, address="203.0.113.7", **headers):
    return client.post(
        path, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address, **headers
    )


def logged_into_admin(client) -> bool:
    return client.get("/admin/").status_code == 200


@pytest.fixture
def clerk(db):
    return ClerkFactory(username="clara")


def fail(client, times, username="clara", **kwargs):
    return [log_in(client, username, "wrong-guess", **kwargs) for _ in range(times)]


def test_the_fifth_failed_login_locks_the_account_out_from_that_address(client, clerk):
    failures = fail(client, 4)
    assert [response.status_code for response in failures] == [200] * 4
    assert "Please enter the correct username and password" in failures[-1].content.decode()

    fifth = log_in(client, "clara", "wrong-guess")

    assert fifth.status_code == 429
    page = fifth.content.decode()
    assert LOCKED_OUT in page and "blocked for 30 minutes" in page
    assert fifth["Retry-After"] == "1800"
    right_password = log_in(client, "clara", PASSWORD)
    assert right_password.status_code == 429
    assert LOCKED_OUT in right_password.content.decode()
    assert not logged_into_admin(client)


def test_a_login_before_the_limit_works_and_starts_the_count_again(client, clerk):
    fail(client, 4)

    response = log_in(client, "clara", PASSWORD)

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert logged_into_admin(client)
    client.post("/admin/logout/")
    assert [response.status_code for response in fail(client, 4)] == [200] * 4


def test_the_lockout_holds_one_account_from_one_address_only(client, clerk):
    ClerkFactory(username="bob")
    fail(client, 5, address="203.0.113.7")

    assert log_in(Client(), "clara", PASSWORD, address="198.51.100.20").status_code == 302
    assert log_in(Client(), "bob", PASSWORD, address="203.0.113.7").status_code == 302
    assert log_in(Client(), "clara", PASSWORD, address="203.0.113.7").status_code == 429


def test_unknown_usernames_are_counted_and_locked_out_the_same_way(client):
    assert [r.status_code for r in fail(client, 5, username="nobody")][-1] == 429


def test_after_the_cool_off_the_account_logs_in_again(client, clerk):
    fail(client, 5)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=31))

    response = log_in(client, "clara", PASSWORD)

    assert response.status_code == 302
    assert logged_into_admin(client)


def test_any_attempt_during_the_lockout_restarts_the_wait(client, clerk):
    fail(client, 5)
    almost_over = timezone.now() - timedelta(minutes=29)
    AccessAttempt.objects.update(attempt_time=almost_over)

    assert log_in(client, "clara", PASSWORD).status_code == 429

    (attempt,) = AccessAttempt.objects.all()
    assert attempt.attempt_time > timezone.now() - timedelta(minutes=1)  # 30 minutes from now again
    assert attempt.failures_since_start == 6


def test_the_browsable_apis_login_page_locks_out_too(client, clerk):
    client_account = UserFactory(username="acme-fund")
    failures = fail(client, 5, username="acme-fund", path=API_LOGIN)

    assert [r.status_code for r in failures] == [200] * 4 + [429]
    assert LOCKED_OUT in failures[-1].content.decode()
    assert log_in(client, client_account.username, PASSWORD, path=API_LOGIN).status_code == 429
    assert client.get("/orders").status_code in (401, 403)


def test_a_forged_x_forwarded_for_does_not_dodge_the_count(client, clerk):
    for number in range(5):
        response = log_in(client, "clara", "wrong-guess", HTTP_X_FORWARDED_FOR=f"10.0.0.{number}")

    assert response.status_code == 429
    assert log_in(client, "clara", PASSWORD, HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_client_address_is_counted(client, clerk, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = "192.0.2.1"
    fail(client, 5, address=proxy, HTTP_X_FORWARDED_FOR="203.0.113.50")

    assert (
        log_in(client, "clara", PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR="203.0.113.50").status_code
        == 429
    )
    other_client = log_in(Client(), "clara", PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR="203.0.113.51")
    assert other_client.status_code == 302
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.50"}


def test_an_administrator_lifts_the_lockout_with_a_command(client, clerk):
    fail(client, 5)

    call_command("axes_reset_username", "clara", stdout=io.StringIO())

    assert log_in(client, "clara", PASSWORD).status_code == 302


def test_a_superuser_lifts_the_lockout_in_admin(client, clerk):
    fail(client, 5)
    attempt = AccessAttempt.objects.get()
    superuser = User.objects.create_superuser("root", "root@example.com", "pw-123456789")
    admin_client = Client()
    admin_client.force_login(superuser)

    listed = admin_client.get(reverse("admin:axes_accessattempt_changelist"))
    assert listed.status_code == 200 and "clara" in listed.content.decode()
    delete_url = reverse("admin:axes_accessattempt_delete", args=[attempt.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 302

    assert log_in(client, "clara", PASSWORD).status_code == 302


def test_failed_logins_are_logged_with_username_and_address_never_the_password(client, clerk, caplog):
    fail(client, 1)

    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("axes")]
    assert any('username: "clara"' in m and '"203.0.113.7"' in m for m in warnings), warnings
    attempt = AccessAttempt.objects.get()
    assert "wrong-guess" not in attempt.post_data and "wrong-guess" not in " ".join(warnings)


def test_code_that_logs_in_without_a_request_still_works(clerk):
    client = Client()

    assert client.login(username="clara", password="wrong-guess") is False
    assert client.login(username="clara", password=PASSWORD) is True
    assert logged_into_admin(client)


def test_limit_and_lockout_come_from_the_environment():
    defaults = login_lockout_settings({})
    assert defaults["AXES_FAILURE_LIMIT"] == 5
    assert defaults["AXES_COOLOFF_TIME"] == timedelta(minutes=30)
    assert defaults["AXES_LOCKOUT_PARAMETERS"] == [["username", "ip_address"]]

    custom = login_lockout_settings({"LOGIN_FAILURE_LIMIT": "10", "LOGIN_LOCKOUT_MINUTES": "2.5"})
    assert (custom["AXES_FAILURE_LIMIT"], custom["AXES_COOLOFF_TIME"]) == (10, timedelta(seconds=150))

    for bad in ({"LOGIN_FAILURE_LIMIT": "0"}, {"LOGIN_LOCKOUT_MINUTES": "0"}):
        with pytest.raises(ImproperlyConfigured):
            login_lockout_settings(bad)


def test_a_lower_limit_locks_out_sooner(client, clerk, settings):
    settings.AXES_FAILURE_LIMIT = 2

    assert [r.status_code for r in fail(client, 2)] == [200, 429]


def test_django_axes_is_wired_as_it_asks():
    assert django_settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
    assert django_settings.AUTHENTICATION_BACKENDS[0] == "ordersite.login_lockout.LoginLockoutBackend"
    assert [message.id for message in checks.run_checks() if message.id.startswith("axes.")] == []
