"""The web registration form: attendee details, the sandbox payment choice and the submission token."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.http import QueryDict

from registrations.models import Event
from registrations.validators import validate_single_line_text

# The sandbox gateway's test tokens (Stripe's names); a real gateway would put its card widget here.
TEST_PAYMENT_CHOICES = [
    ("tok_visa", "Visa test card — succeeds"),
    ("tok_chargeDeclined", "Declined card"),
    ("tok_flaky", "Flaky gateway — fails twice, then succeeds"),
]


class _SingleLineField(forms.CharField):
    def to_python(self, value: Any) -> str:
        # Validate what was sent, not what is left after stripping: "Ann\r\n" is refused too.
        raw = "" if value in self.empty_values else str(value)
        validate_single_line_text(raw)
        return str(super().to_python(value))


class RegistrationForm(forms.Form):
    """One attendee for one event. Free events have no payment field."""

    first_name = _SingleLineField(
        label="First name", max_length=100, widget=forms.TextInput(attrs={"autocomplete": "given-name"})
    )
    last_name = _SingleLineField(
        label="Last name", max_length=100, widget=forms.TextInput(attrs={"autocomplete": "family-name"})
    )
    email = forms.EmailField(label="E-mail", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    company = _SingleLineField(
        label="Company",
        max_length=200,
        required=False,
        help_text="Printed on your invoice.",
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )
    payment_token = forms.ChoiceField(
        label="Payment method",
        choices=TEST_PAYMENT_CHOICES,
        widget=forms.RadioSelect,
        help_text="No real card is charged: pick how the sandbox payment gateway should behave.",
        error_messages={"required": "Choose a payment method."},
    )
    # Identifies this rendering of the form: a double click or back-and-resubmit reuses it, so the
    # server answers the second POST with the first one's result instead of registering twice.
    submission_token = forms.UUIDField(
        widget=forms.HiddenInput,
        error_messages={
            "required": "This form has expired. Please check your details and submit again.",
            "invalid": "This form has expired. Please check your details and submit again.",
        },
    )

    def __init__(self, *args: Any, event: Event, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {}).setdefault("submission_token", uuid.uuid4())
        super().__init__(*args, **kwargs)
        self.event = event
        if event.is_free:
            del self.fields["payment_token"]
            self.fields["company"].help_text = ""  # no invoice for a free event

    def renew_submission_token(self) -> None:
        """Give a re-rendered form a fresh token (the one it came with was missing or malformed)."""
        if self.is_bound:
            data = self.data.copy() if isinstance(self.data, QueryDict) else dict(self.data)
            data["submission_token"] = str(uuid.uuid4())
            self.data = data

    def registration_data(self) -> dict[str, str]:
        """The cleaned attendee and payment data: the arguments of registration_create and the fingerprint."""
        data = self.cleaned_data
        return {
            "event_slug": self.event.slug,
            "first_name": data["first_name"],
            "last_name": data["last_name"],
            "email": data["email"],
            "company": data["company"],
            "payment_token": data.get("payment_token", ""),
        }
