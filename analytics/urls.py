"""The staff dashboard's routes."""

from django.urls import URLPattern, path

from analytics import views

app_name = "analytics"

urlpatterns: list[URLPattern] = [
    path("", views.dashboard, name="dashboard"),
    path("figures.json", views.figures, name="figures"),
]
