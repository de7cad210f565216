"""Settings of the decoupling benchmark's baseline server only: the production settings plus one benchmark view.

The synchronous registration view of bench/baseline/ is routed by its urlconf alone, which only these settings
name: config.settings and tests.settings never serve it (tests/bench/test_baseline_routes.py).
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.baseline.urls"
