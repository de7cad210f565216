"""Invoices and credit notes for staff: read-only (an issued document never changes), each with its PDF."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from invoicing.models import Charge, CreditNote, Invoice, Refund
from invoicing.selectors import Document, credit_note_pdf_get, invoice_pdf_get
from invoicing.views import document_response


class ReadOnlyDocumentAdmin(admin.ModelAdmin):
    """Nothing is added, changed or deleted here: a document is issued by the saga and corrected by a credit
    note. Staff with the view permission download the PDF from the list and the detail page."""

    list_display: Any = ("number", "issued_on", "buyer", "gross", "currency", "pdf_link")
    list_display_links = ("number",)
    date_hierarchy = "issued_on"
    ordering = ("-issued_on", "-number")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="buyer")
    def buyer(self, obj: Invoice | CreditNote) -> str:
        buyer = obj.content.get("buyer", {})
        return " · ".join(part for part in (buyer.get("name"), buyer.get("company"), buyer.get("email")) if part)

    @admin.display(description="PDF")
    def pdf_link(self, obj: Model) -> str:
        url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_pdf", args=[obj.pk])
        return format_html('<a href="{}">download</a>', url)

    def document(self, pk: int) -> Document | None:
        raise NotImplementedError

    def get_urls(self) -> list[URLPattern]:
        meta = self.model._meta
        return [
            path(
                "<int:pk>/pdf/",
                self.admin_site.admin_view(self.pdf_download),
                name=f"{meta.app_label}_{meta.model_name}_pdf",
            ),
            *super().get_urls(),
        ]

    def pdf_download(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise Http404("No such document.")  # as for an attendee: no hint that it exists
        document = self.document(pk)
        if document is None:
            raise Http404("No such document.")
        return document_response(document)


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyDocumentAdmin):
    list_display = ("number", "issued_on", "buyer", "net", "vat", "gross", "currency", "pdf_link")
    search_fields = ("number", "registration_id", "charge__gateway_reference")
    fields = (
        "number",
        "issued_on",
        "registration_id",
        "buyer",
        "currency",
        "net",
        "vat_rate",
        "vat",
        "gross",
        "payment_reference",
        "credit_note_number",
        "pdf_link",
        "content",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="payment reference")
    def payment_reference(self, obj: Invoice) -> str:
        return str(obj.content.get("payment", {}).get("reference", ""))

    @admin.display(description="credit note")
    def credit_note_number(self, obj: Invoice) -> str:
        credit_note = getattr(obj, "credit_note", None)
        return credit_note.number if credit_note is not None else "—"

    def document(self, pk: int) -> Document | None:
        return invoice_pdf_get(invoice_id=pk)


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyDocumentAdmin):
    list_display = ("number", "issued_on", "invoice", "buyer", "gross", "currency", "pdf_link")
    list_select_related = ("invoice",)
    search_fields = ("number", "invoice__number", "invoice__registration_id")
    fields = (
        "number",
        "issued_on",
        "invoice",
        "buyer",
        "currency",
        "net",
        "vat",
        "gross",
        "refund_reference",
        "pdf_link",
        "content",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="refund reference")
    def refund_reference(self, obj: CreditNote) -> str:
        return str(obj.content.get("payment", {}).get("reference", ""))

    def document(self, pk: int) -> Document | None:
        return credit_note_pdf_get(credit_note_id=pk)


class RefundInline(admin.StackedInline):
    model = Refund
    can_delete = False
    extra = 0
    fields = ("status", "amount", "reason", "idempotency_key", "gateway_reference", "created_at", "updated_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Charge)
class ChargeAdmin(admin.ModelAdmin):
    """Read-only: a charge is the gateway's record, changed only by the saga (never by hand)."""

    list_display = ("registration_id", "status", "amount", "currency", "attempts", "gateway_reference", "created_at")
    list_filter = ("status", "gateway")
    search_fields = ("=registration_id", "=gateway_reference")
    fields = (
        "registration_id",
        "status",
        "amount",
        "currency",
        "gateway",
        "gateway_reference",
        "decline_code",
        "attempts",
        "attempted_at",
        "created_at",
    )
    readonly_fields = fields
    inlines = (RefundInline,)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
