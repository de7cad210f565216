"""Test settings: the project's settings plus the probe app."""

import os

# Production settings refuse to start without a secret key; a test run (and the processes it starts) has its own.
os.environ.setdefault("SECRET_KEY", "tests-only-" + os.urandom(24).hex())
# Many tests register hundreds of attendees from 127.0.0.1: a limit far above that, for this process and the
# servers it starts (they inherit the environment). The limits' own tests set small ones explicitly.
os.environ.setdefault("MICE_RATE_LIMIT_REGISTRATIONS", "1000000/1h")
# Handlers' e-mails stay in the worker's memory unless a test points them elsewhere (the SMTP and file tests do):
# the console backend would print every e-mail, invoice PDF included, into the worker logs tests read.
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
# Test clients connect directly: no proxy in front, so a forged X-Forwarded-For must be ignored.
os.environ.setdefault("MICE_TRUSTED_PROXIES", "0")
# anymail's tracking webhooks are served only with a secret (config/urls.py): the webhook tests post with it.
os.environ.setdefault("ANYMAIL_WEBHOOK_SECRET", "tracking:tests-only-webhook-secret")

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS, STORAGES

INSTALLED_APPS = [*INSTALLED_APPS, "tests.probe"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The sandbox gateway's ledger, private to this test run (worker subprocesses inherit the variable).
os.environ.setdefault("SANDBOX_GATEWAY_PATH", f"/tmp/mice-test-sandbox-{os.getpid()}.sqlite3")
SANDBOX_GATEWAY_PATH = os.environ["SANDBOX_GATEWAY_PATH"]

# The test client and the servers tests start speak plain http:// (the production HTTPS settings have their
# own tests, in tests/config/test_settings.py).
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False

# Static files: in-process tests (the test client, live_server) serve the apps' files as they are, since the
# production storage names only what collectstatic put in its manifest. The gunicorn processes that tests
# start use the production storage over a collectstatic of their own run (tests/processes.py sets this).
if os.environ.get("TEST_STATIC_COLLECTED") != "1":
    STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    WHITENOISE_USE_FINDERS = True  # the apps' folders, as they are: no STATIC_ROOT to scan
    WHITENOISE_AUTOREFRESH = True
