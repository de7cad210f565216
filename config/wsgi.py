"""WSGI entry point (gunicorn config.wsgi)."""

import os
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
try:
    application = get_wsgi_application()
except ImproperlyConfigured as error:
    # A configuration mistake (no SECRET_KEY in production): one line saying what to set, not a traceback.
    # The Procfile's gunicorn loads the application once, before forking (--preload), so it stops at once;
    # without --preload, 4 is gunicorn's "application failed to load", which stops it too.
    print(f"error: {error}", file=sys.stderr, flush=True)
    sys.exit(4)
