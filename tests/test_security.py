"""Security defaults (docs/security.md): DEBUG, the HTTPS switch, throttling, admin access, the secret key."""

import ast
import json
import os
import secrets
import shutil
import stat
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from rest_framework.test import APIClient

from orders.api.throttling import AnonThrottle, UserThrottle
from orders.models import Order
from ordersite.env import env_rate
from ordersite.settings import BASE_DIR, cache_settings, security_settings
from tests.factories import OrderFactory, TokenFactory, UserFactory

MARKET_ORDER = {"type": "market", "side": "buy", "instrument": "US0378331005", "quantity": 5}
# Long and random, as `check --deploy` wants of a real key.
DEPLOY_KEY = secrets.token_urlsafe(50)
LOAD_SETTINGS = (
    "import json, sys; import ordersite.settings as s; "
    "print(json.dumps({name: getattr(s, name) for name in sys.argv[1:]}))"
)


def clean_env(tmp_path, **overrides):
    """The test process's environment without any of the settings' own variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "API_THROTTLE_")) and key not in {"VAR_DIR", "REDIS_URL"}
    }
    env.update(
        VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DJANGO_SETTINGS_MODULE="ordersite.settings",
    )
    env.update(overrides)
    return env


def load_settings(tmp_path, *names, **env):
    """Import ordersite.settings in a fresh interpreter with exactly this environment."""
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SETTINGS, *names],
        cwd=BASE_DIR,
        env=clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def apply(settings, values):
    for name, value in values.items():
        setattr(settings, name, value)


# --- 1. DEBUG -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), ("", False), ("0", False), ("false", False), ("1", True), ("true", True)],
)
def test_debug_is_off_unless_django_debug_is_set(tmp_path, value, expected):
    env = {} if value is None else {"DJANGO_DEBUG": value}
    assert load_settings(tmp_path, "DEBUG", **env) == {"DEBUG": expected}


# --- 2. The HTTPS switch --------------------------------------------------------------------


def test_by_default_cookies_may_travel_over_http_and_there_is_no_hsts():
    values = security_settings({})

    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["CSRF_COOKIE_SECURE"] is False
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SECURE_PROXY_SSL_HEADER"] is None
    assert values["SILENCED_SYSTEM_CHECKS"] == []
    # What is right over plain HTTP too is always on.
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["SECURE_REFERRER_POLICY"] == "same-origin"
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert values["SESSION_COOKIE_HTTPONLY"] is True


def test_django_secure_turns_on_secure_cookies_redirect_and_hsts():
    values = security_settings({"DJANGO_SECURE": "1"})

    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31_536_000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_HSTS_PRELOAD"] is False
    assert values["SILENCED_SYSTEM_CHECKS"] == ["security.W021"]  # preload: the domain owner's call
    # X-Forwarded-Proto is a client-controlled header unless a proxy is declared.
    assert values["SECURE_PROXY_SSL_HEADER"] is None


def test_hsts_choices_and_trusted_proxy():
    values = security_settings(
        {
            "DJANGO_SECURE": "1",
            "DJANGO_HSTS_SECONDS": "300",
            "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "0",
            "DJANGO_HSTS_PRELOAD": "1",
            "DJANGO_TRUSTED_PROXIES": "1",
            "DJANGO_CSRF_TRUSTED_ORIGINS": "https://orders.example.com",
        }
    )

    assert values["SECURE_HSTS_SECONDS"] == 300
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert values["SECURE_HSTS_PRELOAD"] is True
    assert values["SILENCED_SYSTEM_CHECKS"] == []
    assert values["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://orders.example.com"]


def test_hsts_options_mean_nothing_without_the_switch():
    values = security_settings({"DJANGO_HSTS_SECONDS": "300", "DJANGO_HSTS_PRELOAD": "1"})

    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SECURE_HSTS_PRELOAD"] is False


def test_older_django_secure_cookies_still_secures_the_cookies_alone():
    values = security_settings({"DJANGO_SECURE_COOKIES": "1"})

    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0


def test_the_settings_module_applies_the_switch(tmp_path):
    names = ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS")

    on = load_settings(tmp_path, *names, DJANGO_SECURE="1")
    off = load_settings(tmp_path, *names)

    assert on == dict.fromkeys(names[:3], True) | {"SECURE_HSTS_SECONDS": 31_536_000}
    assert off == dict.fromkeys(names[:3], False) | {"SECURE_HSTS_SECONDS": 0}


def run_deploy_check(tmp_path, **env):
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=clean_env(tmp_path, DJANGO_SECRET_KEY=DEPLOY_KEY, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_switch_on(tmp_path):
    result = run_deploy_check(tmp_path, DJANGO_SECURE="1")

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout + result.stderr


def test_check_deploy_complains_without_the_switch(tmp_path):
    result = run_deploy_check(tmp_path)

    assert result.returncode != 0
    for check in ("W004", "W008", "W012", "W016"):
        assert f"security.{check}" in result.stderr


@pytest.fixture
def https_on(settings):
    apply(settings, security_settings({"DJANGO_SECURE": "1"}))


@pytest.mark.django_db
def test_plain_http_is_redirected_but_probes_are_not(https_on, client):
    response = client.get("/orders")

    assert response.status_code == 301
    assert response["Location"] == "https://testserver/orders"
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_https_responses_carry_hsts_and_the_browser_headers(https_on, client):
    response = client.get("/healthz", secure=True)

    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
def test_session_and_csrf_cookies_are_secure_and_the_session_cookie_httponly(https_on, client):
    staff = UserFactory(is_staff=True)

    login_page = client.get("/admin/login/", secure=True)
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": staff.username, "password": "secret-pass-123"},
        secure=True,
    )

    assert login_page.cookies["csrftoken"]["secure"] is True
    assert response.status_code == 302
    session_cookie = response.cookies["sessionid"]
    assert session_cookie["secure"] is True
    assert session_cookie["httponly"] is True


@pytest.mark.django_db
def test_x_forwarded_proto_is_believed_only_from_a_declared_proxy(settings, client):
    apply(settings, security_settings({"DJANGO_SECURE": "1"}))
    assert client.get("/orders", HTTP_X_FORWARDED_PROTO="https").status_code == 301

    apply(settings, security_settings({"DJANGO_SECURE": "1", "DJANGO_TRUSTED_PROXIES": "1"}))
    assert client.get("/orders", HTTP_X_FORWARDED_PROTO="https").status_code == 401


# --- 3. Throttling --------------------------------------------------------------------------


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """The throttles' time, starting at the beginning of a minute."""
    clock = Clock(1_800_000_000.0)
    for throttle in (UserThrottle, AnonThrottle):
        monkeypatch.setattr(throttle, "timer", staticmethod(clock))
    return clock


