"""Whole journeys in a real browser against every process of the Procfile, a screenshot of each step.

The screenshots land in var/test-artifacts/journeys/<journey>/NN-step.png, for a person to look at.
"""

from __future__ import annotations

import io
import re
import shutil
import time
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pypdf
import pypdfium2
import pytest
from django.contrib.auth.models import User
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.e2e.test_pages import STATUS_PAGE, fill_form, mark_document, status_badge, submit
from tests.factories import make_event
from tests.processes import ROOT, ProcfileProcesses, free_port, procfile_command, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

JOURNEYS = ROOT / "var" / "test-artifacts" / "journeys"
PATIENCE = 90_000  # ms: a worker's start, a charge, retries and the dead-letter recorder, on a busy machine
# Production's switch, over plain http:// on the loopback (tests.settings keeps the probe app installed).
AS_PRODUCTION = {"DEBUG": "0"}
# What each process of the Procfile logs once it is up.
READY = {
    "relay": "relay connected",
    "worker": "ready.",
    "recorder": "dead-letter recorder started",
    "scheduler": "upkeep started",
}
WIDE = {"width": 1600, "height": 900}  # staff's screen: admin's timeline is a wide table


class Journey:
    """Numbers the screenshots of one journey's steps, in a folder emptied first (no stale step survives)."""

    def __init__(self, page: Page, name: str) -> None:
        self.page = page
        self.folder = JOURNEYS / name
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.steps = 0

    def path(self, step: str) -> Path:
        self.steps += 1
        return self.folder / f"{self.steps:02d}-{step}.png"

    def screenshot(self, step: str) -> None:
        """The whole page of whoever is on the journey now (an attendee, then a member of staff)."""
        self.page.screenshot(path=str(self.path(step)), full_page=True)


def start_the_procfile(system: ProcfileProcesses, *, but: tuple[str, ...] = (), **env: str) -> str:
    """Every process of the Procfile from its own line (except those in `but`); returns the web's base URL.

    The site's own URL is set as a deployment sets it: the links the pages and e-mails give (the invoice's)
    are absolute.
    """
    system.collect_static()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**AS_PRODUCTION, "MICE_SITE_URL": base_url, **env}
    web = system.start("web", ["/bin/sh", "-c", procfile_command("web")], PORT=str(port), **env)
    started = [
        system.start(name, ["/bin/sh", "-c", procfile_command(name)], **env) for name in READY if name not in but
    ]
    wait_until(lambda: answers(f"{base_url}/healthz") or not web.alive(), timeout=60, what="the web process")
    assert web.alive(), web.log()
    for process in started:
        process.wait_for_log(READY[process.name], timeout=60)
    return base_url


def start_the_worker(system: ProcfileProcesses, base_url: str) -> None:
    worker = system.start(
        "worker", ["/bin/sh", "-c", procfile_command("worker")], **AS_PRODUCTION, MICE_SITE_URL=base_url
    )
    worker.wait_for_log(READY["worker"], timeout=60)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def listed_event(page: Page, name: str) -> Locator:
    return page.locator("li.event", has=page.get_by_role("heading", name=name))


def open_in_admin(page: Page, base_url: str, reference: str) -> None:
    """A registration's change page, found as staff find it: by its reference, in the registrations' search."""
    page.goto(f"{base_url}/admin/registrations/registration/")
    page.locator("#searchbar").fill(reference)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=reference).click()
    expect(page.locator("table.saga")).to_be_visible()


def reload_until(page: Page, shown: Callable[[], bool], what: str, timeout: float = PATIENCE / 1000) -> None:
    """Admin pages do not update themselves: staff reload them, as this does, until `shown()` holds."""
    deadline = time.monotonic() + timeout
    while not shown():
        if time.monotonic() > deadline:
            raise AssertionError(f"not shown after {timeout}s of reloading: {what}\n{page.inner_text('body')}")
        time.sleep(0.5)
        page.reload()


def register_on_the_form(page: Page, journey: Journey, base_url: str, event_name: str, payment: str) -> None:
    """From the list of upcoming events to the status page, through the HTML form."""
    page.goto(f"{base_url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Upcoming events")
    expect(listed_event(page, event_name)).to_be_visible()
    journey.screenshot("upcoming-events")
    listed_event(page, event_name).get_by_role("link", name="Register").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(event_name)
    fill_form(page, company="Analytical Engines", payment=payment)
    journey.screenshot("form-filled")
    submit(page)
    expect(page).to_have_url(STATUS_PAGE)


