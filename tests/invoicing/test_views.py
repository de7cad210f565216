"""Downloads: the attendee's signed links (status page, API), and staff in admin."""

import datetime as dt
import re
import urllib.parse

import pytest
from django.contrib.auth.models import Permission, User
from django.core import signing
from django.db import transaction
from django.test import Client, override_settings
from django.urls import reverse

from invoicing.issuing import credit_note_issue, invoice_issue
from invoicing.selectors import DOWNLOAD_SALT, credit_note_download_url, invoice_download_url
from registrations.services import registration_create
from tests.factories import make_event
from tests.invoicing.paid import paid_charge, refunded

pytestmark = pytest.mark.django_db(transaction=True)


def issued(**attendee):
    charge, paid = paid_charge(**attendee)
    with transaction.atomic():
        invoice = invoice_issue(paid=paid, issued_on=dt.date(2027, 1, 10))
    return charge, invoice


def path_of(url):
    return urllib.parse.urlsplit(url).path


def test_a_valid_link_downloads_the_pdf_never_cached():
    _, invoice = issued(first_name="Zoë", last_name="Ødegård")

    response = Client().get(path_of(invoice_download_url(invoice_id=invoice.pk)))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="invoice-2027-000001.pdf"'
    assert response["Cache-Control"] == "no-store"
    assert response.content.startswith(b"%PDF-")


def test_a_tampered_changed_or_unknown_link_is_a_404():
    _, invoice = issued()
    _, other = issued()
    url = path_of(invoice_download_url(invoice_id=invoice.pk))
    token = url.rstrip("/").rsplit("/", 1)[1]
    value, signature = token.split(":", 1)
    client = Client()

    tampered = f"{value}:{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}"
    other_id = token.replace(f"{invoice.pk}:", f"{other.pk}:", 1)  # the other invoice's id, this one's signature
    unknown = signing.TimestampSigner(salt=DOWNLOAD_SALT).sign("999999")
    other_salt = signing.TimestampSigner(salt="something-else").sign(str(invoice.pk))
    for bad in (tampered, other_id, unknown, other_salt, "1", "guess"):
        response = client.get(reverse("invoicing:invoice_download", kwargs={"token": bad}))
        assert response.status_code == 404, bad
    assert client.get(url).status_code == 200


def test_an_expired_link_is_a_404():
    _, invoice = issued()
    url = path_of(invoice_download_url(invoice_id=invoice.pk))

    with override_settings(MICE_INVOICE_LINK_MAX_AGE=-1):
        assert Client().get(url).status_code == 404


def test_a_credit_note_downloads_through_its_own_link_and_an_invoice_link_does_not_open_it():
    charge, _ = issued()
    with transaction.atomic():
        credit_note = credit_note_issue(refunded=refunded(charge), issued_on=dt.date(2027, 1, 12))
    client = Client()

    response = client.get(path_of(credit_note_download_url(credit_note_id=credit_note.pk)))

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="credit-note-CN-2027-000001.pdf"'
    assert response["Cache-Control"] == "no-store"
    invoice_token = path_of(invoice_download_url(invoice_id=credit_note.pk)).rstrip("/").rsplit("/", 1)[1]
    assert client.get(reverse("invoicing:credit_note_download", kwargs={"token": invoice_token})).status_code == 404


def staff(*permissions):
    user = User.objects.create_user("clerk", "clerk@example.com", "pw", is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.login(username="clerk", password="pw")
    return client


def test_staff_with_the_view_permission_download_invoices_and_credit_notes_from_admin():
    charge, invoice = issued(first_name="李", last_name="小龙")
    with transaction.atomic():
        credit_note = credit_note_issue(refunded=refunded(charge))
    client = staff("view_invoice", "view_creditnote")

    listing = client.get(reverse("admin:invoicing_invoice_changelist")).content.decode()
    pdf_url = reverse("admin:invoicing_invoice_pdf", args=[invoice.pk])
    assert invoice.number in listing and "李 小龙" in listing and pdf_url in listing
    detail = client.get(reverse("admin:invoicing_invoice_change", args=[invoice.pk]))
    assert detail.status_code == 200 and credit_note.number in detail.content.decode()
    response = client.get(pdf_url)
    assert response.status_code == 200 and response.content.startswith(b"%PDF-")
    assert "no-store" in response["Cache-Control"]  # admin adds its own never-cache directives
    response = client.get(reverse("admin:invoicing_creditnote_pdf", args=[credit_note.pk]))
    assert response.status_code == 200 and response.content.startswith(b"%PDF-")


def test_an_issued_invoice_cannot_be_changed_or_deleted_in_admin():
    _, invoice = issued()
    User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.login(username="root", password="pw")

    page = client.get(reverse("admin:invoicing_invoice_change", args=[invoice.pk])).content.decode()

    assert 'name="_save"' not in page
    assert client.post(reverse("admin:invoicing_invoice_delete", args=[invoice.pk]), {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:invoicing_invoice_add")).status_code == 403


def test_staff_without_the_permission_cannot_download():
    _, invoice = issued()
    client = staff("view_registration")

    assert client.get(reverse("admin:invoicing_invoice_pdf", args=[invoice.pk])).status_code == 404
    anonymous = Client().get(reverse("admin:invoicing_invoice_pdf", args=[invoice.pk]))
    assert anonymous.status_code == 302  # to the login page


def registered(event):
    return registration_create(
        event_slug=event.slug, first_name="Zoë", last_name="Ødegård", email="zoe@example.com", payment_token="tok_visa"
    )


def test_the_status_page_and_the_api_offer_the_invoice_once_issued():
    # given a confirmed paid registration whose invoice is not issued yet
    event = make_event()
    registration = registered(event)
    type(registration).objects.filter(pk=registration.pk).update(status="confirmed")
    page_url = reverse("pages:registration_detail", args=[registration.pk])
    api_url = reverse("api-registration-detail", kwargs={"registration_id": registration.pk})
    client = Client()
    page = client.get(page_url).content.decode()
    assert 'data-awaiting-documents="true"' in page and "status.js" in page  # keeps watching for the invoice
    assert client.get(api_url).json()["invoice"] is None

    # when its invoice is issued
    charge, paid = paid_charge(event=event)
    paid["registration_id"] = str(registration.pk)
    charge.registration_id = registration.pk
    charge.save(update_fields=["registration_id"])
    with transaction.atomic():
        invoice = invoice_issue(paid=paid)

    # then both link to it, and the link downloads it
    page = client.get(page_url).content.decode()
    assert 'data-awaiting-documents="false"' in page and "status.js" not in page
    (href,) = re.findall(r'href="([^"]*/invoices/[^"]+)"', page)
    assert f"invoice {invoice.number}" in page
    answer = client.get(api_url).json()["invoice"]
    assert answer["number"] == invoice.number and answer["url"] == href.replace("&amp;", "&")
    assert client.get(path_of(answer["url"])).status_code == 200


def test_a_free_registration_awaits_no_documents():
    registration = registration_create(
        event_slug=make_event(price=0).slug, first_name="Ada", last_name="Lovelace", email="ada@example.com"
    )

    page = Client().get(reverse("pages:registration_detail", args=[registration.pk])).content.decode()

    assert 'data-awaiting-documents="false"' in page and "Your documents" not in page
