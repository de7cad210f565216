"""Give every registration pending at the deploy its payment deadline: without one, a registration whose charge
dead-lettered would stay pending, holding its seat, for ever. The deadline event is written to the outbox as
`registration_create` writes it, held until the registration's due time (now + the event's deadline)."""

import datetime as dt
import uuid

from django.db import migrations
from django.utils import timezone


def forwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    Registration = apps.get_model("registrations", "Registration")
    OutboxMessage = apps.get_model("mice", "OutboxMessage")
    now = timezone.now()
    pending = Registration.objects.filter(status="pending", payment_due_at__isnull=True).select_related("event")
    for registration in pending.iterator():
        due = now + dt.timedelta(seconds=registration.event.payment_deadline_seconds)
        Registration.objects.filter(pk=registration.pk, payment_due_at__isnull=True).update(payment_due_at=due)
        event_id, subject = str(uuid.uuid4()), str(registration.pk)
        OutboxMessage.objects.create(
            event_id=event_id,
            event_type="registration.payment_deadline_reached",
            correlation_id=subject,
            available_at=due,
            envelope={
                "specversion": "1.0",
                "id": event_id,
                "type": "registration.payment_deadline_reached",
                "source": "registrations",
                "subject": subject,
                "time": now.isoformat(),
                "datacontenttype": "application/json",
                "dataschemaversion": 1,
                "correlationid": subject,
                "data": {"registration_id": subject, "payment_due_at": due.isoformat()},
            },
        )


class Migration(migrations.Migration):
    dependencies = [("registrations", "0004_payment_deadline"), ("mice", "0004_outbox_due_index")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
