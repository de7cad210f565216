"""The registrations resource: POST /api/registrations/ (idempotent, rate-limited) and its status resource."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from ratelimits.clients import client_address
from ratelimits.rules import Scope
from ratelimits.services import Verdict, rate_limit_hit, rate_limit_release
from registrations.apis.conventions import (
    FIELD_ERRORS,
    NOT_FOUND,
    RETRY_AFTER,
    ClosedInputSerializer,
    EmailTextField,
    PublicApi,
    RateLimited,
    RefusalSerializer,
    SlugTextField,
    TextField,
    rate_limited_answer,
)
from registrations.idempotency import IdempotencyKeyReused, fingerprint, idempotent_answer_stored, idempotent_call
from registrations.models import Registration
from registrations.refusals import refusal_message
from registrations.selectors import registration_get
from registrations.services import RegistrationRefused, registration_cancel, registration_create
from registrations.signals import registration_documents_get

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}\Z")  # visible ASCII, as header values should be

# Refusals that are really about the input: a 400 on the field, and the Idempotency-Key is not used up.
_FIELD_REFUSALS = {"unknown_event": "event", "payment_required": "payment_token"}


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_KEY_HEADER)
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.match(key):
        raise serializers.ValidationError(
            {IDEMPOTENCY_KEY_HEADER: ["Use 1 to 255 visible ASCII characters, e.g. a UUID."]}, code="invalid"
        )
    return key


def _take_back(verdict: Verdict | None) -> None:
    """Only requests that registered someone or were refused (409) count against the registration limit."""
    if verdict is not None:
        rate_limit_release(verdict=verdict)


class RegistrationCreateApi(PublicApi):
    class InputSerializer(ClosedInputSerializer):
        """An attendee. Unknown fields (e.g. `status`) are refused; names are one line of any script."""

        event = SlugTextField(max_length=100, help_text="The event's slug")
        first_name = TextField(max_length=100)
        last_name = TextField(max_length=100)
        email = EmailTextField(max_length=254)
        company = TextField(max_length=200, required=False, allow_blank=True, default="")
        payment_token = TextField(
            max_length=100,
            required=False,
            allow_blank=True,
            default="",
            help_text="A payment gateway token (never card data); required for a paid event",
        )

        class Meta:
            ref_name = "RegistrationCreateInput"

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        status = serializers.ChoiceField(choices=Registration.Status.choices, help_text='"confirmed" for a free event')
        status_url = serializers.URLField(help_text="Where to follow the registration (GET)")

        class Meta:
            ref_name = "RegistrationAccepted"

    @extend_schema(
        operation_id="registrations_create",
        summary="Register an attendee",
        description=(
            "The registration is committed at once and answered with 202; the charge, invoice and e-mails "
            "follow asynchronously, so poll `status_url` (or the `Location` header) for the outcome.\n\n"
            "Send an `Idempotency-Key` to retry safely: within 24 hours the same key with the same body "
            "returns the first answer (a 202 or a 409) with `Idempotent-Replayed: true` and creates nothing; "
            "the same key with another body is a 422. A 400 does not use a key up.\n\n"
            "Registrations are rate-limited per client address, API and web form together "
            "(`MICE_RATE_LIMIT_REGISTRATIONS`, 20 per 10 minutes by default): over the limit the answer is a "
            "429 with `Retry-After`. What counts is a request answered 202 or 409 (so probing addresses counts "
            "too). A replay of an earlier request's `Idempotency-Key` creates nothing and is neither counted nor "
            "refused; nor is a 400 or 422, nor a request the server failed to answer (5xx), so retrying it "
            "with the same key is not charged twice. A 429 does not use its key up.\n\n"
            "An address that already holds a registration for the event is a 409 `already_registered` whose "
            "`detail` is the same generic text for everyone: it repeats neither the address nor anything of the "
            "existing registration, and tells a genuine attendee to look for the confirmation e-mail or contact "
            "the organiser."
        ),
        request=InputSerializer,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_KEY_HEADER,
                # As _IDEMPOTENCY_KEY checks it: anything else is a 400.
                {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$", "minLength": 1, "maxLength": 255},
                OpenApiParameter.HEADER,
                required=False,
                description="A unique value per registration attempt (1-255 visible ASCII characters), e.g. a UUID",
            ),
            OpenApiParameter(
                "Location", OpenApiTypes.URI, OpenApiParameter.HEADER, response=[202], description="The status URL"
            ),
            RETRY_AFTER,
            OpenApiParameter(
                "Idempotent-Replayed",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                response=[202, 409],
                description='"true" when this is the stored answer to an earlier request with the same key',
            ),
        ],
        responses={
            202: OutputSerializer,
            400: OpenApiResponse(
                response=FIELD_ERRORS.response,
                description="Invalid input; also an unknown event (on `event`), a paid event without a "
                "`payment_token` (on `payment_token`), or an invalid `Idempotency-Key` header.",
            ),
            409: OpenApiResponse(
                RefusalSerializer,
                description="Refused: `code` is `sold_out`, `closed` or `already_registered` (this address already "
                "holds a registration for the event; the `detail` never repeats the address or anything of that "
                "registration).",
            ),
            422: OpenApiResponse(
                RefusalSerializer, description="`code` is `idempotency_key_reused`: the key came with another body."
            ),
            429: rate_limited_answer("registrations"),
        },
    )
    def post(self, request: Request) -> Response:
        key = _idempotency_key(request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        verdict = None
        if key is None or not idempotent_answer_stored(key=f"api:{key}"):
            verdict = rate_limit_hit(scope=Scope.REGISTRATIONS, client=client_address(request))
            if not verdict.allowed:
                raise RateLimited(verdict, "registrations")
        produce = self._registration_call(request, data)
        try:
            if key is None:
                (answer_status, body), replayed = produce(), False
            else:
                answer_status, body, replayed = idempotent_call(
                    key=f"api:{key}", request_fingerprint=fingerprint(data), produce=produce
                )
        except IdempotencyKeyReused:
            _take_back(verdict)
            body = {
                "code": "idempotency_key_reused",
                "detail": "This Idempotency-Key was already used with a different request body.",
            }
            return Response(body, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
        except Exception:
            # Nothing was registered: a 400 from the service (unknown event, no payment token), or the server
            # failed (database unreachable, a bug). A client retrying it, with the same key, is not charged twice.
            _take_back(verdict)
            raise
        if replayed:  # a concurrent request with the same key got there first: this one created nothing
            _take_back(verdict)
        headers = {}
        if answer_status == status.HTTP_202_ACCEPTED:
            headers["Location"] = body["status_url"]
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(body, status=answer_status, headers=headers)

    def _registration_call(self, request: Request, data: dict[str, Any]) -> Callable[[], tuple[int, dict[str, Any]]]:
        """The call that registers and returns the answer to remember for an Idempotency-Key: a 202, or a 409
        refusal. Input refusals raise a 400 instead, which rolls the key's record back with everything else."""

        def produce() -> tuple[int, dict[str, Any]]:
            try:
                registration = registration_create(
                    event_slug=data["event"],
                    first_name=data["first_name"],
                    last_name=data["last_name"],
                    email=data["email"],
                    company=data["company"],
                    payment_token=data["payment_token"],
                )
            except RegistrationRefused as refusal:
                if refusal.code in _FIELD_REFUSALS:
                    raise serializers.ValidationError(
                        {_FIELD_REFUSALS[refusal.code]: [refusal.message]}, code=refusal.code
                    ) from None
                return status.HTTP_409_CONFLICT, {"code": refusal.code, "detail": refusal_message(refusal)}
            status_url = request.build_absolute_uri(
                reverse("api-registration-detail", kwargs={"registration_id": registration.id})
            )
            answer = self.OutputSerializer(
                {"id": registration.id, "status": registration.status, "status_url": status_url}
            )
            return status.HTTP_202_ACCEPTED, dict(answer.data)

        return produce


