"""REST API routes (mounted at /api/). Paths take plain strings so a malformed id or slug is a JSON 404."""

from django.urls import URLPattern, path

from registrations.apis.events import EventCollectionApi, EventItemApi
from registrations.apis.registrations import RegistrationCancelApi, RegistrationCreateApi, RegistrationDetailApi

urlpatterns: list[URLPattern] = [
    path("events/", EventCollectionApi.as_view(), name="api-events"),
    path("events/<str:slug>/", EventItemApi.as_view(), name="api-event-detail"),
    path("registrations/", RegistrationCreateApi.as_view(), name="api-registrations"),
    path("registrations/<str:registration_id>/", RegistrationDetailApi.as_view(), name="api-registration-detail"),
    path(
        "registrations/<str:registration_id>/cancel/", RegistrationCancelApi.as_view(), name="api-registration-cancel"
    ),
]
