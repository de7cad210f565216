"""A sandbox gateway that answers a charge only once its registration is cancelled: the slowest provider.

Workers load it through PAYMENT_GATEWAY. It makes the race between a charge in flight and the
registration's cancellation (deadline or staff) happen every time, whatever the machine's speed.
"""

from __future__ import annotations

import time
from decimal import Decimal

from invoicing.gateways import ChargeMade, ChargeResult, GatewayUnavailable, SandboxGateway
from registrations.models import Registration


class LateSandboxGateway(SandboxGateway):
    name = "sandbox"

    def charge(self, *, token: str, amount: Decimal, currency: str, idempotency_key: str) -> ChargeResult:
        deadline = time.monotonic() + 60
        print(f"late gateway: holding the charge {idempotency_key}", flush=True)
        while time.monotonic() < deadline:
            # Read committed: each query sees the cancellation once it commits.
            if Registration.objects.filter(pk=idempotency_key, status="cancelled").exists():
                break
            time.sleep(0.2)
        return super().charge(token=token, amount=amount, currency=currency, idempotency_key=idempotency_key)


class ChargesThenTimesOutGateway(SandboxGateway):
    """Charges the card, then never answers in time: every attempt's outcome is lost to the handler, whose
    transaction rolls back. What a provider timing out after charging, or a worker dying then, looks like."""

    name = "sandbox"

    def charge(self, *, token: str, amount: Decimal, currency: str, idempotency_key: str) -> ChargeResult:
        super().charge(token=token, amount=amount, currency=currency, idempotency_key=idempotency_key)
        raise GatewayUnavailable("sandbox: timed out after charging")


class ChargesThenGoesDarkGateway(ChargesThenTimesOutGateway):
    """As above, and the provider's lookup API is down too until the registration is cancelled: nothing can
    learn of the charge before the payment deadline cancels the registration."""

    def charge_made(self, *, idempotency_key: str) -> ChargeMade | None:
        if not Registration.objects.filter(pk=idempotency_key, status="cancelled").exists():
            raise GatewayUnavailable("sandbox: the provider's API is down")
        return super().charge_made(idempotency_key=idempotency_key)
