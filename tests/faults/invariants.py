"""What every fault test checks once the system has drained: no registration, charge, invoice or e-mail lost
or doubled, and nothing left pending in the outbox."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Mapping

from django.utils import timezone

from invoicing.gateways import SandboxGateway
from invoicing.models import Invoice
from mice.models import OutboxMessage
from registrations.models import Registration


@dataclasses.dataclass(frozen=True)
class Expected:
    """How one registration must end: its status, and whether it was charged (then invoiced) for it."""

    registration: Registration
    status: str
    paid: bool


def saga_invariants(expected: Iterable[Expected], e_mails: Mapping[str, list[str]], *, extra_copies: int = 0) -> dict:
    """Assert the saga's invariants over every registration of a fault test, and return the figures checked.

    `e_mails` holds the kinds of e-mail ("received", "confirmed", "cancelled") each recipient got, a copy
    accepted twice counted twice; at most `extra_copies` copies beyond one per kind are tolerated (each needs
    a fault between the mail server's acceptance and the commit of "sent"; the Message-ID stays the same).
    """
    expected = list(expected)
    gateway = SandboxGateway()
    wrong = []
    charges: collections.Counter[int] = collections.Counter()
    copies = 0
    for item in expected:
        registration = Registration.objects.get(pk=item.registration.pk)
        charged = len(gateway.charges_made(idempotency_key=str(registration.pk)))
        invoiced = Invoice.objects.filter(registration_id=registration.pk).count()
        kinds = e_mails.get(registration.email, [])
        copies += len(kinds) - len(set(kinds))
        # ended as its token dictates, exactly one charge and one invoice if paid (none if not), one e-mail of
        # each kind: "received", then "confirmed" or "cancelled"
        if (registration.status, charged, invoiced, sorted(set(kinds))) != (
            item.status,
            int(item.paid),
            int(item.paid),
            sorted({"received", item.status}),
        ):
            wrong.append((registration.email, registration.status, item.status, charged, invoiced, kinds))
        charges[charged] += 1
    assert wrong == [], wrong
    assert copies <= extra_copies, f"{copies} e-mails accepted twice, for {extra_copies} faults that can cause one"

    # invoices numbered without a gap, one per paid registration and no other
    numbers = sorted(int(number.rsplit("-", 1)[1]) for number in Invoice.objects.values_list("number", flat=True))
    assert numbers == list(range(1, sum(item.paid for item in expected) + 1))

    # no due outbox row left unsent
    due_unsent = OutboxMessage.objects.filter(sent_at__isnull=True, available_at__lte=timezone.now()).count()
    assert due_unsent == 0
    return {
        "registrations": dict(collections.Counter(item.status for item in expected)),
        "charges per registration": dict(charges),
        "invoices": len(numbers),
        "e-mails accepted": sum(len(kinds) for kinds in e_mails.values()),
        "e-mails accepted twice (same Message-ID)": copies,
    }
