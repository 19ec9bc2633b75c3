"""pksweb settings, read from the environment.

Two ways to run (see README and docs/architecture.md):

- ``PKSWEB_MODE=embedded`` (the default, what ``make run`` uses): SQLite under
  ``PKSWEB_DATA_DIR``, an in-process channel layer, and a Celery worker and beat
  running inside the server process on an in-memory broker. Needs no services.
- ``PKSWEB_MODE=production``: PostgreSQL from ``DATABASE_URL``, Redis from
  ``REDIS_URL`` for the channel layer and the Celery broker, separate
  ``celery worker`` / ``celery beat`` processes. A missing required variable stops
  start-up with ``ImproperlyConfigured`` naming it.
"""

from __future__ import annotations

import logging
import os
import secrets
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from pksweb.environment import _REQUIRED_HINTS, _csv, _env, _fernet_keys, _flag, _number, _required
from pksweb.oidc.config import oidc_settings

BASE_DIR = Path(__file__).resolve().parent.parent

MODES = ("embedded", "production")
MODE = os.environ.get("PKSWEB_MODE", "embedded").strip().lower()
if MODE not in MODES:
    raise ImproperlyConfigured(
        f"PKSWEB_MODE={MODE!r} is not a mode pksweb knows: use 'embedded' or 'production'."
    )
EMBEDDED = MODE == "embedded"

