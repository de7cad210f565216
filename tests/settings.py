"""Test settings: the project's settings plus the probe app."""

import os

# Many tests register hundreds of attendees from 127.0.0.1: a limit far above that, for this process and the
# servers it starts (they inherit the environment). The limits' own tests set small ones explicitly.
os.environ.setdefault("MICE_RATE_LIMIT_REGISTRATIONS", "1000000/1h")

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.probe"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The sandbox gateway's ledger, private to this test run (worker subprocesses inherit the variable).
os.environ.setdefault("SANDBOX_GATEWAY_PATH", f"/tmp/mice-test-sandbox-{os.getpid()}.sqlite3")
SANDBOX_GATEWAY_PATH = os.environ["SANDBOX_GATEWAY_PATH"]