@pytest.fixture
def low_rates(settings, clock):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "3/min", "anon": "2/min"},
    }
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_a_client_over_its_rate_gets_429_with_retry_after_and_nothing_stored(low_rates, api):
    for _ in range(3):
        assert api.post("/orders", MARKET_ORDER, format="json").status_code == 201

    response = api.post("/orders", MARKET_ORDER, format="json")

    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("Request was throttled.")
    assert response["Retry-After"] == "60"
    assert Order.objects.count() == 3


@pytest.mark.django_db
def test_each_client_has_its_own_limit(low_rates, api, api_for):
    for _ in range(3):
        api.get("/orders")
    assert api.get("/orders").status_code == 429

    assert api_for(UserFactory()).get("/orders").status_code == 200


@pytest.mark.django_db
def test_the_window_slides(low_rates, clock, api):
    for _ in range(3):
        assert api.get("/orders").status_code == 200
    clock.now += 60  # next minute: the last one still weighs 3 * 60/60

    response = api.get("/orders")
    assert response.status_code == 429
    assert response["Retry-After"] == "1"

    clock.now += 1  # 3 * 59/60 < 3
    assert api.get("/orders").status_code == 200
    assert api.get("/orders").status_code == 429


@pytest.mark.django_db
def test_anonymous_clients_are_limited_per_address_and_cannot_dodge_with_x_forwarded_for(low_rates):
    client = APIClient(REMOTE_ADDR="203.0.113.5")
    assert client.get("/api/schema").status_code == 200
    assert client.get("/api/schema", HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 200

    response = client.get("/api/schema", HTTP_X_FORWARDED_FOR="198.51.100.2")

    assert response.status_code == 429
    assert "Retry-After" in response
    assert APIClient(REMOTE_ADDR="203.0.113.6").get("/api/schema").status_code == 200


@pytest.mark.django_db
def test_a_rate_of_off_disables_the_limit(settings, api):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": env_rate("X", "off"), "anon": None},
    }
    assert all(api.get("/orders").status_code == 200 for _ in range(5))


