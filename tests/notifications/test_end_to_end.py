"""E-mails end to end: the real relay, RabbitMQ, Celery workers, PostgreSQL and a real SMTP server process.

Every count is taken at the SMTP server, by Message-ID and recipient: what an attendee's mailbox would hold.
"""

from __future__ import annotations

import collections
import re
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from invoicing.models import Invoice
from mice.events import Envelope
from mice.models import HandlerFailure, InboxEntry, OutboxMessage
from mice.outbox import outbox_store
from notifications.models import EmailLog
from registrations.models import Registration
from registrations.services import registration_create
from tests.broker import broker_stopped
from tests.factories import make_event
from tests.notifications import smtp_sink
from tests.processes import Process, ProcfileProcesses, free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

HANDLERS = (
    "notifications.send_registration_received",
    "notifications.send_free_registration_confirmed",
    "notifications.send_paid_registration_confirmed",
    "notifications.send_registration_cancelled",
)


class Smtp:
    """The SMTP server as its own process, stopped and started again on the same port."""

    def __init__(self, system: ProcfileProcesses, out: Path) -> None:
        self.system = system
        self.port = free_port()
        self.out = out
        self.process: Process | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "tests.notifications.smtp_sink", str(self.port), str(self.out)]
        self.process = self.system.start("smtp", argv)
        self.process.wait_for_log("listening")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process = None

    def received(self) -> list[dict]:
        return smtp_sink.received(self.out)

    def env(self) -> dict[str, str]:
        return smtp_sink.client_env(self.port)


@pytest.fixture
def smtp(system, tmp_path):
    return Smtp(system, tmp_path / "smtp.jsonl")


def register(event, token, email):
    return registration_create(
        event_slug=event.slug, first_name="Ada", last_name=email.partition("@")[0], email=email, payment_token=token
    )


def copies(smtp: Smtp) -> collections.Counter:
    """How many times each (Message-ID, recipient) reached the server."""
    return collections.Counter((m["message_id"], rcpt) for m in smtp.received() for rcpt in m["rcpt_tos"])


def expected(registration: Registration, *kinds: str) -> set[tuple[str, str]]:
    return {(f"<{kind}.{registration.pk}@localhost>", registration.email) for kind in kinds}


def window_ms(smtp: Smtp) -> list[float]:
    """From the server's acceptance to the `sent` update of its row (committed right after): the window in
    which a crash would send the e-mail a second time."""
    accepted = {m["message_id"]: m["accepted_at"] for m in smtp.received()}
    rows = EmailLog.objects.filter(message_id__in=accepted, status="sent")
    return [(row.sent_at.timestamp() - accepted[row.message_id]) * 1000 for row in rows if row.sent_at]


def test_the_smtp_server_down_for_a_while_every_attendee_still_gets_each_email_exactly_once(system, smtp):
    system.worker(concurrency=4, **smtp.env())
    system.relay()
    free = make_event(price=Decimal("0"), capacity=50)
    paid = make_event(capacity=50)

    # given the SMTP server is down while attendees register
    confirmed = [register(free, "", f"free{i}@example.com") for i in range(6)]
    declined = [register(paid, "tok_chargeDeclined", f"declined{i}@example.com") for i in range(4)]
    wait_until(
        lambda: Registration.objects.filter(pk__in=[r.pk for r in declined], status="cancelled").count() == 4,
        timeout=60,
        what="the declined registrations cancelled",
    )
    wait_until(
        lambda: HandlerFailure.objects.filter(handler__in=HANDLERS, outcome="retrying").count() >= 20,
        timeout=60,
        what="every e-mail failing and parked for a retry",
    )
    time.sleep(10)  # kept down for a while: several retries each
    assert smtp.received() == []
    assert set(EmailLog.objects.values_list("status", flat=True)) == {"queued"}

    # when it comes back
    smtp.start()

    # then every attendee gets each of their e-mails, once
    want = set().union(
        *(expected(r, "received", "confirmed") for r in confirmed),
        *(expected(r, "received", "cancelled") for r in declined),
    )
    wait_until(lambda: set(copies(smtp)) >= want, timeout=120, what="every e-mail at the SMTP server")
    time.sleep(3)  # time for a stray second copy to arrive
    assert copies(smtp) == collections.Counter({key: 1 for key in want})
    subjects = {m["message_id"]: m["subject"] for m in smtp.received()}
    assert subjects[f"<confirmed.{confirmed[0].pk}@localhost>"] == f"Registration confirmed: {free.name}"
    assert subjects[f"<cancelled.{declined[0].pk}@localhost>"] == f"Registration cancelled: {paid.name}"
    assert EmailLog.objects.filter(status="sent").count() == len(want) == EmailLog.objects.count()
    assert all(row.attempts >= 2 for row in EmailLog.objects.all())  # each really tried during the outage
    print(f"\nwindow (server acceptance -> sent recorded), ms: {sorted(round(w, 1) for w in window_ms(smtp))}")
    record = [
        float(ms)
        for ms in re.findall(r"msg=\"e-mail sent\".* record_ms=([0-9.]+)", "\n".join(p.log() for p in system.processes))
    ]
    print(f"of which recording (backend returned -> committed), ms: {sorted(record)}")


