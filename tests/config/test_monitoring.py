"""/healthz, /readyz and /metrics as a load balancer and Prometheus see them; JSON 404s under /api/."""

import concurrent.futures
import datetime as dt
import re
import time
import urllib.request

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.utils import timezone

from mice.models import DeadLetter, OutboxMessage
from mice.outbox import emit
from tests.factories import make_event
from tests.processes import free_port, wait_until
from tests.registrations.test_saga import post_registration

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def live_broker(settings, broker_url):
    settings.CELERY_BROKER_URL = broker_url


def test_healthz_answers_json():
    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_200_when_the_database_and_broker_answer_and_the_outbox_keeps_up(live_broker):
    response = Client().get("/readyz")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "broker": True,
        "outbox": True,
    }
    assert body["checks"]["outbox"]["pending"] == 0


def test_readyz_is_503_naming_the_outbox_when_an_event_waits_longer_than_the_threshold(live_broker, settings):
    # given: an event due two minutes ago that nobody relayed
    settings.MICE_READY_MAX_OUTBOX_LAG = 60
    with transaction.atomic():
        envelope = emit("probe.pinged", subject="s", data={})
    OutboxMessage.objects.filter(event_id=envelope.id).update(available_at=timezone.now() - dt.timedelta(minutes=2))

    response = Client().get("/readyz")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["outbox"]["ok"] is False and "limit 60 s" in checks["outbox"]["error"]
    assert checks["database"]["ok"] and checks["broker"]["ok"]


def test_readyz_ignores_events_held_until_later(live_broker):
    with transaction.atomic():
        emit("probe.pinged", subject="s", data={}, deliver_at=timezone.now() + dt.timedelta(hours=1))

    assert Client().get("/readyz").status_code == 200


def test_readyz_is_503_naming_the_broker_when_it_does_not_answer_and_answers_in_time(settings):
    settings.CELERY_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{free_port()}//"

    started = time.monotonic()
    response = Client().get("/readyz")

    assert time.monotonic() - started < 5
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"]["ok"] is False and checks["broker"]["error"]
    assert checks["database"]["ok"] is True


def test_readyz_is_200_when_one_node_of_a_broker_url_list_answers(settings, broker_url):
    dead = [f"amqp://guest:guest@127.0.0.1:{free_port()}//" for _ in range(2)]
    settings.CELERY_BROKER_URL = ";".join([*dead, broker_url])

    response = Client().get("/readyz")

    assert response.status_code == 200, response.content


def test_readyz_and_healthz_are_not_redirected_to_https(settings, live_broker):
    settings.SECURE_SSL_REDIRECT = True

    assert Client().get("/readyz").status_code == 200
    assert Client().get("/healthz").status_code == 200
    assert Client().get("/api/events/").status_code == 301


def test_metrics_are_refused_to_a_remote_client_without_the_token():
    response = Client(REMOTE_ADDR="203.0.113.7").get("/metrics")

    assert response.status_code == 401
    assert "mice_" not in response.content.decode()


def test_metrics_are_served_to_the_loopback_when_no_token_is_set():
    response = Client().get("/metrics")  # the test client's REMOTE_ADDR is 127.0.0.1

    assert response.status_code == 200
    assert "mice_outbox_pending_rows 0.0" in response.content.decode()


def test_metrics_with_a_token_need_it_even_from_the_loopback(settings):
    settings.MICE_METRICS_TOKEN = "tok-" + "x" * 40
    remote = Client(REMOTE_ADDR="203.0.113.7")

    assert remote.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert Client().get("/metrics").status_code == 401
    response = remote.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.MICE_METRICS_TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")


def test_metrics_are_served_to_a_staff_session():
    staff = Client(REMOTE_ADDR="203.0.113.7")
    staff.force_login(User.objects.create_user("ops", password="pw", is_staff=True))
    clerk = Client(REMOTE_ADDR="203.0.113.7")
    clerk.force_login(User.objects.create_user("clerk", password="pw"))

    assert staff.get("/metrics").status_code == 200
    assert clerk.get("/metrics").status_code == 401