class RegistrationDetailApi(PublicApi):
    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        event = serializers.CharField(source="event.slug", help_text="The event's slug")
        event_name = serializers.CharField(source="event.name")
        status = serializers.ChoiceField(choices=Registration.Status.choices)
        cancellation_reason = serializers.CharField(help_text='Empty unless cancelled, e.g. "payment_failed:..."')
        created_at = serializers.DateTimeField()
        updated_at = serializers.DateTimeField()
        invoice = serializers.SerializerMethodField()

        class Meta:
            ref_name = "Registration"

        @extend_schema_field(
            {
                "type": "object",
                "nullable": True,
                "description": "null until the invoice is issued (paid events): its number and a signed download "
                "link that expires",
                "properties": {"number": {"type": "string"}, "url": {"type": "string", "format": "uri"}},
            }
        )
        def get_invoice(self, registration: Registration) -> dict[str, str] | None:
            for link in registration_documents_get(registration_id=registration.id):
                if link.get("kind") == "invoice":
                    return {"number": link["number"], "url": link["url"]}
            return None

    @extend_schema(
        operation_id="registrations_retrieve",
        summary="A registration's status",
        description="`status` moves from pending to confirmed, or to cancelled with a `cancellation_reason`.",
        responses={200: OutputSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, registration_id: str) -> Response:
        registration = registration_get(registration_id=registration_id)
        if registration is None:
            raise NotFound("No such registration.")
        return Response(self.OutputSerializer(registration).data)


class RegistrationCancelApi(PublicApi):
    """The attendee cancels: whoever holds the registration's unguessable id (its status link) may.

    A paid registration's charge is refunded by invoicing, which learns of the cancellation from
    registration.cancelled. Cancelling a cancelled registration changes nothing and answers the same.
    """

    @extend_schema(
        operation_id="registrations_cancel",
        summary="Cancel a registration",
        description=(
            "Releases the seat; a paid registration is refunded (and its invoice credited) asynchronously. "
            "Answers the registration, now `cancelled` with `cancellation_reason` `cancelled_by_attendee` (or the "
            "reason it was cancelled for before)."
        ),
        request=None,
        responses={200: RegistrationDetailApi.OutputSerializer, 404: NOT_FOUND},
    )
    def post(self, request: Request, registration_id: str) -> Response:
        registration = registration_get(registration_id=registration_id)
        if registration is None:
            raise NotFound("No such registration.")
        registration = registration_cancel(registration_id=registration.id, reason="cancelled_by_attendee")
        return Response(RegistrationDetailApi.OutputSerializer(registration).data)
