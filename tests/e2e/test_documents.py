"""The attendee's invoice on the status page, in a real browser: it appears by itself once issued."""

import urllib.parse
import urllib.request

import pytest
from django.db import transaction
from playwright.sync_api import Page, expect

from invoicing.issuing import invoice_issue
from registrations.models import Registration
from registrations.services import registration_create
from tests.factories import make_event
from tests.invoicing.paid import paid_charge

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_invoice_link_appears_on_a_confirmed_registrations_page_without_a_reload(page: Page, live_server):
    # given a confirmed paid registration whose invoice is still being issued, its status page open
    event = make_event(name="Cloud Summit")
    registration = registration_create(
        event_slug=event.slug, first_name="Zoë", last_name="Ødegård", email="zoe@example.com", payment_token="tok_visa"
    )
    Registration.objects.filter(pk=registration.pk).update(status="confirmed")
    page.goto(f"{live_server.url}/registrations/{registration.pk}/")
    expect(page.locator("#documents-pending")).to_be_visible()
    page.evaluate("window.__sameDocument = 'yes'")

    # when the invoice is issued
    charge, paid = paid_charge(event=event, first_name="Zoë", last_name="Ødegård")
    charge.registration_id = registration.pk
    charge.save(update_fields=["registration_id"])
    paid["registration_id"] = str(registration.pk)
    with transaction.atomic():
        invoice = invoice_issue(paid=paid)
    assert invoice is not None

    # then its link shows up in the same document, and downloads the PDF
    link = page.get_by_role("link", name=f"Download invoice {invoice.number} (PDF)")
    expect(link).to_be_visible(timeout=15_000)
    assert page.evaluate("window.__sameDocument") == "yes"
    href = link.get_attribute("href")
    assert href is not None
    with urllib.request.urlopen(live_server.url + urllib.parse.urlsplit(href).path, timeout=30) as response:
        assert response.headers["Content-Type"] == "application/pdf"
        assert response.read().startswith(b"%PDF-")
