"""Payments, charges, invoices and credit notes."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class InvoicingConfig(AppConfig):
    name = "invoicing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from registrations.signals import registration_admin_links, registration_documents

        registration_documents.connect(registration_documents_offer, dispatch_uid="invoicing.documents")
        registration_admin_links.connect(registration_admin_links_offer, dispatch_uid="invoicing.admin_links")


def registration_documents_offer(sender: Any, *, registration_id: str, **kwargs: Any) -> list[dict[str, str]]:
    """The registration's invoice and credit note as signed links, for its status page and the API."""
    from invoicing.selectors import registration_document_links

    return registration_document_links(registration_id=registration_id)


def registration_admin_links_offer(sender: Any, *, registration_id: str, **kwargs: Any) -> list[dict[str, str]]:
    """The registration's charge, invoice and credit note in admin, for its timeline page."""
    from invoicing.selectors import registration_admin_links

    return registration_admin_links(registration_id=registration_id)
