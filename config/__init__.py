"""Project configuration: settings, URLs, the Celery app (config.celery), WSGI/ASGI entry points."""
