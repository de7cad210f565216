"""Static files during a deploy: new web processes start beside old ones, over the same STATIC_ROOT."""

import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def status_of(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), b""


def test_a_file_collected_after_the_web_process_started_is_served_by_it(system, static_root):
    # given: a web process of the running release
    base_url = system.web()
    # when: the next release collects its files (new hashed names) into the same STATIC_ROOT, and a page
    # rendered by one of its processes names one, which the browser asks of the old process
    added = static_root / "registrations" / "site.0123456789ab.css"
    added.write_text("body { color: #123456 }")
    try:
        status, body = status_of(f"{base_url}/static/registrations/site.0123456789ab.css")
        missing, _ = status_of(f"{base_url}/static/registrations/site.ba9876543210.css")
    finally:
        added.unlink()

    # then
    assert status == 200 and body == b"body { color: #123456 }"
    assert missing == 404
