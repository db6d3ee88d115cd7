"""Settings for Jersey Events, read from the environment.

Production is the default: with DEBUG unset, a process refuses to start without
SECRET_KEY, the SumUp app's credentials and SUMUP_TOKEN_KEYS. Development mode is asked
for with DEBUG=true (`make run`, the tests): then the other defaults let a fresh checkout
run on one machine (SQLite, the local Redis, a development key).
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

import django_stubs_ext
from django.utils.csp import CSP

from events.env import (
    check_required,
    env_basic_auth,
    env_bool,
    env_choice,
    env_database,
    env_dotted_path,
    env_email,
    env_emails,
    env_fernet_keys,
    env_file_path,
    env_folder,
    env_header_value,
    env_int,
    env_list,
    env_origins,
    env_prefixed,
    env_rate,
    env_redis_url,
    env_str,
    env_token,
    env_url,
)
from events.logging import LOG_FORMATS, LOG_LEVELS, build_logging

# Lets admin and querysets be written with type parameters (ModelAdmin[Model]).
django_stubs_ext.monkeypatch()

WEBAPP_DIR = Path(__file__).resolve().parent.parent
PROJECT_DIR = WEBAPP_DIR.parent

# Off unless asked for: a deploy that forgets DEBUG must not run on the repository's
# development key, nor answer errors with debug pages that show the settings.
DEBUG = env_bool("DEBUG", default=False)
if not DEBUG:
    # SECRET_KEY signs sessions and links; without the SumUp app's credentials every
    # refresh is refused as invalid_client; SUMUP_TOKEN_KEYS encrypt tokens at rest;
    # METRICS_TOKEN is what /metrics and /readyz's details ask of a caller.
    check_required(
        [
            "SECRET_KEY",
            "SUMUP_CLIENT_ID",
            "SUMUP_CLIENT_SECRET",
            "SUMUP_TOKEN_KEYS",
            "METRICS_TOKEN",
        ],
        because="DEBUG is off (production, the default); DEBUG=true runs in development mode",
    )
SECRET_KEY = env_str("SECRET_KEY", "insecure-development-key-do-not-use-in-production")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"], required=True)
SITE_URL = env_url("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "anymail",
    "axes",
    "django_celery_beat",
    "accounts",
    "backfills",
    "campaigns",
    "operations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: it turns a login refused for too many failures into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "events.urls"
WSGI_APPLICATION = "events.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
            ],
        },
    },
]

DATABASES = {
    "default": env_database(
        "DATABASE_URL",
        f"sqlite:///{WEBAPP_DIR / 'db.sqlite3'}",
        # Seconds a connection is kept for reuse (0: one per request or task). Workers
        # doing many short tasks spend most of their database time connecting without it
        # (a PostgreSQL backend costs more to start than a token refresh does to run).
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
    )
}
# DATABASE_POOL=1 (PostgreSQL): a connection pool per process, which its threads share
# (a `--pool threads` worker), instead of a kept connection per thread.
if env_bool("DATABASE_POOL") and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django requires it with a pool
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env_int("DATABASE_POOL_MAX_SIZE", 20, minimum=1),
        "timeout": 10,
    }
# SQLite (the local run) has one writer at a time, and the web, beat and every worker
# process write. WAL lets reads go on beside a write; each transaction takes the write
# lock at BEGIN, since one that read first cannot wait for it later (SQLite fails it at
# once with "database is locked"); and a writer waits its turn up to SQLITE_BUSY_TIMEOUT.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
            "timeout": env_int("SQLITE_BUSY_TIMEOUT", 20, minimum=1),  # seconds
            "transaction_mode": "IMMEDIATE",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"

# Login throttling (django-axes), for the artists' login and the admin's alike: both go
# through authenticate(), which the first backend refuses while a username is locked
# out from an address. Failures are counted in the database per username and address.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = 5  # failed logins in a row, per username and address
AXES_COOLOFF_TIME = timedelta(minutes=15)  # then the lockout lifts by itself
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
# No start-up banner: every command's output stays its own (the lockouts are still logged).
AXES_VERBOSE = False
# A row per failure is what the lockout needs; one per successful login would grow
# without bound.
AXES_DISABLE_ACCESS_LOG = True
# Unlocking is `manage.py axes_reset_username NAME` (docs/runbook.md), not an admin page.
AXES_ENABLE_ADMIN = False
# Proxies in front of the web that append to X-Forwarded-For (a PaaS router, nginx): the
# client's address is this many entries from the right (events.client_ip); 0 when
# clients reach gunicorn directly.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1, minimum=0, maximum=10)
AXES_CLIENT_IP_CALLABLE = "events.client_ip.client_ip"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Europe/Jersey"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = PROJECT_DIR / "var" / "static"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG

# --- HTTPS. Production sits behind a proxy that ends TLS and says so in a header; plain
# http is redirected, and browsers are told to use https only (HSTS). The probes and the
# scraper reach the process directly over http, so their paths are not redirected.
SECURE_PROXY_SSL_HEADER = env_header_value("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto: https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
if not SECURE_HSTS_PRELOAD:
    # Asking browsers to ship the domain as https-only is the domain owner's decision,
    # made with SECURE_HSTS_PRELOAD=true; check --deploy would otherwise nag about it.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
# Origins allowed to POST besides the site's own (Django compares Origin with the Host
# the proxy passed on): a proxy that rewrites Host, or a second domain.
CSRF_TRUSTED_ORIGINS = env_origins("CSRF_TRUSTED_ORIGINS")

# Content-Security-Policy on every page (Django's own middleware): scripts and styles
# only from this site's files, or inline with the nonce of the response
# (`nonce="{{ csp_nonce }}"`); nothing framed, nothing embedded. A page that needs more
# overrides it for itself (the connect page's form goes to SumUp; the email preview).
SECURE_CSP: dict[str, list[str]] = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# Redis carries the Celery broker, the cache and cross-worker locks.
REDIS_URL = env_redis_url("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "events",
        "OPTIONS": {
            # JSON, not Django's pickles: a value read back can never run code, whoever
            # wrote it to this Redis (events/cache.py).
            "serializer": "events.cache.JSONSerializer",
            # seconds; as events.shared_redis, so a hung Redis fails a call instead of holding it
            "socket_connect_timeout": 3,
            "socket_timeout": 5,
        },
    }
}

# --- Celery (read by events.celery_app with namespace="CELERY") ---
CELERY_BROKER_URL = env_redis_url("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env_redis_url("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 60 * 60  # seconds
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300, minimum=1)  # seconds
CELERY_TASK_SOFT_TIME_LIMIT = env_int(
    "CELERY_TASK_SOFT_TIME_LIMIT",
    240,
    minimum=1,
    maximum=CELERY_TASK_TIME_LIMIT - 1,
    why="below CELERY_TASK_TIME_LIMIT, so a task can clean up before it is killed",
)  # seconds
# Celery's default. A worker fetches only while fewer tasks than this times its
# concurrency are unacknowledged, and with acks_late the running ones count: at 1, a
# worker whose processes were all busy stopped fetching, and the paced refreshes queued
# for the next seconds (countdowns) reached it after their slot of the SumUp budget.
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
# Task processes per worker (the Procfile's `worker` gives no --concurrency of its own).
CELERY_WORKER_CONCURRENCY = env_int("WORKER_CONCURRENCY", 3, minimum=1)
# Celery's Django fixup closes every database connection (and, under prefork, the whole
# pool) after each task unless this is set; jobs.celery applies Django's own rule per
# task instead (close_old_connections), so DATABASE_CONN_MAX_AGE and DATABASE_POOL mean
# in workers what they mean in the web. The fixup still starts afresh every 1,000 tasks.
CELERY_DB_REUSE_MAX = 1_000
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis's transport, made to reconnect when Redis goes away under a worker instead of
# exiting on kombu's error closing the lost connection (events/broker.py says how).
CELERY_BROKER_TRANSPORT = "events.broker:Transport"
# With acks_late, a task whose worker died is redelivered once this many seconds have
# passed without an ack; it must exceed the longest task's run time (the hard limit).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int(
        "CELERY_VISIBILITY_TIMEOUT",
        3600,
        minimum=max(60, CELERY_TASK_TIME_LIMIT + 1),
        why="above CELERY_TASK_TIME_LIMIT, or a running task is handed to a second worker",
    )
}
CELERY_TIMEZONE = TIME_ZONE

# --- Beat: the periodic work, kept in the database (django-celery-beat) so staff see each
# entry with its interval and last run in the admin, and can pause or run one from there.
# Beat writes this schedule to the database when it starts: the intervals below win over
# an interval edited in the admin; an entry disabled in the admin stays disabled.
CELERY_BEAT_SCHEDULER = "jobs.heartbeat:HeartbeatScheduler"
CELERY_BEAT_SYNC_EVERY = 1  # record each entry's last run as it is sent, not minutes later
CAMPAIGNS_RECOVER_INTERVAL = env_int("CAMPAIGNS_RECOVER_INTERVAL", 60, minimum=1)  # seconds
BACKFILLS_RECOVER_INTERVAL = env_int("BACKFILLS_RECOVER_INTERVAL", 60, minimum=1)  # seconds
# How often beat counts SumUp connections by status, kept per day for the staff overview.
CONNECTION_HISTORY_INTERVAL = env_int("CONNECTION_HISTORY_INTERVAL", 3600, minimum=1)  # seconds

# --- SumUp ---
SUMUP_CLIENT_ID = env_str("SUMUP_CLIENT_ID")  # both required when DEBUG is off (above)
SUMUP_CLIENT_SECRET = env_str("SUMUP_CLIENT_SECRET")
# Fernet keys that encrypt tokens at rest, newest first (accounts.sumup.crypto); checked
# here so that a malformed key stops start-up instead of the first refresh.
SUMUP_TOKEN_KEYS = env_fernet_keys("SUMUP_TOKEN_KEYS", required=not DEBUG)
# Sent byte for byte in both legs of the flow, so it keeps the path's trailing slash.
SUMUP_REDIRECT_URI = env_url(
    "SUMUP_REDIRECT_URI", f"{SITE_URL}/accounts/sumup/callback/", keep_trailing_slash=True
)
SUMUP_BASE_URL = env_url("SUMUP_BASE_URL", "https://api.sumup.com")
SUMUP_API_URL = env_url("SUMUP_API_URL", "https://api.sumup.com/v0.1")
SUMUP_SCOPES = env_list(
    "SUMUP_SCOPES",
    ["payments", "transactions.history", "user.app-settings", "user.profile_readonly"],
    sep=" ",
)

# Refresh ahead: tokens expiring within this window are refreshed by the sweep.
SUMUP_REFRESH_WINDOW = env_int("SUMUP_REFRESH_WINDOW", 600, minimum=60)  # seconds
# SumUp reissues a refresh token (6-month life) only when it is used in its last 30 days;
# using it after 150 days keeps every grant alive with a margin.
SUMUP_REFRESH_TOKEN_RENEW_AFTER = env_int(
    "SUMUP_REFRESH_TOKEN_RENEW_AFTER",
    150 * 24 * 3600,
    minimum=3600,
    maximum=179 * 24 * 3600,
    why="179 days: a refresh token lives six months",
)  # seconds
# Whose access tokens the sweep refreshes ahead of expiry: artists whose token the
# platform used within this long (accounts.sumup.refresh_policy). Every other grant is
# only renewed; its access token is refreshed on demand when it is next used.
SUMUP_TOKEN_ACTIVE_FOR = env_int(
    "SUMUP_TOKEN_ACTIVE_FOR", 3 * 24 * 3600, minimum=3600, maximum=SUMUP_REFRESH_TOKEN_RENEW_AFTER
)  # seconds
SUMUP_REFRESH_SWEEP_INTERVAL = env_int(
    "SUMUP_REFRESH_SWEEP_INTERVAL",
    120,
    minimum=10,
    maximum=SUMUP_REFRESH_WINDOW - 1,
    why="below SUMUP_REFRESH_WINDOW, or tokens expire between sweeps",
)  # seconds
SUMUP_REFRESH_MAX_ATTEMPTS = env_int("SUMUP_REFRESH_MAX_ATTEMPTS", 6, minimum=1)
SUMUP_API_RATE_LIMIT = env_rate("SUMUP_API_RATE_LIMIT", "20/s")

# --- Backfills (batched data migrations on the workers) ---
# Above this many rows a data migration records a run for the workers instead of
# running inline, so a deploy never waits on a long backfill.
BACKFILL_INLINE_MAX_ROWS = env_int("BACKFILL_INLINE_MAX_ROWS", 100_000, minimum=0)
# Rows per batch: a worker's first (it adapts from there, up to backfills.engine.MAX_BATCH)
# and every batch a migration runs inline.
BACKFILL_BATCH_SIZE = env_int("BACKFILL_BATCH_SIZE", 5_000, minimum=1, maximum=50_000)
BACKFILL_TARGET_BATCH_MS = env_int("BACKFILL_TARGET_BATCH_MS", 100, minimum=1)
# Wait between batches, ms; at most backfills.models.MAX_PAUSE_MS, well under a stall.
BACKFILL_PAUSE_MS = env_int("BACKFILL_PAUSE_MS", 0, minimum=0, maximum=10_000)
# A running backfill whose heartbeat is older than this is restarted by the recovery task.
# A batch beats every ~100 ms and a slice chains the next within seconds, so a minute of
# silence is a dead worker; with beat's recovery every minute, a stall heals within two.
BACKFILL_STALE_SECONDS = env_int("BACKFILL_STALE_SECONDS", 60, minimum=1)

# What beat runs, and how often (seconds). Every entry is safe to run from two beats at
# once; a copy still queued after its interval expires, so a backlog never piles them up.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    name: {"task": task, "schedule": float(every), "options": {"expire_seconds": every}}
    for name, task, every in [
        ("sumup-token-refresh-sweep", "jobs.token_refresh.sweep", SUMUP_REFRESH_SWEEP_INTERVAL),
        ("campaigns-recover", "jobs.campaigns.recover", CAMPAIGNS_RECOVER_INTERVAL),
        ("backfills-recover", "jobs.backfills.recover", BACKFILLS_RECOVER_INTERVAL),
        ("connections-history", "jobs.overview.record_connections", CONNECTION_HISTORY_INTERVAL),
    ]
}

# --- Email ---
EMAIL_BACKEND = env_dotted_path("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_email("DEFAULT_FROM_EMAIL", "Jersey Events <no-reply@jerseyevents.test>")
SERVER_EMAIL = env_email("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
ADMINS = env_emails("ADMINS")  # addresses, e.g. "Ops <ops@example.com>"
# Campaign emails across all workers never exceed this rate (see events/rate_limits.py).
EMAIL_RATE_LIMIT = env_rate("EMAIL_RATE_LIMIT", "10/s")
# Seconds before a send's first retry (campaigns.sending doubles it per attempt).
EMAIL_RETRY_BACKOFF = env_int("EMAIL_RETRY_BACKOFF", 5, minimum=1)
# A send handed to the queue that has not been claimed this long is handed out again
# (its task went with a worker); a stalled campaign's sends are handed out sooner.
CAMPAIGNS_REDISPATCH_AFTER = env_int("CAMPAIGNS_REDISPATCH_AFTER", 300, minimum=1)  # seconds
# Optional mailto target offered in List-Unsubscribe beside the one-click https link.
UNSUBSCRIBE_EMAIL = env_email("UNSUBSCRIBE_EMAIL", "")
# Every ANYMAIL_<NAME> variable configures the chosen provider, e.g. ANYMAIL_MAILGUN_API_KEY.
# The tracking webhook's basic auth: anymail accepts any credential of the list, so a
# second one can be added while the provider's is changed.
ANYMAIL: dict[str, Any] = {
    **env_prefixed("ANYMAIL_"),
    "WEBHOOK_SECRET": env_basic_auth("ANYMAIL_WEBHOOK_SECRET"),
    # seconds per request to the provider; under the send task's 45 s soft time limit
    "REQUESTS_TIMEOUT": env_int("ANYMAIL_REQUESTS_TIMEOUT", 10, minimum=1, maximum=30),
}

# --- Operations ---
# Where backup_db writes unless given --dir; checked here so a deploy learns of a bad
# value when it starts, not when its first backup fails.
BACKUP_DIR = env_folder("BACKUP_DIR", PROJECT_DIR / "var" / "backups")
# /metrics answers only a scraper sending it as a Bearer token, and /readyz gives its
# checks' details only to such a caller (required when DEBUG is off, above).
METRICS_TOKEN = env_token("METRICS_TOKEN", min_length=16)

# LOG_FORMAT=json for log shippers; LOG_FILE adds a rotating file (the runbook tails one).
LOGGING = build_logging(
    level=env_choice("LOG_LEVEL", "INFO", LOG_LEVELS),
    json_format=env_choice("LOG_FORMAT", "plain", LOG_FORMATS) == "json",
    log_file=env_file_path("LOG_FILE"),
)
