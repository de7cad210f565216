"""Test settings: the project's settings plus the probe app."""

import os

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.probe"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The sandbox gateway's ledger, private to this test run (worker subprocesses inherit the variable).
os.environ.setdefault("SANDBOX_GATEWAY_PATH", f"/tmp/mice-test-sandbox-{os.getpid()}.sqlite3")
SANDBOX_GATEWAY_PATH = os.environ["SANDBOX_GATEWAY_PATH"]
