"""Invoice and credit note PDFs: their text read back, byte-identical regeneration, and a page to look at."""

import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import pypdfium2
import pytest
from django.db import transaction
from pypdf import PdfReader

from invoicing.documents import credit_note_pdf, invoice_pdf
from invoicing.issuing import credit_note_issue, invoice_issue
from invoicing.models import CreditNote, Invoice
from invoicing.selectors import invoice_pdf_get
from tests.factories import make_event
from tests.invoicing.paid import paid_charge, refunded

pytestmark = pytest.mark.django_db(transaction=True)

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"


def invoiced(**attendee):
    event = make_event(
        name="EuroPython 2027 \u2013 the European Python Conference, with sprints and tutorials",
        venue="Prague Congress Centre, 5. května 1640/65, Praha 4",
        starts_at=dt.datetime(2027, 7, 12, 9, tzinfo=dt.UTC),
        ends_at=dt.datetime(2027, 7, 18, 17, tzinfo=dt.UTC),
        price=Decimal("99.99"),
        vat_rate=Decimal("19.00"),
    )
    charge, paid = paid_charge(event=event, **attendee)
    with transaction.atomic():
        invoice = invoice_issue(paid=paid, issued_on=dt.date(2027, 1, 10))
    return charge, invoice


def text_of(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


@pytest.mark.parametrize(
    ("first_name", "last_name"),
    [("Ada", "Lovelace"), ("Zoë", "Ødegård"), ("李", "小龙"), ("Анна", "Каренина"), ("Łukasz", "Żółć-Święty")],
)
def test_the_pdf_holds_the_attendee_the_number_and_the_amounts(first_name, last_name):
    _, invoice = invoiced(first_name=first_name, last_name=last_name, company="Ødegård & Søn <AS>")

    text = text_of(invoice_pdf(invoice))

    assert f"{first_name} {last_name}" in text
    assert "Ødegård & Søn <AS>" in text  # markup characters in names are text, not markup
    assert invoice.number in text
    assert "99.99 EUR" in text and "84.03 EUR" in text and "15.96 EUR" in text and "19.00 %" in text
    assert "MICE Events Ltd" in text and "BE0123456789" in text
    assert invoice.content["payment"]["reference"] in text
    assert "12 July 2027 \u2013 18 July 2027" in " ".join(text.split())  # the line may wrap


def test_the_pdf_embeds_fonts_with_the_glyphs_of_non_latin_names():
    _, invoice = invoiced(first_name="李", last_name="小龙")

    reader = PdfReader(io.BytesIO(invoice_pdf(invoice)))

    fonts = {str(font["/BaseFont"]) for font in reader.pages[0]["/Resources"]["/Font"].values()}
    assert any(name.endswith("+DejaVuSans") for name in fonts)
    assert any("DroidSansFallback" in name for name in fonts)  # the CJK run is set in the fallback font


def test_a_very_long_name_wraps_instead_of_running_off_the_page():
    long_name = "Maria-Magdalena Alexandra Konstantina " * 4
    _, invoice = invoiced(first_name=long_name.strip(), last_name="von Hohenzollern-Sigmaringen")

    pdf = invoice_pdf(invoice)

    text = " ".join(text_of(pdf).split())
    assert "von Hohenzollern-Sigmaringen" in text
    page = pypdfium2.PdfDocument(pdf)[0]
    right_edge = page.get_width()
    textpage = page.get_textpage()
    boxes = [textpage.get_charbox(i) for i in range(textpage.count_chars())]
    assert max(box[2] for box in boxes) < right_edge - 20  # nothing drawn in the right margin


def test_the_pdf_is_stored_once_and_regenerates_byte_for_byte():
    _, invoice = invoiced(first_name="Zoë", last_name="Ødegård 李小龙")

    first = invoice_pdf(invoice)
    again = invoice_pdf(Invoice.objects.get(pk=invoice.pk))

    assert first == again
    assert bytes(Invoice.objects.get(pk=invoice.pk).pdf) == first
    assert invoice_pdf_get(invoice_id=invoice.pk).content == first


def test_a_credit_note_pdf_names_the_invoice_it_cancels():
    charge, invoice = invoiced(first_name="Zoë", last_name="Ødegård")
    data = refunded(charge)
    with transaction.atomic():
        credit_note = credit_note_issue(refunded=data, issued_on=dt.date(2027, 2, 1))

    pdf = credit_note_pdf(credit_note)

    text = text_of(pdf)
    assert "CREDIT NOTE" in text and credit_note.number in text and invoice.number in text
    assert "Zoë Ødegård" in text and "99.99 EUR" in text and data["gateway_reference"] in text
    assert bytes(CreditNote.objects.get(pk=credit_note.pk).pdf) == pdf
    save_png(pdf, "credit-note.png")


def test_the_first_page_renders_to_an_image_a_person_can_look_at():
    _, invoice = invoiced(first_name="Zoë Ødegård", last_name="李小龙", company="Fjord Konferanse AS")

    path = save_png(invoice_pdf(invoice), "invoice.png")

    assert path.stat().st_size > 20_000


def save_png(pdf: bytes, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    image = pypdfium2.PdfDocument(pdf)[0].render(scale=2).to_pil()
    path = ARTIFACTS / name
    image.save(path)
    # not blank: the header, table and totals put plenty of dark pixels on the page
    dark = image.convert("L").point(lambda value: 255 if value < 128 else 0).histogram()[255]
    assert dark > 10_000
    return path
