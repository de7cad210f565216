"""Read-only queries other apps may use."""

from __future__ import annotations

import uuid

from invoicing.models import Charge


def charge_succeeded(*, registration_id: uuid.UUID | str) -> bool:
    """Whether the registration's charge has succeeded (committed), whatever happened to its events since."""
    return Charge.objects.filter(registration_id=registration_id, status=Charge.Status.SUCCEEDED).exists()
