"""Invoicing's pages."""

from django.urls import path

from invoicing import views

app_name = "invoicing"
urlpatterns = [
    path("invoices/<str:token>/", views.invoice_download, name="invoice_download"),
    path("credit-notes/<str:token>/", views.credit_note_download, name="credit_note_download"),
]