# Where pksweb writes (the embedded database and keys, beat's schedule): PKSWEB_DATA_DIR, else var/ in a checkout
# (make run), else the user's data folder: an installed copy never writes into site-packages.
CHECKOUT = (BASE_DIR / "manage.py").is_file()
DATA_DIR = Path(
    _env("PKSWEB_DATA_DIR")
    or (BASE_DIR / "var" if CHECKOUT else Path(_env("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "pksweb")
)


def _embedded_secret_key() -> str:
    """A key generated once per data directory, so sessions survive restarts."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def _embedded_credential_key() -> str:
    """A Fernet key generated once per data directory (embedded mode only)."""
    from cryptography.fernet import Fernet

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key_file = DATA_DIR / "credential_key"
    if not key_file.exists():
        key_file.write_text(Fernet.generate_key().decode())
        key_file.chmod(0o600)
    return key_file.read_text().strip()


if EMBEDDED:
    SECRET_KEY = _env("PKSWEB_SECRET_KEY") or _embedded_secret_key()
    PKSWEB_CREDENTIAL_KEYS = _fernet_keys(_csv(_env("PKSWEB_CREDENTIAL_KEYS")) or [_embedded_credential_key()])
    ALLOWED_HOSTS = _csv(_env("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]"))
    REDIS_URL = _env("REDIS_URL")
else:
    SECRET_KEY = _required("PKSWEB_SECRET_KEY")
    PKSWEB_CREDENTIAL_KEYS = _fernet_keys(_csv(_required("PKSWEB_CREDENTIAL_KEYS")))
    ALLOWED_HOSTS = _csv(_required("ALLOWED_HOSTS"))
    REDIS_URL = _required("REDIS_URL")
    _required("DATABASE_URL")
if REDIS_URL and REDIS_URL.partition("://")[0].lower() not in ("redis", "rediss", "unix"):
    raise ImproperlyConfigured(f"REDIS_URL is not a Redis URL (redis://, rediss:// or unix://): {_REQUIRED_HINTS['REDIS_URL']}.")

DEBUG = _flag("PKSWEB_DEBUG", default=False)
if DEBUG and not EMBEDDED:
    raise ImproperlyConfigured("PKSWEB_DEBUG=1 is refused when PKSWEB_MODE=production: debug pages show internals to anyone.")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
if _env("PKSWEB_LOG_LEVEL", "INFO").upper() not in LOG_LEVELS:
    raise ImproperlyConfigured(f"PKSWEB_LOG_LEVEL={_env('PKSWEB_LOG_LEVEL')!r} is not a level: use one of {', '.join(LOG_LEVELS)}.")
CSRF_TRUSTED_ORIGINS = _csv(_env("CSRF_TRUSTED_ORIGINS"))

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "csp",
    "axes",
    "pksweb",
    "tenants",
    "clusters",
    "upgrades",
    "notifications",
]

MIDDLEWARE = [
    "pksweb.middleware.ObserveMiddleware",  # outermost: every line of a request carries its id and user; /metrics counts it
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # it answers a locked-out sign-in
    "pksweb.middleware.DatabaseUnavailableMiddleware",  # innermost: a database outage becomes a 503 in words
]

# Security headers. Scripts only from our own origin: no inline script or handler anywhere
# (tests scan the templates); inline style attributes are allowed (bars, layout).
X_FRAME_OPTIONS = "DENY"
PKSWEB_OIDC = oidc_settings(os.environ)  # single sign-on: PKSWEB_OIDC_*, PKSWEB_LOCAL_LOGIN (pksweb/oidc/config.py, README)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"], "script-src": ["'self'"], "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"], "connect-src": ["'self'"], "font-src": ["'self'"], "object-src": ["'none'"],
        "base-uri": ["'self'"], "form-action": ["'self'", *PKSWEB_OIDC.origins], "frame-ancestors": ["'none'"],
    }
}

# Sign-in throttling (django-axes): after 5 failures for a username, it is locked for 15 minutes
# whatever the password; the page says so. API tokens are not passwords and are not affected.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "pksweb.oidc.backends.LocalPasswordBackend"]
AXES_FAILURE_LIMIT = _number("PKSWEB_LOGIN_FAILURE_LIMIT", "5", int)
AXES_COOLOFF_TIME = timedelta(minutes=_number("PKSWEB_LOGIN_COOLOFF_MINUTES", "15"))
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
# axes warns that locking by username alone can be dodged by rotating IPs or agents: it cannot, a
# username stays locked whoever asks. Locking by IP too would lock a whole office behind one NAT.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]

ROOT_URLCONF = "pksweb.urls"
ASGI_APPLICATION = "pksweb.asgi.application"
AUTH_USER_MODEL = "pksweb.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Inside the package, so an installed copy finds them wherever it is started from; ahead of the apps'
        # folders (our registration/ pages win over django.contrib.auth's).
        "DIRS": [Path(__file__).resolve().parent / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "pksweb.context_processors.navigation",
            ],
        },
    },
]

# Database: DATABASE_URL wins in either mode; the embedded default is a SQLite file.
def _database(url: str) -> dict[str, Any]:
    """DATABASE_URL parsed; one that is not a URL of a database pksweb runs on stops start-up naming it (never
    repeating it: it may carry a password)."""
    usable = ("postgresql", "postgres", "pgsql") if not EMBEDDED else ("postgresql", "postgres", "pgsql", "sqlite")
    scheme = url.partition("://")[0].lower()
    try:
        if scheme not in usable:
            raise ValueError(scheme)
        return dict(dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True))
    except ValueError:
        raise ImproperlyConfigured(
            f"DATABASE_URL is not a {'PostgreSQL' if not EMBEDDED else 'PostgreSQL or SQLite'} URL pksweb can use: "
            f"{_REQUIRED_HINTS['DATABASE_URL']}."
        ) from None


if _env("DATABASE_URL"):
    DATABASES = {"default": _database(_env("DATABASE_URL"))}
    if DATABASES["default"]["ENGINE"].endswith("postgresql"):
        # A database host that drops packets must not hold a request, a scrape or a task for the OS's minutes.
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    # The suite's PostgreSQL pass (make test) names its own test database, so runs never collide.
    DATABASES["default"]["TEST"] = {"NAME": _env("PKSWEB_TEST_DATABASE_NAME") or None}
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "pksweb.sqlite3"),
            "OPTIONS": {
                # The embedded server writes from request threads and the Celery
                # worker thread at once: WAL and IMMEDIATE transactions make them
                # queue for the lock instead of failing with "database is locked".
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
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
STATICFILES_DIRS: list[Path] = []  # pksweb/static is found as the pksweb app's own (installed with the package)
STATIC_ROOT = Path(_env("PKSWEB_STATIC_ROOT") or (BASE_DIR if CHECKOUT else DATA_DIR) / "staticfiles") if not EMBEDDED else None
# Embedded mode serves static files straight from the apps' folders (no collectstatic);
# production serves the hashed, compressed files `collectstatic` wrote.
WHITENOISE_USE_FINDERS = EMBEDDED
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if EMBEDDED
        else "pksweb.storage.StaticStorage"
    },
}

# Channel layer: Redis in production (pub/sub layer: about twice the fan-out of the
# list-based one on this hardware, measured with bench/live.py); in-process when embedded.
CHANNEL_PREFIX = _env("PKSWEB_CHANNEL_PREFIX", "pksweb")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": CHANNEL_PREFIX},
        }
    }
    # Shared by every web process (the cluster page's live snapshot); the key prefix keeps deployments apart.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": CHANNEL_PREFIX}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "pksweb.channel_layers.EmbeddedChannelLayer"}}

# Celery: one settings namespace (CELERY_*) read by pksweb/celery.py.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = _env("PKSWEB_CELERY_QUEUE", "pksweb")
# Workers' control, gossip and heartbeats travel on exchanges of their own: named after the queue, so that two
# installations sharing a Redis never hear each other's workers (nor `celery control` reach the other's).
CELERY_CONTROL_EXCHANGE = f"{CELERY_TASK_DEFAULT_QUEUE}.control"
CELERY_EVENT_EXCHANGE = f"{CELERY_TASK_DEFAULT_QUEUE}.events"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 270
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Late acknowledgement: a task's message is acknowledged when the task ends, not when it starts, so a task on a
# worker that ends (a pod's SIGTERM, a crash) goes back to the queue instead of being lost. Every task is safe twice
# (rows claimed under lock, leases, the operation reaper, the rollout poke).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# On SIGTERM a worker takes no new task and gives the running ones this long to finish; then long work (a drain, a
# driver call, a wait for a node) hands itself back to the queue and the worker exits (pksweb/shutdown.py). Keep it
# well under the pod's terminationGracePeriodSeconds.
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = _number("PKSWEB_WORKER_SOFT_SHUTDOWN_SECONDS", "15")
# Redis gives a message taken but not acknowledged to another worker after this long (a worker killed with SIGKILL
# never returns its messages). Longer than any task runs (a step's task is limited to 2 h) and than any countdown
# (30 s at most), or a task still running would be delivered twice; the leases make that harmless, and work whose
# worker died is taken over within a lease period anyway: this is the backstop.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 7200}
CELERY_TIMEZONE = TIME_ZONE
# Fleet health ("dial tone"): how often, how many clusters probed at once, per-call timeouts.
PKSWEB_HEALTH_INTERVAL = _number("PKSWEB_HEALTH_INTERVAL", "30")
# How long a cluster page's live snapshot (pods per node, namespaces, events) is shared before it is read again.
PKSWEB_LIVE_SNAPSHOT_SECONDS = _number("PKSWEB_LIVE_SNAPSHOT_SECONDS", "10")
# Open pages catch up from the database on events whose push was lost (Redis down or restarting):
# each web process looks every CATCH_UP seconds for events older than GRACE seconds that were not pushed to it.
PKSWEB_LIVE_CATCH_UP_SECONDS = _number("PKSWEB_LIVE_CATCH_UP_SECONDS", "5")
PKSWEB_LIVE_CATCH_UP_GRACE_SECONDS = _number("PKSWEB_LIVE_CATCH_UP_GRACE_SECONDS", "3")
PKSWEB_SWEEP_WORKERS = _number("PKSWEB_SWEEP_WORKERS", "32", int)
# One sweep at a time: its lease (at least twice the interval), renewed while the sweep runs.
PKSWEB_SWEEP_LEASE_SECONDS = _number("PKSWEB_SWEEP_LEASE_SECONDS", "60")
PKSWEB_PROBE_TIMEOUT = (_number("PKSWEB_PROBE_CONNECT_TIMEOUT", "3"), _number("PKSWEB_PROBE_READ_TIMEOUT", "8"))
PKSWEB_DRAIN_TIMEOUT = _number("PKSWEB_DRAIN_TIMEOUT", "300", int)
# Upgrades: the command driver runs operator-configured commands, so it is off unless allowed.
PKSWEB_ALLOW_COMMAND_DRIVER = _flag("PKSWEB_ALLOW_COMMAND_DRIVER", default=False)
PKSWEB_COMMAND_DRIVER_TIMEOUT = _number("PKSWEB_COMMAND_DRIVER_TIMEOUT", "900", int)
PKSWEB_ROLLOUT_STALE_SECONDS = _number("PKSWEB_ROLLOUT_STALE_SECONDS", "20")
PKSWEB_ROLLOUT_LEASE_SECONDS = _number("PKSWEB_ROLLOUT_LEASE_SECONDS", "30")
# A node operation's claim, renewed while it runs; the reaper takes over an expired one.
PKSWEB_OPERATION_LEASE_SECONDS = _number("PKSWEB_OPERATION_LEASE_SECONDS", "30")
# Sandbox clusters the embedded server starts and registers (0: none).
PKSWEB_SANDBOX_CLUSTERS = _number("PKSWEB_SANDBOX_CLUSTERS", "0", int)
PKSWEB_SANDBOX_PORT = _number("PKSWEB_SANDBOX_PORT", "6550", int)

CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {
        "task": "pksweb.tasks.worker_heartbeat",
        "schedule": _number("PKSWEB_HEARTBEAT_SECONDS", "30"),
    },
    "drift-scan": {
        "task": "tenants.tasks.drift_scan",
        "schedule": _number("PKSWEB_DRIFT_INTERVAL", "300"),
    },
    "rollout-tick": {
        "task": "upgrades.tasks.rollouts_poke",
        "schedule": _number("PKSWEB_ROLLOUT_POKE_SECONDS", "10"),
    },
    "operations-reap": {
        "task": "clusters.tasks.operations_reap",
        "schedule": _number("PKSWEB_REAP_SECONDS", "10"),
    },
    "audit-seal": {
        "task": "pksweb.tasks.audit_seal",
        "schedule": _number("PKSWEB_AUDIT_SEAL_SECONDS", "30"),
    },
    "health-sweep": {
        "task": "clusters.tasks.health_sweep",
        "schedule": PKSWEB_HEALTH_INTERVAL,
        "options": {"expires": PKSWEB_HEALTH_INTERVAL},
    },
}
# beat keeps its schedule in the data folder (PKSWEB_DATA_DIR), never in the working directory: the root
# filesystem may be read-only. pksweb/celery.py creates the folder when beat starts.
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# beat is safe to run twice: only the beat holding a lease sends periodic tasks; a standby takes over within
# PKSWEB_BEAT_LEASE_SECONDS of the leader dying (pksweb/beat.py).
CELERY_BEAT_SCHEDULER = "pksweb.beat:SingletonScheduler"
PKSWEB_BEAT_LEASE_SECONDS = _number("PKSWEB_BEAT_LEASE_SECONDS", "30")

# The embedded server runs a worker and beat in threads of its own process.
PKSWEB_EMBEDDED_CELERY = CELERY_BROKER_URL.startswith("memory://")
PKSWEB_EMBEDDED_WORKER_THREADS = _number("PKSWEB_EMBEDDED_WORKER_THREADS", "4", int)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "pksweb.api.pagination.Pages",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # JSON nested deeper than pksweb.nesting.MAX_DEPTH is refused before it is parsed.
    "DEFAULT_PARSER_CLASSES": [
        "pksweb.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Every refusal answers JSON in words, including bodies too deep or too large to read.
    "EXCEPTION_HANDLER": "pksweb.api.errors.exception_handler",
}
# The largest request body (files aside) pksweb reads: Django's default, named because the API
# and the forms depend on it. A kubeconfig (at most 1 MiB) fits, escaped into JSON too.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
SPECTACULAR_SETTINGS = {
    "TITLE": "pksweb API",
    "DESCRIPTION": "Day-2 operations of Kubernetes fleets. Authenticate with a session "
    "or `Authorization: Token <key>` (`python manage.py apitoken USER`).",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name for the all/some/none reach of a segmentation cell, actual or intended.
    "ENUM_NAME_OVERRIDES": {"ReachEnum": "tenants.choices.Reach", "NotifyKindEnum": "notifications.choices.NotifyKind"},
    # The schema and its docs pages are for signed-in people, like the rest of the API.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

if not EMBEDDED:
    SESSION_COOKIE_SECURE = _flag("PKSWEB_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Behind TLS (secure cookies on), browsers are told to use HTTPS only, for a year, on pksweb's host name and
    # the names under it (not its parent domain's other sites).
    SECURE_HSTS_SECONDS = 31_536_000 if SESSION_COOKIE_SECURE else 0
    SECURE_HSTS_INCLUDE_SUBDOMAINS = SESSION_COOKIE_SECURE
    # The preload list takes whole registrable domains, which an installation on one host name of a company's
    # domain cannot speak for: preloading stays the domain owner's decision (PKSWEB_HSTS_PRELOAD=1 when it is theirs).
    SECURE_HSTS_PRELOAD = _flag("PKSWEB_HSTS_PRELOAD", default=False)
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS += ["security.W021"]
    # HTTP is redirected to HTTPS by the ingress, which terminates TLS; the pod itself is reached over plain HTTP
    # by the kubelet's probes and Prometheus' scrapes, which a redirect would break. PKSWEB_SSL_REDIRECT=1 makes
    # pksweb redirect itself (when nothing in front does), sparing the probe and scrape paths.
    SECURE_SSL_REDIRECT = _flag("PKSWEB_SSL_REDIRECT", default=False)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    if not SECURE_SSL_REDIRECT:
        SILENCED_SYSTEM_CHECKS += ["security.W008"]

# WhiteNoise hands Django's ASGI handler a file iterator that is synchronous;
# Django warns on every static file. The files are small and served correctly.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

# Logs: JSON lines in production (a log collector reads them), plain text embedded (a person reads them);
# PKSWEB_LOG_FORMAT=json|plain chooses. Every line carries the request id and user during a request and the
# task during a task (pksweb.logs.ContextFilter). In JSON, uvicorn's own lines (access, errors) and Celery's
# (pksweb.celery takes over its logging setup) go through the same handler.
from pksweb import logformat  # noqa: E402 - imports nothing of Django; kept beside the block it serves

try:
    LOG_FORMAT = logformat.chosen(os.environ)
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
# pksweb.logformat writes the lines (and bounds each record: a container runtime splits lines over 16 KiB); uvicorn's
# parent process, which loads no Django, is given the same configuration without the filter (pksweb/__main__.py).
LOGGING = logformat.config(LOG_FORMAT, _env("PKSWEB_LOG_LEVEL", "INFO").upper(),
                           filters={"context": {"()": "pksweb.logs.ContextFilter"}})
LOGGING["loggers"] = {
    "django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"},
    # uvicorn configured its loggers before the application loaded: their levels (--log-level) stay, their output
    # becomes JSON lines like the rest.
    **({name: {"handlers": ["console"], "propagate": False} for name in ("uvicorn", "uvicorn.access")}
       if LOG_FORMAT == "json" else {}),
}
if LOG_FORMAT == "json":
    logging.captureWarnings(True)  # Python's warnings become log lines too, not plain text among the JSON
    logformat.log_uncaught()  # and so does the traceback of an exception nobody caught

# Metrics (pksweb.metrics): GET /metrics on the web processes. With a token set, a scrape must send
# "Authorization: Bearer <token>"; without one, /metrics is open to whoever reaches the pod (the network policy
# decides who does). Workers serve their own figures on PKSWEB_WORKER_METRICS_PORT when it is set.
PKSWEB_METRICS_TOKEN = _env("PKSWEB_METRICS_TOKEN")
PKSWEB_WORKER_METRICS_PORT = _number("PKSWEB_WORKER_METRICS_PORT", "0", int) or None
# Notifications: at most one message per subject and kind on a channel per DEBOUNCE seconds; each send bounded by
# TIMEOUT, tried ATTEMPTS times in all, BACKOFF seconds before the first retry, doubling. Every message links back
# to its page under PKSWEB_PUBLIC_URL (default: the first CSRF_TRUSTED_ORIGINS entry, else the embedded server's).
PKSWEB_NOTIFY_DEBOUNCE = _number("PKSWEB_NOTIFY_DEBOUNCE", "300")
PKSWEB_NOTIFY_TIMEOUT = _number("PKSWEB_NOTIFY_TIMEOUT", "5")
PKSWEB_NOTIFY_ATTEMPTS = _number("PKSWEB_NOTIFY_ATTEMPTS", "4", int) or 1
PKSWEB_NOTIFY_BACKOFF = _number("PKSWEB_NOTIFY_BACKOFF", "2")
PKSWEB_PUBLIC_URL = (_env("PKSWEB_PUBLIC_URL") or (CSRF_TRUSTED_ORIGINS[0] if CSRF_TRUSTED_ORIGINS else "")
                     or f"http://127.0.0.1:{_env('PORT') or '8000'}").rstrip("/")
