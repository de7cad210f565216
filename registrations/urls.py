"""Web pages: upcoming events, the registration form, the attendee's status page."""

from django.urls import URLPattern, path

from registrations import views

app_name = "pages"

urlpatterns: list[URLPattern] = [
    path("", views.event_list, name="event_list"),
    path("events/<slug:slug>/register/", views.registration_form, name="registration_form"),
    # Any string: a malformed id gets the same friendly 404 page as an unknown one.
    path("registrations/<str:registration_id>/", views.registration_detail, name="registration_detail"),
    path(
        "registrations/<str:registration_id>/cancel/",
        views.registration_cancel_by_attendee,
        name="registration_cancel",
    ),
]