def test_duplicate_deliveries_and_a_replayed_dead_letter_send_nothing_twice(system, smtp):
    smtp.start()
    system.worker(**smtp.env())
    system.relay()
    registration = register(make_event(price=Decimal("0")), "", "ada@example.com")
    want = expected(registration, "received", "confirmed")
    wait_until(lambda: set(copies(smtp)) == want, timeout=60, what="both e-mails sent")
    events = OutboxMessage.objects.filter(correlation_id=str(registration.pk))
    created = events.get(event_type="registration.created")

    # the same events delivered again (the inbox skips them) ...
    events.update(sent_at=None)
    wait_until(lambda: not events.filter(sent_at=None).exists(), what="the events published again")
    # ... and again with no inbox row left (purged, or a handler that crashed before writing it) ...
    InboxEntry.objects.filter(event_id__in=[e.event_id for e in events], handler__in=HANDLERS).delete()
    events.update(sent_at=None)
    wait_until(lambda: not events.filter(sent_at=None).exists(), what="the events published once more")
    # ... and a dead letter of the received e-mail replayed to its handler, as admin's replay does
    with transaction.atomic():
        replay = outbox_store(
            envelope=Envelope.from_dict(created.envelope), handler="notifications.send_registration_received"
        )
    wait_until(lambda: OutboxMessage.objects.get(pk=replay.pk).sent_at is not None, what="the replay published")
    wait_until(
        lambda: InboxEntry.objects.filter(event_id=created.event_id, handler=HANDLERS[0]).exists(),
        what="the replay handled",
    )
    time.sleep(2)

    assert copies(smtp) == collections.Counter({key: 1 for key in want})
    assert [row.attempts for row in EmailLog.objects.order_by("kind")] == [1, 1]


def test_a_paid_registration_gets_its_confirmation_with_the_invoice_when_the_invoice_is_issued(system, smtp):
    """Invoicing issues the invoice on payment.succeeded; its invoice.issued sends the confirmation, PDF attached."""
    smtp.start()
    system.worker(**smtp.env())
    system.relay()
    registration = register(make_event(), "tok_visa", "ada@example.com")
    wait_until(lambda: Registration.objects.get(pk=registration.pk).status == "confirmed", timeout=60)
    wait_until(lambda: Invoice.objects.filter(registration_id=registration.pk).exists(), timeout=60, what="invoice")
    invoice = Invoice.objects.get(registration_id=registration.pk)

    want = expected(registration, "received", "confirmed")
    wait_until(lambda: set(copies(smtp)) == want, timeout=60, what="received and confirmed at the SMTP server")
    time.sleep(2)
    assert copies(smtp) == collections.Counter({key: 1 for key in want})
    [confirmation] = [m for m in smtp.received() if m["message_id"].startswith("<confirmed.")]
    assert confirmation["attachments"] == [f"invoice-{invoice.number}.pdf"]