class CountingCache:
    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self.inner, name)


@pytest.mark.django_db
def test_a_request_costs_two_cache_calls_and_stores_counters_not_timestamps(low_rates, api, monkeypatch):
    api.get("/orders")  # the window's first request creates its counter
    counting = CountingCache(cache)
    monkeypatch.setattr(UserThrottle, "cache", counting)

    api.get("/orders")

    assert counting.calls == ["get_many", "incr"]
    window = int(UserThrottle.timer() // 60)
    assert cache.get(f"throttle_user_{api.user.pk}_{window}") == 2


class BrokenCache:
    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("redis is down")

        return fail


@pytest.mark.django_db
def test_a_failing_cache_lets_requests_through_and_says_so(low_rates, api, monkeypatch, caplog):
    monkeypatch.setattr(UserThrottle, "cache", BrokenCache())
    monkeypatch.setattr("orders.api.throttling._last_cache_error_log", 0.0)

    assert all(api.get("/orders").status_code == 200 for _ in range(5))
    warnings = [r for r in caplog.records if r.name == "orders.api.throttling"]
    assert len(warnings) == 1  # not one per request


def test_default_rates_leave_room_for_the_benchmark(tmp_path):
    rates = load_settings(tmp_path, "REST_FRAMEWORK")["REST_FRAMEWORK"]["DEFAULT_THROTTLE_RATES"]

    assert rates == {"user": "60000/min", "anon": "600/min"}
    # bench/run.py posts ~500 orders/s with one token: even one shared counter must not cap it.
    number, period = rates["user"].split("/")
    per_second = int(number) / {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]
    assert per_second >= 2 * 500


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", "60000/min"), ("OFF", None), ("none", None), ("0", None), ("100/s", "100/s"), ("5/hour", "5/hour")],
)
def test_throttle_rates_from_the_environment(value, expected):
    assert env_rate("API_THROTTLE_USER", "60000/min", {"API_THROTTLE_USER": value}) == expected


@pytest.mark.parametrize("value", ["fast", "100", "100/week", "0/min", "-5/min", "1.5/s"])
def test_a_bad_throttle_rate_stops_start_up(value):
    with pytest.raises(ImproperlyConfigured, match="API_THROTTLE_USER"):
        env_rate("API_THROTTLE_USER", "60000/min", {"API_THROTTLE_USER": value})