def test_metrics_show_the_outbox_backlog_and_its_lag():
    with transaction.atomic():
        envelope = emit("probe.pinged", subject="s", data={})
    OutboxMessage.objects.filter(event_id=envelope.id).update(available_at=timezone.now() - dt.timedelta(seconds=30))

    text = Client().get("/metrics").content.decode()

    assert "mice_outbox_pending_rows 1.0" in text
    lag = float(re.search(r"^mice_outbox_lag_seconds (\S+)$", text, re.M).group(1))
    assert 29 <= lag < 120
    assert 'mice_events_emitted_total{event_type="probe.pinged"}' in text


@pytest.mark.parametrize("debug", [False, True], ids=["production", "DEBUG=1 (scripts/run)"])
@pytest.mark.parametrize("path", ["/api/nope", "/api/nope/", "/api/registrations/x/y/z", "/api/events/a/b/"])
def test_unknown_paths_under_api_answer_a_json_404(path, debug, settings):
    settings.DEBUG = debug

    response = Client().get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize("debug", [False, True], ids=["production", "DEBUG=1 (scripts/run)"])
def test_a_known_api_path_without_its_slash_still_redirects_to_it(debug, settings):
    settings.DEBUG = debug
    settings.SECURE_SSL_REDIRECT = False

    response = Client().get("/api/events/?page=2".replace("/?", "?"))

    assert response.status_code == 301
    assert response["Location"] == "/api/events/?page=2"
    posted = Client().post("/api/registrations", {}, content_type="application/json")
    assert posted.status_code == 308 and posted["Location"] == "/api/registrations/"  # a POST stays a POST


def test_unknown_paths_elsewhere_answer_the_html_404_page():
    response = Client().get("/nope/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def test_gunicorn_workers_count_together_whichever_worker_answers_the_scrape(system, tmp_path):
    # given: gunicorn as the Procfile runs it (two workers, --preload), and registrations taken by both workers
    base_url = system.procfile_web(TMPDIR=str(tmp_path))
    event = make_event(capacity=100)

    def register(i: int) -> int:
        status, _ = post_registration(
            base_url,
            {
                "event": event.slug,
                "first_name": "Attendee",
                "last_name": str(i),
                "email": f"attendee{i}@example.com",
                "payment_token": "tok_visa",
            },
            headers={"Connection": "close"},  # a new connection each time, taken by whichever worker accepts it
        )
        return status

    def counted_by() -> set[str]:
        return {path.name for path in tmp_path.glob("mice-metrics-web-*/counter_*.db")}

    # Sequential requests can all land on one worker (the one that just answered accepts again first): send
    # them eight at a time until both workers have counted some.
    registered = 0
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        while len(counted_by()) < 2 and registered < 64:
            assert list(pool.map(register, range(registered, registered + 8))) == [202] * 8
            registered += 8
    assert len(counted_by()) == 2, counted_by()  # both workers counted some

    # when: Prometheus scrapes it several times, each answered by either worker
    pattern = re.compile(r'^mice_events_emitted_total\{event_type="registration.created"\} (\S+)$', re.M)
    totals = {float(pattern.search(scrape(f"{base_url}/metrics")).group(1)) for _ in range(10)}

    # then: every answer is the sum over the workers
    assert totals == {float(registered)}

    # and gunicorn removes its folder of counts when it stops
    system.stop_all()  # the shell of the Procfile line ends at once; gunicorn a moment later
    wait_until(lambda: not list(tmp_path.glob("mice-metrics-web-*")), timeout=30, what="the folder removed")


def test_metrics_show_dead_letters_waiting_per_handler_of_this_code_only():
    DeadLetter.objects.create(key="a", handler="tests.probe.always_fails")
    DeadLetter.objects.create(key="b", handler="tests.probe.always_fails")
    DeadLetter.objects.create(key="c", handler="tests.probe.always_fails", status=DeadLetter.Status.REPLAYED)
    DeadLetter.objects.create(key="d", handler="jane.doe@example.com")  # whatever a forged message named

    text = Client().get("/metrics").content.decode()

    assert 'mice_dead_letters_waiting{handler="tests.probe.always_fails"} 2.0' in text
    assert 'mice_dead_letters_waiting{handler="other"} 1.0' in text
    assert "example.com" not in text