def test_an_attendee_pays_watches_the_confirmation_and_downloads_the_invoice(page: Page, system: ProcfileProcesses):
    journey = Journey(page, "attendee-pays-and-downloads-the-invoice")
    # given: the Procfile's processes, the worker to come once the attendee is on the status page
    base_url = start_the_procfile(system, but=("worker",))
    make_event(name="Community Meetup", capacity=30, price=Decimal("0"))
    make_event(name="Cloud Summit 2027", capacity=50, price=Decimal("350.00"))

    # when: an attendee picks the paid conference and registers with the Visa test card
    register_on_the_form(page, journey, base_url, "Cloud Summit 2027", "Visa test card — succeeds")

    # then: the status page says pending, and turns confirmed by itself once the worker runs the saga
    expect(status_badge(page)).to_have_text("pending")
    journey.screenshot("status-pending")
    navigations = mark_document(page)
    start_the_worker(system, base_url)
    expect(status_badge(page)).to_have_text("confirmed", timeout=PATIENCE)
    expect(page.locator("#status-message")).to_contain_text("Your registration is confirmed")
    journey.screenshot("status-confirmed")
    link = page.get_by_role("link", name=re.compile(r"^Download invoice \S+ \(PDF\)$"))
    expect(link).to_be_visible(timeout=PATIENCE)
    assert page.evaluate("window.__sameDocument") == "yes" and navigations == []
    journey.screenshot("invoice-link-shown")
    shown_number = re.fullmatch(r"Download invoice (\S+) \(PDF\)", link.inner_text().strip())
    assert shown_number
    number = shown_number.group(1)

    # and the link downloads the invoice: a PDF, as an attachment, with the number the page showed
    href = link.get_attribute("href")
    assert href
    answer = page.request.get(href)
    assert answer.status == 200 and answer.headers["content-type"] == "application/pdf"
    assert re.match(r'attachment; filename="[^"]+\.pdf"$', answer.headers["content-disposition"])
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename.endswith(".pdf")
    pdf = Path(download.path()).read_bytes()
    assert pdf.startswith(b"%PDF-")
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    reference = page.locator("dt:has-text('Reference') + dd").inner_text().strip()
    for shown in (number, "Ada Lovelace", "Cloud Summit 2027", "350.00 EUR", reference):
        assert shown in text, f"{shown!r} not in the invoice"
    # the downloaded invoice as the attendee's PDF reader shows it
    pypdfium2.PdfDocument(pdf)[0].render(scale=1.5).to_pil().save(journey.path("invoice-pdf"))


def test_an_attendee_whose_card_is_declined_sees_the_registration_cancelled_and_why(
    page: Page, system: ProcfileProcesses
):
    journey = Journey(page, "attendee-card-declined")
    # given: the Procfile's processes, the worker to come once the attendee is on the status page
    base_url = start_the_procfile(system, but=("worker",))
    make_event(name="Cloud Summit 2027", capacity=50, price=Decimal("350.00"))

    # when: an attendee registers with a card the gateway declines
    register_on_the_form(page, journey, base_url, "Cloud Summit 2027", "Declined card")
    expect(status_badge(page)).to_have_text("pending")
    journey.screenshot("status-pending")
    navigations = mark_document(page)
    start_the_worker(system, base_url)

    # then: the page turns cancelled by itself and says why, in words
    expect(status_badge(page)).to_have_text("cancelled", timeout=PATIENCE)
    expect(page.locator("#status-message")).to_have_text(
        "Your card was declined, so the registration was cancelled and the seat released."
    )
    expect(page.get_by_role("link", name="Register again")).to_be_visible()
    assert page.evaluate("window.__sameDocument") == "yes" and navigations == []
    journey.screenshot("status-cancelled-with-reason")


