"""Settings for the order service, read from the environment once (SPEC §2).

Every production switch is an environment variable with a safe default; the test
overrides live in ``ordersite/test_settings.py``.
"""

import os
import secrets
from pathlib import Path

import dj_database_url

from ordersite.env import env_bool, env_float, env_int, env_list, env_str

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
    if not key_file.exists():
        try:
            with open(key_file, "x") as fh:
                fh.write(secrets.token_urlsafe(50))
            key_file.chmod(0o600)
        except FileExistsError:
            pass
    return key_file.read_text().strip()


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
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "django_q",
    "orders",
    "matching",
    "exchange",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Order service API",
    "DESCRIPTION": "Stock orders: intake, internal matching and exchange placement.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Processing pipeline (SPEC §4-§6) -------------------------------------
EXCHANGE_LATENCY = env_float("EXCHANGE_LATENCY", 0.5)
EXCHANGE_FAILURE_RATE = env_float("EXCHANGE_FAILURE_RATE", 0.1)
EXCHANGE_PLACEMENT_DEADLINE = env_float("EXCHANGE_PLACEMENT_DEADLINE", 600)
# While this file exists the simulated exchange fails every call (outage drills, make chaos).
EXCHANGE_OUTAGE_FILE = env_str("EXCHANGE_OUTAGE_FILE", "")
# Exchange calls one worker process keeps in flight at once.
EXCHANGE_CONCURRENCY = env_int("EXCHANGE_CONCURRENCY", 64)
# Backoff between placement attempts: base * 2**n with full jitter, capped.
EXCHANGE_RETRY_BASE = env_float("EXCHANGE_RETRY_BASE", 0.5)
EXCHANGE_RETRY_CAP = env_float("EXCHANGE_RETRY_CAP", 30)
MATCHING_WINDOW = env_float("MATCHING_WINDOW", 0.5)
# A working order with no progress for this long is re-driven by the sweeper.
PIPELINE_STALL_TIMEOUT = env_float("PIPELINE_STALL_TIMEOUT", 30)

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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django_q": {"level": env_str("Q_LOG_LEVEL", "WARNING"), "propagate": True},
    },
}

SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