def slow_send_under_way(system: ProcfileProcesses, smtp: Smtp) -> tuple[dict[str, Any], Process, Registration]:
    """A worker sending a free registration's e-mails to a mail server that answers the data after 3 s (a
    lease of 4 s), caught once the first send is under way."""
    smtp.start()
    env: dict[str, Any] = {**smtp.env(), "MICE_EMAIL_SEND_LEASE": "4", "MICE_TEST_SMTP_SLOW": "3"}
    worker = system.worker(**env)
    system.relay()
    registration = register(make_event(price=Decimal("0")), "", "slow-ada@example.com")
    wait_until(
        lambda: EmailLog.objects.filter(registration_id=registration.pk, attempted_at__isnull=False).exists(),
        what="a send under way",
    )
    return env, worker, registration


def test_a_worker_killed_mid_send_sends_again_with_the_same_message_id_once_the_lease_expires(system, smtp):
    """The one window left: the server took the message, the worker died before recording it. The attendee
    may get a second copy, with the same Message-ID (mail clients and servers that deduplicate drop it)."""
    env, worker, registration = slow_send_under_way(system, smtp)
    time.sleep(1)  # inside the server's DATA (it answers after 3 s)
    worker.kill()
    system.worker(**env)

    want = expected(registration, "received", "confirmed")
    wait_until(
        lambda: EmailLog.objects.filter(registration_id=registration.pk, status="sent").count() == 2,
        timeout=90,
        what="both e-mails recorded as sent",
    )
    time.sleep(2)
    assert set(copies(smtp)) == want  # never another Message-ID: a copy, not a second e-mail
    rows = {row.kind: row for row in EmailLog.objects.filter(registration_id=registration.pk)}
    killed = next(kind for kind, row in rows.items() if row.attempts == 2)
    assert copies(smtp)[(f"<{killed}.{registration.pk}@localhost>", registration.email)] <= 2


@pytest.mark.faults
def test_a_worker_cut_off_from_the_broker_mid_send_finishes_the_send_and_the_attendee_gets_one_copy(system, smtp):
    """The worker loses RabbitMQ while the mail server is taking a message: the send runs to its end and is
    recorded, and the message delivered again once the broker is back sends nothing. Cutting the send short
    instead would leave a message the server took but nobody recorded, sent again once its lease ends."""
    _, worker, registration = slow_send_under_way(system, smtp)
    with broker_stopped():  # inside the server's DATA (it answers after 3 s), and for longer than the lease
        time.sleep(6)

    wait_until(
        lambda: EmailLog.objects.filter(registration_id=registration.pk, status="sent").count() == 2,
        timeout=120,
        what="both e-mails recorded as sent",
    )
    time.sleep(6)  # past the lease: a send cut short would have gone out again by now
    assert copies(smtp) == collections.Counter({key: 1 for key in expected(registration, "received", "confirmed")})
    assert worker.alive()


def test_a_recipient_refused_for_good_is_not_retried_nor_dead_lettered(system, smtp):
    smtp.start()
    system.worker(**smtp.env())
    system.relay()
    refused = register(make_event(price=Decimal("0")), "", "refused-ada@example.com")
    accepted = register(make_event(price=Decimal("0")), "", "ada@example.com")

    wait_until(
        lambda: EmailLog.objects.filter(registration_id=refused.pk, status="failed").count() == 2,
        timeout=60,
        what="both e-mails to the refused address failed",
    )
    wait_until(lambda: set(copies(smtp)) == expected(accepted, "received", "confirmed"), timeout=60)
    wait_until(
        lambda: InboxEntry.objects.filter(handler__in=HANDLERS, event_id__in=events_of(refused)).count() == 2,
        what="the refused e-mails' handlers done (acknowledged)",
    )

    assert not HandlerFailure.objects.filter(correlation_id=str(refused.pk)).exists()  # no retry, no dead letter
    assert all("550" in row.error for row in EmailLog.objects.filter(registration_id=refused.pk))


def events_of(registration: Registration) -> list:
    return list(OutboxMessage.objects.filter(correlation_id=str(registration.pk)).values_list("event_id", flat=True))
