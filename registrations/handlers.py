"""The saga's registration side: a payment outcome confirms, or cancels and gives the seat back."""

from mice.events import Envelope
from mice.handlers import RetryPolicy, retire, subscribe
from registrations.services import (
    registration_cancel,
    registration_confirm,
    registration_expire,
)

# The saga's timeout must outlast a database failover: retried for about half an hour, not seconds.
PATIENT = RetryPolicy(attempts=12, backoff=2.0, cap=300.0)


@subscribe("payment.succeeded")
def confirm_paid_registration(envelope: Envelope) -> None:
    registration_confirm(registration_id=envelope.data["registration_id"])


@subscribe("payment.failed")
def cancel_unpaid_registration(envelope: Envelope) -> None:
    """The compensation: the charge failed, so the registration is cancelled and its seat released."""
    registration_cancel(
        registration_id=envelope.data["registration_id"],
        reason=f"payment_failed:{envelope.data.get('reason', 'unknown')}",
    )


# It ran for every registration and did nothing for those made by code that sets the deadline itself (all of
# them since the deploy that introduced deadlines): one handler run in ten per paid registration. A pending
# registration left without a deadline is now given one by upkeep (registrations/upkeep.py).
retire(
    "registrations.schedule_payment_deadline",
    reason="upkeep's payment_deadlines_missing job gives a pending registration without a deadline its deadline",
)


@subscribe("registration.payment_deadline_reached", retry=PATIENT)
def cancel_registration_past_payment_deadline(envelope: Envelope) -> None:
    """The saga's timeout: no registration stays pending (and holds a seat) whatever became of its charge."""
    registration_expire(registration_id=envelope.data["registration_id"])
