"""The database drops every connection again and again: careful clients still get every registration in."""

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter

import psycopg2
import pytest
from django.db import connection

from registrations.models import Event, Registration
from tests.factories import make_event

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]

ATTEMPTS = 8


def post(base_url: str, payload: dict, key: str) -> int:
    request = urllib.request.Request(
        f"{base_url}/api/registrations/",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Idempotency-Key": key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


class ConnectionKiller(threading.Thread):
    """Terminates every connection to this test run's database (and no other) every `interval` seconds."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        settings = connection.settings_dict
        self.database = settings["NAME"]
        self.dsn = {"host": settings["HOST"] or "127.0.0.1", "port": settings["PORT"] or 5432, "user": settings["USER"]}
        self.interval = interval
        self.stopping = threading.Event()
        self.terminated = 0

    def run(self) -> None:
        killer = psycopg2.connect(dbname="postgres", **self.dsn)
        killer.autocommit = True
        try:
            while not self.stopping.wait(self.interval):
                with killer.cursor() as cursor:
                    cursor.execute(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()",
                        [self.database],
                    )
                    self.terminated += cursor.fetchone()[0]
        finally:
            killer.close()


def test_thirty_careful_clients_all_get_registered_while_connections_are_killed_every_2_s(system):
    # given: gunicorn, an event, and every connection to our database terminated every 2 s
    base_url = system.web()
    event = make_event(capacity=40)
    answers: Counter[int] = Counter()
    accepted: list[str] = []
    killer = ConnectionKiller(interval=2.0)

    def careful_client(numbers: range) -> None:
        """Retries the same request with the same Idempotency-Key, with exponential backoff."""
        for n in numbers:
            key = str(uuid.uuid4())
            payload = {
                "event": event.slug,
                "first_name": "Attendee",
                "last_name": str(n),
                "email": f"attendee{n}@example.com",
                "payment_token": "tok_visa",
            }
            for attempt in range(ATTEMPTS):
                status = post(base_url, payload, key)
                answers[status] += 1
                if status == 202:
                    accepted.append(key)
                    break
                time.sleep(0.2 * 2**attempt)
            time.sleep(1.0)  # spread the registrations over several rounds of killed connections

    # when: 30 registrations from 3 clients, over about 12 s
    killer.start()
    clients = [threading.Thread(target=careful_client, args=(range(i, 30, 3),)) for i in range(3)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    killer.stopping.set()
    killer.join()
    connection.close()  # ours was terminated too

    # then
    assert killer.terminated > 0
    assert answers[500] == 0, f"answers: {dict(answers)}"
    assert len(accepted) == 30, f"answers: {dict(answers)}"
    assert Event.objects.get(pk=event.pk).seats_taken == 30
    assert Registration.objects.filter(event_id=event.pk).count() == 30
