"""Figures per event, from registration and payment events."""

from decimal import Decimal

from analytics.services import figures_add
from mice.consumers import subscribe
from mice.events import Event


@subscribe("registration.created")
def count_registration(event: Event) -> None:
    figures_add(event=event.data["event"], registrations=1)


@subscribe("registration.confirmed")
def count_confirmation(event: Event) -> None:
    figures_add(event=event.data["event"], confirmed=1)


@subscribe("registration.cancelled")
def count_cancellation(event: Event) -> None:
    figures_add(event=event.data["event"], cancelled=1, confirmed=-1 if event.data.get("was_confirmed") else 0)


@subscribe("payment.succeeded")
def count_revenue(event: Event) -> None:
    figures_add(event=event.data["event"], currency=event.data["currency"], revenue=Decimal(event.data["amount"]))


@subscribe("payment.refunded")
def count_refund(event: Event) -> None:
    figures_add(event=event.data["event"], revenue=-Decimal(event.data["amount"]))
