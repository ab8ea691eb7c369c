"""Settings for the order service, read from the environment once (SPEC §2).

Every production switch is an environment variable with a safe default; the test
overrides live in ``ordersite/test_settings.py``.
"""

import os
import secrets
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from ordersite.env import env_bool, env_float, env_int, env_list, env_rate, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, or a random key kept in var/ so all processes share it.

    The web and the workers must agree on the key (django-q2 signs queued tasks
    with it), so a per-process random key would not do; nothing is committed.
    """
    key = os.environ.get("DJANGO_SECRET_KEY", "").strip()
    if key:
        return key
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key_file = VAR_DIR / "secret_key"
    try:
        # Private (0600) from the moment it exists; O_EXCL: one process writes it.
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
    # A process starting alongside the writer may find the file still empty.
    for _ in range(100):
        key = key_file.read_text().strip()
        if key:
            return key
        time.sleep(0.02)
    raise ImproperlyConfigured(f"{key_file} is empty: delete it, or set DJANGO_SECRET_KEY")


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "django_prometheus",
    "orders",
    "matching",
    "exchange",
]

MIDDLEWARE = [
    # Responses and latency by view for /metrics (django-prometheus's names, 2 samples a request).
    "ordersite.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "ordersite.urls"
WSGI_APPLICATION = "ordersite.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database(url: str | None) -> dict:
    if not url:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
    config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    engine = config["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {
            # WAL lets readers run beside the one writer; IMMEDIATE takes the
            # write lock up front so two writers queue instead of deadlocking.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    elif engine == "django.db.backends.mysql":
        # Django's backend, with BEGIN ... COMMIT transactions (ordersite/mysql/base.py).
        config["ENGINE"] = "ordersite.mysql"
        config["OPTIONS"] = {
            "charset": "utf8mb4",
            # READ COMMITTED: no gap locks, so matching one instrument never
            # blocks inserts of new orders (decisions.md).
            "isolation_level": "read committed",
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
        }
    return config


DATABASES = {"default": _database(os.environ.get("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The lockout check comes first: a locked-out login is refused before any password is checked.
AUTHENTICATION_BACKENDS = [
    "ordersite.login_lockout.LoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Requests larger than this are refused with 400 before any parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "orders.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "orders.api.exceptions.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    # Per-client rate limits, 429 + Retry-After (orders/api/throttling.py, docs/security.md).
    # Counted in the default cache: per process unless REDIS_URL makes it shared.
    "DEFAULT_THROTTLE_CLASSES": [
        "orders.api.throttling.UserThrottle",
        "orders.api.throttling.AnonThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_rate("API_THROTTLE_USER", "60000/min"),  # per user; "off" disables
        "anon": env_rate("API_THROTTLE_ANON", "600/min"),  # per client address
    },
    # Anonymous clients are told apart by REMOTE_ADDR unless proxies are trusted to
    # set X-Forwarded-For; DRF's default (None) would trust a client-sent header.
    "NUM_PROXIES": env_int("DJANGO_TRUSTED_PROXIES", 0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Order service API",
    "DESCRIPTION": "Stock orders: intake, internal matching and exchange placement.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's assets are served from here, not a CDN: /api/docs works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Threads per uvicorn worker that run the sync views, each keeping its database
# connection (ordersite/asgi.py).
WEB_THREADS = max(1, env_int("WEB_THREADS", 8))

# --- Processing pipeline (SPEC §4-§6) -------------------------------------
EXCHANGE_LATENCY = env_float("EXCHANGE_LATENCY", 0.5)
EXCHANGE_FAILURE_RATE = env_float("EXCHANGE_FAILURE_RATE", 0.1)
EXCHANGE_PLACEMENT_DEADLINE = env_float("EXCHANGE_PLACEMENT_DEADLINE", 600)
# While this file exists the in-process exchange fails every call (outage drills).
EXCHANGE_OUTAGE_FILE = env_str("EXCHANGE_OUTAGE_FILE", "")
# Exchange calls one worker process keeps in flight at once.
EXCHANGE_CONCURRENCY = env_int("EXCHANGE_CONCURRENCY", 64)
# How placement reaches the exchange: "venue" (NewOrderSingle through the outbox,
# run_gateway and the FIX venue; SPEC §9) or "inprocess" (the simulated gateway's
# place_order called by the dispatcher's threads; SPEC §6).
EXCHANGE_TRANSPORT = env_str("EXCHANGE_TRANSPORT", "venue")
if EXCHANGE_TRANSPORT not in ("venue", "inprocess"):
    raise ImproperlyConfigured(f"EXCHANGE_TRANSPORT must be venue or inprocess, not {EXCHANGE_TRANSPORT!r}")
# The simulated exchange refuses an order arriving longer than this after it was sent, so
# once a lost call is that old the exchange's "not held" is final (docs/architecture.md §4).
EXCHANGE_CALL_TIMEOUT = env_float("EXCHANGE_CALL_TIMEOUT", max(2.0, 4 * EXCHANGE_LATENCY))
# Backoff between placement attempts: base * 2**n, capped, with equal jitter (half fixed, half random).
EXCHANGE_RETRY_BASE = env_float("EXCHANGE_RETRY_BASE", 0.5)
EXCHANGE_RETRY_CAP = env_float("EXCHANGE_RETRY_CAP", 30)
MATCHING_WINDOW = env_float("MATCHING_WINDOW", 0.5)
# A working order with no progress for this long is re-driven by the sweeper.
PIPELINE_STALL_TIMEOUT = env_float("PIPELINE_STALL_TIMEOUT", 30)

# --- The venue: the simulated exchange as a FIX 4.4 process (SPEC §9, run_venue) ------
VENUE_HOST = env_str("VENUE_HOST", "127.0.0.1")
VENUE_PORT = env_int("VENUE_PORT", 9878)
VENUE_DB = Path(env_str("VENUE_DB", str(VAR_DIR / "venue.sqlite3")))
VENUE_COMP_ID = env_str("VENUE_COMP_ID", "VENUE")
VENUE_CLIENT_COMP_ID = env_str("VENUE_CLIENT_COMP_ID", "BROKER")
VENUE_MAX_FILLS = env_int("VENUE_MAX_FILLS", 5)
VENUE_FILL_INTERVAL = env_float("VENUE_FILL_INTERVAL", 1.0)
VENUE_DAY_SECONDS = env_float("VENUE_DAY_SECONDS", 3600)
# Fault drills, e.g. "dup=0.02,gap=0.005,disconnect=0.001"; checked when run_venue starts.
VENUE_FAULTS = env_str("VENUE_FAULTS", "")
# Our side of the session (run_gateway): heartbeat, reconnect backoff, outbox polling, and
# an optional "module.function" returning more ClOrdIDs to ask the venue about on logon.
GATEWAY_HEARTBEAT_INTERVAL = env_int("GATEWAY_HEARTBEAT_INTERVAL", 30)
GATEWAY_RECONNECT_BASE = env_float("GATEWAY_RECONNECT_BASE", 0.5)
GATEWAY_RECONNECT_CAP = env_float("GATEWAY_RECONNECT_CAP", 30)
GATEWAY_OUTBOX_POLL = env_float("GATEWAY_OUTBOX_POLL", 0.05)
GATEWAY_OUTBOX_BATCH = env_int("GATEWAY_OUTBOX_BATCH", 500)
GATEWAY_RECONCILE_HOOK = env_str("GATEWAY_RECONCILE_HOOK", "orders.venue.venue_reconcile_ids")
# The manage.py command run_gateway keeps running as its child to apply stored reports to
# orders, woken after each commit that stored some ("" for none: run it yourself).
GATEWAY_REPORT_APPLIER = env_str("GATEWAY_REPORT_APPLIER", "apply_venue_reports")

# --- Order events (SPEC §10, orders/event_stream.py) ----------------------------------------
# One shared read of the event log per web process this often (with REDIS_URL, Redis wakes it
# on commit and this poll, ten times slower, is the safety net).
ORDER_EVENTS_POLL_INTERVAL = env_float("ORDER_EVENTS_POLL_INTERVAL", 0.1)
# A comment line on every idle stream this often, so proxies keep it open.
ORDER_EVENTS_HEARTBEAT = env_float("ORDER_EVENTS_HEARTBEAT", 15)
# An event id still missing after this long is taken as never committing (a rollback) even
# when the database cannot tell whether a transaction that could hold it is still open.
ORDER_EVENTS_GAP_TIMEOUT = env_float("ORDER_EVENTS_GAP_TIMEOUT", 10)
# What prune_order_events keeps by default (e.g. 7d, 12h, 90m).
ORDER_EVENTS_RETENTION = env_str("ORDER_EVENTS_RETENTION", "7d")

REDIS_URL = os.environ.get("REDIS_URL", "").strip()
Q_CLUSTER = {
    "name": "orders",
    "workers": env_int("Q_WORKERS", os.cpu_count() or 2),
    "timeout": 60,
    "retry": 120,
    "max_attempts": 10,
    "ack_failures": False,
    # Successful tasks are not worth a row each; failures are kept for admin.
    "save_limit": -1,
    "poll": 0.05,
    "bulk": 10,
    "recycle": 100_000,
    "catch_up": False,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    # The ORM broker without a ping per statement and a transaction per acknowledgement.
    Q_CLUSTER["broker_class"] = "ordersite.broker.OrmBroker"

# --- Metrics (/metrics, docs/operations.md) ----------------------------------------
# prometheus_client's multiprocess mode: every gunicorn and qcluster process writes its
# counters to files here and /metrics sums them. The mode is fixed when prometheus_client
# is first imported, which happens after the settings, so defaulting it here covers every
# process. Empty the directory when the whole service starts (not per process).
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip():
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(VAR_DIR / "prometheus")
PROMETHEUS_MULTIPROC_DIR = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
PROMETHEUS_MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
# /metrics answers loopback clients only, unless this is set (then guard it elsewhere).
METRICS_ALLOW_ALL = env_bool("METRICS_ALLOW_ALL", False)

# LOG_FORMAT=plain (people) or json (one object a line, with extra= fields like order_id).
LOG_FORMAT = env_str("LOG_FORMAT", "plain").lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ValueError(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "ordersite.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # django-q2 logs as "django-q" (its per-task INFO lines would flood the log).
        "django-q": {"level": env_str("Q_LOG_LEVEL", "WARNING"), "propagate": True},
    },
}

# --- Security (docs/security.md) ---------------------------------------------------------


def security_settings(environ: Mapping[str, str]) -> dict:
    """Cookie, HTTPS and response-header settings for an environment (unit-tested with a dict).

    ``DJANGO_SECURE=1`` declares that clients reach the service over HTTPS only:
    cookies go over HTTPS only, plain HTTP is redirected (except /healthz and
    /metrics, probed over plain HTTP by load balancers and scrapers), and HSTS
    tells browsers to use nothing but HTTPS for ``DJANGO_HSTS_SECONDS``. Off by
    default, for ``make run`` on plain HTTP. Behind a proxy that terminates TLS,
    ``DJANGO_TRUSTED_PROXIES`` (how many proxies overwrite X-Forwarded-For and
    X-Forwarded-Proto) must be set too: only then is X-Forwarded-Proto believed
    (a client could otherwise claim HTTPS), and without it the redirect loops.
    """
    secure = env_bool("DJANGO_SECURE", False, environ)
    # The older DJANGO_SECURE_COOKIES still sets the two cookie flags on its own.
    secure_cookies = secure or env_bool("DJANGO_SECURE_COOKIES", False, environ)
    hsts_seconds = env_int("DJANGO_HSTS_SECONDS", 31_536_000, environ) if secure else 0
    hsts = hsts_seconds > 0
    hsts_subdomains = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True, environ)
    hsts_preload = hsts and env_bool("DJANGO_HSTS_PRELOAD", False, environ)
    trusted_proxies = env_int("DJANGO_TRUSTED_PROXIES", 0, environ)
    return {
        # Right over plain HTTP too.
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "SECURE_REFERRER_POLICY": "same-origin",
        "SECURE_CROSS_ORIGIN_OPENER_POLICY": "same-origin",
        "X_FRAME_OPTIONS": "DENY",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SAMESITE": "Lax",
        # HTTPS deployments.
        "SESSION_COOKIE_SECURE": secure_cookies,
        "CSRF_COOKIE_SECURE": secure_cookies,
        "SECURE_SSL_REDIRECT": secure,
        "SECURE_REDIRECT_EXEMPT": [r"^(healthz|metrics)/?$"],
        "SECURE_HSTS_SECONDS": hsts_seconds,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": hsts and hsts_subdomains,
        "SECURE_HSTS_PRELOAD": hsts_preload,
        "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https") if trusted_proxies > 0 else None,
        "CSRF_TRUSTED_ORIGINS": env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [], environ),
        # Preloading commits the whole registrable domain to HTTPS for good: the
        # domain owner's decision (DJANGO_HSTS_PRELOAD=1), not a default of this service.
        "SILENCED_SYSTEM_CHECKS": ["security.W021"] if hsts and not hsts_preload else [],
    }


def login_lockout_settings(environ: Mapping[str, str]) -> dict:
    """django-axes settings: lock out an account from one address after repeated failed logins.

    ``LOGIN_FAILURE_LIMIT`` failures (default 5) for one username from one client
    address lock that pair out for ``LOGIN_LOCKOUT_MINUTES`` (default 30); any attempt
    meanwhile restarts the wait, a successful login before the limit resets the count.
    Counting the pair, not the address alone, keeps one office behind a NAT from
    locking all its staff out; counting the address with it keeps anyone on the
    internet from locking a clerk out at will (docs/security.md).
    """
    limit = env_int("LOGIN_FAILURE_LIMIT", 5, environ)
    minutes = env_float("LOGIN_LOCKOUT_MINUTES", 30, environ)
    if limit < 1 or minutes <= 0:
        raise ImproperlyConfigured(
            f"LOGIN_FAILURE_LIMIT={limit} and LOGIN_LOCKOUT_MINUTES={minutes}: both must be positive"
        )
    return {
        "AXES_FAILURE_LIMIT": limit,
        "AXES_COOLOFF_TIME": timedelta(minutes=minutes),
        "AXES_LOCKOUT_PARAMETERS": [["username", "ip_address"]],
        "AXES_RESET_ON_SUCCESS": True,
        "AXES_CLIENT_IP_CALLABLE": "ordersite.login_lockout.login_client_address",
        "AXES_LOCKOUT_CALLABLE": "ordersite.login_lockout.login_locked_out",
        # Failed logins are logged (WARNING, logger "axes") with the username and address
        # they came from, which is what whoever watches the logs needs; passwords never.
        "AXES_SENSITIVE_PARAMETERS": [],
        "AXES_VERBOSE": False,  # no banner on every start of every process
    }


def cache_settings(redis_url: str) -> dict:
    """The default cache, which holds the API throttle counters.

    With REDIS_URL, Redis: counters shared by every web process. Without, memory
    per process: each gunicorn worker counts a client on its own.
    """
    if redis_url:
        return {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url,
                "KEY_PREFIX": "ordersite",
                # A stuck Redis must not stall requests (the throttles then let them through).
                "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
            }
        }
    # LocMemCache culls a third of its keys at MAX_ENTRIES (300 by default).
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }


_security = security_settings(os.environ)
SILENCED_SYSTEM_CHECKS = [
    *globals().get("SILENCED_SYSTEM_CHECKS", []),
    *_security.pop("SILENCED_SYSTEM_CHECKS"),
]
globals().update(_security)
del _security
CACHES = cache_settings(REDIS_URL)
globals().update(login_lockout_settings(os.environ))