def test_counters_are_shared_through_redis_when_redis_url_is_set():
    shared = cache_settings("redis://10.0.0.5:6379/1")["default"]
    local = cache_settings("")["default"]

    assert shared["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert shared["LOCATION"] == "redis://10.0.0.5:6379/1"
    assert shared["OPTIONS"]["socket_timeout"] <= 1
    assert local["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert local["OPTIONS"]["MAX_ENTRIES"] >= 100_000


# --- 4. Admin is for sessions of staff users only ---------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("superuser", [False, True])
def test_an_api_token_does_not_open_the_admin(superuser):
    staff = UserFactory(is_staff=True, is_superuser=superuser)
    token = TokenFactory(user=staff)
    client = Client(HTTP_AUTHORIZATION=f"Token {token.key}")

    for path in ("/admin/", "/admin/orders/order/", "/admin/auth/user/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/admin/login/"), path


@pytest.mark.django_db
def test_an_api_token_cannot_run_an_admin_action():
    staff = UserFactory(is_staff=True, is_superuser=True)
    order = OrderFactory()
    client = Client(HTTP_AUTHORIZATION=f"Token {TokenFactory(user=staff).key}")

    response = client.post(
        "/admin/orders/order/", {"action": "cancel_selected", "_selected_action": [str(order.pk)]}
    )

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    order.refresh_from_db()
    assert order.status == Order.Status.OPEN


@pytest.mark.django_db
def test_a_non_staff_user_cannot_log_into_the_admin(client):
    user = UserFactory()

    response = client.post("/admin/login/", {"username": user.username, "password": "secret-pass-123"})

    assert response.status_code == 200
    assert b"staff account" in response.content
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


@pytest.mark.django_db
def test_a_logged_in_non_staff_user_is_still_sent_to_the_admin_login(client):
    client.force_login(UserFactory())

    response = client.get("/admin/orders/order/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_an_inactive_staff_user_cannot_log_into_the_admin(client):
    staff = UserFactory(is_staff=True, is_active=False)

    client.post("/admin/login/", {"username": staff.username, "password": "secret-pass-123"})

    assert client.get("/admin/").status_code == 302


@pytest.mark.django_db
def test_the_api_with_a_session_needs_the_csrf_token_and_with_a_token_does_not(api):
    session_client = APIClient(enforce_csrf_checks=True)
    session_client.force_login(api.user)

    assert session_client.post("/orders", MARKET_ORDER, format="json").status_code == 403
    assert api.post("/orders", MARKET_ORDER, format="json").status_code == 201


# --- 5. No secret in the repository ------------------------------------------------------------


def test_without_django_secret_key_a_private_random_key_is_generated_once(tmp_path):
    first = load_settings(tmp_path, "SECRET_KEY")["SECRET_KEY"]
    again = load_settings(tmp_path, "SECRET_KEY")["SECRET_KEY"]
    elsewhere = load_settings(tmp_path / "other", "SECRET_KEY")["SECRET_KEY"]

    key_file = tmp_path / "var" / "secret_key"
    assert first == again == key_file.read_text().strip()
    assert len(first) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert elsewhere != first  # random, not a built-in fallback


def test_django_secret_key_wins_and_nothing_is_written(tmp_path):
    loaded = load_settings(tmp_path, "SECRET_KEY", DJANGO_SECRET_KEY=DEPLOY_KEY)

    assert loaded == {"SECRET_KEY": DEPLOY_KEY}
    assert not (tmp_path / "var" / "secret_key").exists()


def test_an_empty_key_file_is_refused_not_used(tmp_path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "secret_key").write_text("")

    result = subprocess.run(
        [sys.executable, "-c", LOAD_SETTINGS, "SECRET_KEY"],
        cwd=BASE_DIR,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr


# Split so this file does not find itself.
INSECURE_KEY_MARK = "django-" + "insecure"


def tracked_files():
    if not shutil.which("git") or not (BASE_DIR / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=BASE_DIR, capture_output=True, check=True, timeout=60
    ).stdout
    return [BASE_DIR / name for name in out.decode().split("\0") if name]


def test_no_secret_key_is_hard_coded_in_the_repository():
    offenders = []
    for path in tracked_files():
        if path.suffix != ".py" or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if INSECURE_KEY_MARK in text:
            offenders.append(f"{path}: {INSECURE_KEY_MARK} key")
        for node in ast.walk(ast.parse(text)):
            # SECRET_KEY = "literal"
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == "SECRET_KEY" for t in targets):
                    offenders.append(f"{path}:{node.lineno}: SECRET_KEY literal")
            # os.environ.get("DJANGO_SECRET_KEY", "fallback") and the like
            if (
                isinstance(node, ast.Call)
                and len(node.args) >= 2
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value == "DJANGO_SECRET_KEY"
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value
            ):
                offenders.append(f"{path}:{node.lineno}: DJANGO_SECRET_KEY fallback")
    assert offenders == []


def test_the_generated_key_file_is_ignored_by_git_and_the_live_key_is_not_committed():
    files = tracked_files()
    ignored = subprocess.run(["git", "check-ignore", "-q", "var/secret_key"], cwd=BASE_DIR, timeout=60)
    assert ignored.returncode == 0

    key = django_settings.SECRET_KEY.encode()
    assert not [path for path in files if path.is_file() and key in path.read_bytes()]
