"""Settings, read from the environment (see the README's configuration table)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from whitenoise.compress import Compressor

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        # A published fallback would let anyone forge sessions, password-reset links and signed values.
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: set it in the environment (a long random string, e.g. from "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`), or set DEBUG=1 for development."
        )
    SECRET_KEY = "dev-only-insecure-key-change-me"
ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

# --- HTTPS ------------------------------------------------------------------------------------
# Production (DEBUG off) is HTTPS only by default, behind a reverse proxy that terminates TLS (the Procfile
# binds gunicorn to the loopback) and sets X-Forwarded-Proto, overwriting any value the client sent.
# A plain-HTTP run turns these off by environment (scripts/run does, for http://127.0.0.1).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Load balancers probe over plain HTTP, and Prometheus may scrape gunicorn directly on the loopback.
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz|metrics)$"]
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else str(365 * 24 * 3600)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
_proxy_ssl_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "" if DEBUG else "HTTP_X_FORWARDED_PROTO=https")
if _proxy_ssl_header:
    _header, _, _value = _proxy_ssl_header.partition("=")
    SECURE_PROXY_SSL_HEADER = (_header.strip(), _value.strip())

INSTALLED_APPS = [
    "config.apps.AdminConfig",  # django.contrib.admin, on a site whose login is rate-limited
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from our static files: no CDN
    "mice",
    "registrations",
    "invoicing",
    "notifications",
    "analytics",
    "ratelimits",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files before everything else: no session, no database, and the answer is cached for good.
    "config.static_files.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so it is the first to see a view's exception: an unreachable database is a 503 to retry, not a 500.
    "config.database_unavailable.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "config.urls"
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
            ],
        },
    },
]
WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        # A reused connection may have been closed by a failover, a restart or a proxy since the last
        # request: check it before the request uses it, and reconnect.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's own backend with a cheaper health check (config/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "config.postgresql"
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # SQLite has one writer: take the write lock at BEGIN and wait for it, rather than fail a request
    # with "database is locked" when the relay or a worker writes at the same time.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# Static files: collected (`manage.py collectstatic`, which scripts/run does before starting) with hashed,
# compressed copies (gzip and Brotli), and served by WhiteNoise from the web process itself, cached for good.
STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Source maps (28 MB of them come with the API docs' bundles) are read by a developer's browser tools only:
# compressing them took most of collectstatic's time, for no visitor.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = [*Compressor.SKIP_COMPRESS_EXTENSIONS, "map"]

# E-mail (docs/notifications.md): console by default; an anymail backend plus ANYMAIL_* (e.g.
# EMAIL_BACKEND=anymail.backends.postmark.EmailBackend, ANYMAIL_POSTMARK_SERVER_TOKEN), or Django's SMTP
# backend with EMAIL_HOST and the rest. ANYMAIL_WEBHOOK_SECRET ("user:password") protects the tracking
# webhooks; without it they are not served at all (config/urls.py).
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "MICE registrations <no-reply@localhost>")
ANYMAIL = {k[len("ANYMAIL_") :]: v for k, v in os.environ.items() if k.startswith("ANYMAIL_")}
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)  # STARTTLS, usually port 587
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)  # implicit TLS, usually port 465
# Seconds any one SMTP socket operation may block: without it a hung server holds a worker forever.
EMAIL_TIMEOUT = float(os.environ.get("EMAIL_TIMEOUT", "30"))
# Django's file backend (django.core.mail.backends.filebased.EmailBackend) writes each message here.
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
# The right-hand side of the Message-ID we set (<kind.registration-id@domain>): by default the sender's domain.
MICE_EMAIL_MESSAGE_ID_DOMAIN = os.environ.get(
    "MICE_EMAIL_MESSAGE_ID_DOMAIN", DEFAULT_FROM_EMAIL.rpartition("@")[2].strip(" >") or "localhost"
)
# Who attendees may write to (shown in every e-mail); empty: nobody named.
MICE_EMAIL_CONTACT = os.environ.get("MICE_EMAIL_CONTACT", "")

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # No HTTP Basic by default: the staff API sets its own, rate-limited one; anywhere else (the schema, the
    # docs) a Basic header checked without a limit would be a free password oracle.
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "rest_framework.views.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MICE registrations API",
    "DESCRIPTION": "Register attendees for MICE events; everything after the 202 happens asynchronously.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Registrations and payments ---------------------------------------------------------------
DEFAULT_VAT_RATE = os.environ.get("DEFAULT_VAT_RATE", "20.00")  # percent, for events that do not set one
PAYMENT_GATEWAY = os.environ.get("PAYMENT_GATEWAY", "invoicing.gateways.SandboxGateway")
SANDBOX_GATEWAY_PATH = os.environ.get("SANDBOX_GATEWAY_PATH", str(BASE_DIR / "var" / "sandbox-gateway.sqlite3"))
# Seconds the sandbox remembers an idempotency key (Stripe: 24 hours); a charge repeated later is made again.
SANDBOX_IDEMPOTENCY_KEY_TTL = float(os.environ.get("SANDBOX_IDEMPOTENCY_KEY_TTL", str(24 * 3600)))
IDEMPOTENCY_KEY_TTL_HOURS = 24
# How long a gateway call may be under way: a charge attempt older than this with no recorded outcome is taken
# as over (its worker died or gave up) and looked up at the gateway when its registration is cancelled.
MICE_CHARGE_ATTEMPT_TIMEOUT = float(os.environ.get("MICE_CHARGE_ATTEMPT_TIMEOUT", "120"))

# --- Invoices and e-mails ---------------------------------------------------------------------------
# Where attendees reach this site: the base of links in e-mails (signed invoice links).
MICE_SITE_URL = os.environ.get("MICE_SITE_URL", "http://127.0.0.1:8000")
MICE_INVOICE_LINK_MAX_AGE = int(os.environ.get("MICE_INVOICE_LINK_MAX_AGE", str(30 * 24 * 3600)))  # seconds
MICE_INVOICE_PREFIX = os.environ.get("MICE_INVOICE_PREFIX", "")  # before "<year>-<number>"
MICE_CREDIT_NOTE_PREFIX = os.environ.get("MICE_CREDIT_NOTE_PREFIX", "CN-")
MICE_SELLER_NAME = os.environ.get("MICE_SELLER_NAME", "MICE Events Ltd")
MICE_SELLER_ADDRESS = os.environ.get("MICE_SELLER_ADDRESS", "1 Conference Street\n1000 Brussels\nBelgium")
MICE_SELLER_VAT_ID = os.environ.get("MICE_SELLER_VAT_ID", "BE0123456789")

# --- Rate limits (README: configuration) ---------------------------------------------------------
# Per client address, counted in the database so that every web process shares them ("<count>/<period>",
# units s, m, h, d; or "off"). Registrations: API and web form together. Failed sign-ins: HTTP Basic on the
# API and the admin login together. X-Forwarded-For is believed only as far as MICE_TRUSTED_PROXIES says.
MICE_RATE_LIMIT_REGISTRATIONS = os.environ.get("MICE_RATE_LIMIT_REGISTRATIONS", "20/10m")
MICE_RATE_LIMIT_LOGIN_FAILURES = os.environ.get("MICE_RATE_LIMIT_LOGIN_FAILURES", "10/15m")
# Production (DEBUG off) assumes one TLS proxy in front, as SECURE_PROXY_SSL_HEADER does: without it every
# client would count as the proxy's address, and one address's failed sign-ins would lock out everyone.
MICE_TRUSTED_PROXIES = int(os.environ.get("MICE_TRUSTED_PROXIES", "0" if DEBUG else "1"))

# --- Messaging ---------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
CELERY_BROKER_HEARTBEAT = 30
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# Acknowledge only after the handler committed; a lost worker means redelivery; a final failure
# or a hard time limit means reject-without-requeue, which RabbitMQ dead-letters (docs/broker-behaviour.md).
CELERY_TASK_ACKS_LATE = True
# What a task prints (the console e-mail backend of a local run prints every e-mail) is output, not a warning.
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_ACKS_ON_FAILURE = False
CELERY_TASK_ACKS_ON_TIMEOUT = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A worker cut off from the broker lets the handlers it runs finish, rather than kill them: their
# acknowledgement is lost with the channel, so each message is delivered again and skipped there (the inbox,
# the e-mail log, the charge's records). Killing them cut e-mail sends short after the mail server had taken
# the message but before "sent" was recorded: a second copy once the lease ended (21 of 6,021 e-mails in a
# long fault run). Each handler is idempotent and safe beside a second run of itself, which is all that
# finishing asks for (tests/notifications/test_end_to_end.py).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TASK_TIME_LIMIT = int(os.environ.get("MICE_HANDLER_TIME_LIMIT", "300"))
# How long a started e-mail send is assumed to be still running: a redelivery within it waits (retries later)
# rather than send a second copy beside it. After a crash the e-mail goes out again once it expires. No
# handler runs longer than the hard time limit, so by default nothing can still be sending by then.
MICE_EMAIL_SEND_LEASE = float(os.environ.get("MICE_EMAIL_SEND_LEASE", str(CELERY_TASK_TIME_LIMIT)))
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fix-up closes the database connection around every task unless this is set: a new
# PostgreSQL connection per event capped a worker near 80 events/s (bench/relay_latency.py). Handlers drop a
# broken or aged connection themselves (close_old_connections, as Django does per request).
CELERY_DB_REUSE_MAX = int(os.environ.get("MICE_WORKER_DB_REUSE_MAX", "1000"))
# Task events (received, started, succeeded, failed...) on the `celeryev` exchange: three more broker messages
# per handler run, about 8% of the machine's CPU per registration (bench/saga.py), for a view nobody reads
# unless Flower runs. Off by default: Flower turns them on by itself while it runs (its enable_events option,
# through the workers' remote control), or `celery -A config control enable_events`; 1 sends them always.
# The relay publishes raw task messages: no "sent" events.
CELERY_WORKER_SEND_TASK_EVENTS = env_bool("MICE_WORKER_TASK_EVENTS", False)
CELERY_TASK_CREATE_MISSING_QUEUES = False
# Pool children per worker (the Procfile's line gives no -c). A handler run waits on commits, the gateway and
# SMTP about as long as it computes, so two children per core keep the cores busy: on 2 cores, 4 sustained
# 20 paid registrations/s where 2 sustained 18, and 400 probe events/s where 2 sustained 300 (bench/).
CELERY_WORKER_CONCURRENCY = int(os.environ.get("MICE_WORKER_CONCURRENCY", "4"))

MICE_RELAY_BATCH_SIZE = int(os.environ.get("MICE_RELAY_BATCH_SIZE", "500"))
MICE_RELAY_CONCURRENCY = int(os.environ.get("MICE_RELAY_CONCURRENCY", "2"))
MICE_RELAY_POLL_INTERVAL = float(os.environ.get("MICE_RELAY_POLL_INTERVAL", "1.0"))
MICE_RELAY_LINGER_MS = float(os.environ.get("MICE_RELAY_LINGER_MS", "10"))
MICE_RELAY_CONFIRM_TIMEOUT = float(os.environ.get("MICE_RELAY_CONFIRM_TIMEOUT", "10"))
# AMQP heartbeat of the relay's and the handlers' publishing connections: a connection that died without
# closing (half-open TCP) is noticed within two intervals instead of never.
MICE_BROKER_HEARTBEAT = float(os.environ.get("MICE_BROKER_HEARTBEAT", "30"))
# Admin warns when the oldest due, unsent outbox row is older than this (seconds): the relay is not keeping up.
MICE_OUTBOX_LAG_WARNING = float(os.environ.get("MICE_OUTBOX_LAG_WARNING", "60"))
MICE_OUTBOX_RETENTION_HOURS = float(os.environ.get("MICE_OUTBOX_RETENTION_HOURS", str(7 * 24)))
MICE_INBOX_RETENTION_HOURS = float(os.environ.get("MICE_INBOX_RETENTION_HOURS", str(30 * 24)))
# The scheduler (`manage.py mice_upkeep`, mice/upkeep.py): seconds between two rounds of upkeep jobs, and how
# long past its payment deadline a registration may stay pending before upkeep expires it itself (the
# deadline's own message normally does it on time; this catches one that was lost or dead-lettered).
MICE_UPKEEP_INTERVAL = float(os.environ.get("MICE_UPKEEP_INTERVAL", "300"))
MICE_UPKEEP_DEADLINE_GRACE = float(os.environ.get("MICE_UPKEEP_DEADLINE_GRACE", "3600"))

# --- Health and metrics (README: "Health and metrics") --------------------------------------------
# /readyz answers 503 once the oldest due outbox row has waited longer than this (seconds); 0 turns it off.
MICE_READY_MAX_OUTBOX_LAG = float(os.environ.get("MICE_READY_MAX_OUTBOX_LAG", "60"))
# Bearer token that reads /metrics; without one, only staff sessions and clients on the loopback do.
MICE_METRICS_TOKEN = os.environ.get("MICE_METRICS_TOKEN", "")

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
# logfmt (the default) reads well in a terminal; json is one object per line, for a log shipper.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "logfmt").strip().lower()
if LOG_FORMAT not in {"logfmt", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be logfmt or json, not {LOG_FORMAT!r}")
if LOG_FORMAT == "json":
    logging.captureWarnings(True)  # a Python warning becomes one JSON line too, not raw text on stderr
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "logfmt": {"()": "mice.logfmt.LogfmtFormatter"},
        "json": {"()": "mice.logfmt.JsonLinesFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "mice": {"level": LOG_LEVEL},
        "celery": {"level": "INFO"},
        # Celery's "Task ... received" and "... succeeded" lines, two per handler run: the handler's own
        # "handler ran" line (mice.handler) says the same with the event and correlation ids. Failures still log.
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
        "django": {"level": "INFO"},
    },
}
