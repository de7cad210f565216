"""REST API routes (mounted at /api/)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
