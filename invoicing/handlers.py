"""The saga's payment side."""

from invoicing.gateways import GatewayUnavailable
from invoicing.services import ChargeInFlight, charge_create, refund_create
from mice.consumers import RetryPolicy, subscribe
from mice.events import Event


# Both call the gateway, so both commit their own steps (atomic=False): the attempt before the call, the
# outcome after it.
@subscribe(
    "registration.created",
    retry=RetryPolicy(transient=(GatewayUnavailable,), attempts=8, backoff=1.0, cap=60.0),
    atomic=False,
)
def charge_registration(event: Event) -> None:
    charge_create(registration=event.data)


@subscribe(
    "registration.cancelled",
    retry=RetryPolicy(transient=(GatewayUnavailable, ChargeInFlight), attempts=10, backoff=1.0, cap=300.0),
    atomic=False,
)
def refund_cancelled_registration(event: Event) -> None:
    """Learns of cancellations only through this event: refund a charge made, void one still to come."""
    refund_create(cancelled=event.data)
