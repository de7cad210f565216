"""The project's routes with the synchronous baseline in front (bench.settings only)."""

from django.urls import URLPattern, URLResolver, path

from bench.baseline.views import registration_create_synchronously
from config.urls import handler404
from config.urls import urlpatterns as project_urlpatterns

__all__ = ["handler404", "urlpatterns"]

urlpatterns: list[URLPattern | URLResolver] = [
    path("bench/baseline/registrations/", registration_create_synchronously, name="bench-baseline-registrations"),
    *project_urlpatterns,
]