def test_staff_replay_a_dead_letter_from_admin_and_see_the_saga_complete(
    page: Page, new_context: Callable[..., BrowserContext], system: ProcfileProcesses, tmp_path: Path
):
    journey = Journey(page, "staff-replay-a-dead-letter")
    # given: every process of the Procfile, with a handler of the saga whose outside system is down
    fault = tmp_path / "attendee-export-is-down"
    fault.touch()
    base_url = start_the_procfile(system, MICE_PROBE_FAULT_FILE=str(fault))
    make_event(name="Cloud Summit 2027", capacity=50, price=Decimal("350.00"))
    User.objects.create_superuser("organiser", "organiser@example.com", "a-long-password")

    # and: an attendee whose registration is confirmed while that handler fails
    register_on_the_form(page, journey, base_url, "Cloud Summit 2027", "Visa test card — succeeds")
    expect(status_badge(page)).to_have_text("confirmed", timeout=PATIENCE)
    journey.screenshot("attendee-confirmed")
    reference = page.locator("dt:has-text('Reference') + dd").inner_text().strip()

    # when: a member of staff, in a browser of their own, signs in to admin
    staff = new_context(viewport=WIDE).new_page()
    journey.page = staff
    staff.goto(f"{base_url}/admin/")
    staff.get_by_label("Username").fill("organiser")
    staff.get_by_label("Password").fill("a-long-password")
    journey.screenshot("admin-login")
    staff.get_by_role("button", name="Log in").click()
    expect(staff.get_by_role("link", name="Dead letters").first).to_be_visible()
    journey.screenshot("admin-index")

    # then: the dead letters page lists the failed handler, once its retries ran out, with its error
    staff.get_by_role("link", name="Dead letters").first.click()
    staff.locator("#toggle-nav-sidebar").click()  # room for the wide tables
    letter = staff.locator("#result_list tbody tr").filter(has_text="tests.probe.export_attendee")
    reload_until(staff, lambda: letter.count() == 1, "the dead letter of tests.probe.export_attendee")
    expect(letter).to_contain_text("registration.confirmed")
    expect(letter).to_contain_text("FlakyError")
    expect(letter).to_contain_text("the attendee export is down")
    expect(letter.locator("td.field-status")).to_have_text("new")
    journey.screenshot("dead-letter-listed")

    # and the registration's timeline shows it dead-lettered
    open_in_admin(staff, base_url, reference)
    probe = staff.locator(".handler-outcomes li", has_text="tests.probe.export_attendee").first
    expect(probe).to_contain_text(re.compile(r"^dead-lettered tests\.probe\.export_attendee"))
    expect(probe).to_contain_text(re.compile(r"dead letter #\d+ \(new\)"))
    journey.screenshot("timeline-dead-lettered")

    # when: the fault is cleared, and staff replay the dead letter with the admin action
    fault.unlink()
    staff.goto(f"{base_url}/admin/mice/deadletter/")
    letter.get_by_role("checkbox").check()
    staff.locator("select[name=action]").select_option(
        label="Replay selected dead letters to the handler they failed in"
    )
    journey.screenshot("replay-selected")
    staff.get_by_role("button", name="Go").click()

    # then: admin says so, and the letter is marked replayed
    expect(staff.locator(".messagelist")).to_contain_text("1 dead letter(s) replayed.")
    expect(letter.locator("td.field-status")).to_have_text("replayed")
    journey.screenshot("replayed")

    # and the registration's timeline is complete: every published event with every handler processed, the
    # letter replayed; only the payment deadline (the saga's timeout) is held, unpublished, until it is due
    open_in_admin(staff, base_url, reference)
    events = staff.locator("table.saga tr").filter(has=staff.locator(".handler-outcomes"))
    published = events.filter(has_text=re.compile(r"· published \d"))
    reload_until(
        staff,
        lambda: (
            probe.inner_text().startswith("processed tests.probe.export_attendee")
            and published.locator(".handler-outcomes li").filter(has_not_text=re.compile(r"^processed ")).count() == 0
        ),
        "every handler of every published event processed",
    )
    for event_type in ("registration.created", "payment.succeeded", "invoice.issued", "registration.confirmed"):
        expect(published.filter(has_text=event_type).first).to_be_visible()
    expect(published.filter(has_text="registration.confirmed (replay to tests.probe.export_attendee)")).to_have_count(1)
    expect(probe).to_contain_text(re.compile(r"dead letter #\d+ \(replayed\)"))
    expect(probe).to_contain_text("attempt 3 dead-lettered: FlakyError: the attendee export is down")
    held = events.filter(has_not_text=re.compile(r"· published \d"))
    expect(held).to_have_count(1)
    expect(held).to_contain_text("held until")
    expect(held).to_contain_text("registration.payment_deadline_reached")
    journey.screenshot("timeline-complete")
