"""The pages as production serves them: gunicorn started from the Procfile's own `web:` line, DEBUG off."""

import re
import secrets
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from registrations.models import Registration
from tests.e2e.test_pages import SAGA_TIMEOUT, STATUS_PAGE, fill_form, mark_document, status_badge, submit
from tests.factories import make_event

pytestmark = pytest.mark.django_db(transaction=True)

# The production settings, over plain http:// on the loopback (what scripts/run sets for a local run).
PRODUCTION_OVER_HTTP = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "SECURE_SSL_REDIRECT": "0",
    "SESSION_COOKIE_SECURE": "0",
    "CSRF_COOKIE_SECURE": "0",
}
HASHED = r"\.[0-9a-f]{12}\."


def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()


def static_urls(base_url: str, page_path: str, pattern: str) -> list[str]:
    """The static files a page links to whose names match the pattern (hashed names are part of it)."""
    _, _, html = get(base_url + page_path)
    return sorted(set(re.findall(rf'(?:href|src)="(/static/[^"?]*{pattern}[^"?]*)"', html.decode())))


def test_the_status_page_updates_itself_and_is_styled_under_gunicorn(page: Page, system):
    # given: the real web process, its relay and worker, and a paid event
    base_url = system.procfile_web(**PRODUCTION_OVER_HTTP)
    event = make_event(name="Cloud Summit", capacity=10)

    # when: an attendee registers through the form
    page.goto(f"{base_url}/events/{event.slug}/register/")
    expect(page.locator("body")).to_have_css("background-color", "rgb(245, 246, 248)")  # site.css applied
    fill_form(page, payment="Visa test card — succeeds")
    submit(page)
    expect(page).to_have_url(STATUS_PAGE)
    expect(status_badge(page)).to_have_text("pending")
    navigations = mark_document(page)
    system.worker()
    system.relay()

    # then: the page's own script follows the saga to "confirmed", without a reload
    expect(status_badge(page)).to_have_text("confirmed", timeout=SAGA_TIMEOUT)
    assert page.evaluate("window.__sameDocument") == "yes" and navigations == []
    script = page.locator("script[src*='status']").get_attribute("src")
    assert script and re.search(rf"/static/registrations/status{HASHED}js$", script), script
    assert Registration.objects.get().status == "confirmed"


@pytest.mark.parametrize(
    ("page_path", "asset"),
    [
        ("/", rf"registrations/site{HASHED}css"),
        ("/admin/login/", rf"admin/css/base{HASHED}css"),
        ("/api/docs/", rf"swagger-ui-bundle{HASHED}js"),
        ("/api/docs/", rf"swagger-ui{HASHED}css"),
    ],
)
def test_static_files_answer_with_hashed_names_compressed_and_cached_for_good(system, page_path, asset):
    base_url = system.procfile_web(**PRODUCTION_OVER_HTTP)

    urls = static_urls(base_url, page_path, asset)

    assert len(urls) == 1, f"{page_path} links to no {asset}"
    plain_status, plain_headers, plain_body = get(base_url + urls[0])
    assert plain_status == 200 and len(plain_body) > 100
    assert "immutable" in plain_headers["cache-control"]  # a hashed name never changes its content
    for encoding in ("gzip", "br"):
        status, headers, body = get(base_url + urls[0], **{"Accept-Encoding": encoding})
        assert status == 200
        assert headers.get("content-encoding") == encoding
        assert len(body) < len(plain_body)
