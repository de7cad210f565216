"""The REST API: one view per operation, each with its own input and output serializers.

Conventions every endpoint here keeps (documented in the OpenAPI schema too):
- Bodies are JSON objects, UTF-8. Anything else is a 4xx with a JSON body, never a 500.
- Unknown fields are rejected (400), so a read-only field (`status`, `seats_left`, ...) or a typo is never
  silently dropped.
- Strings must be JSON strings (a number is not coerced into a name); null is not accepted, omit an optional
  field instead. Names and other one-line texts refuse control characters and line breaks; any other
  Unicode (accents, right-to-left scripts, emoji) is welcome.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import IO, Any, ClassVar

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.exceptions import APIException, NotFound, ParseError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny, DjangoModelPermissions, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils import json
from rest_framework.views import APIView

from ratelimits.clients import client_address
from ratelimits.rules import Scope
from ratelimits.services import Verdict, rate_limit_hit, rate_limit_release
from registrations.idempotency import IdempotencyKeyReused, fingerprint, idempotent_answer_stored, idempotent_call
from registrations.models import Event, Registration
from registrations.refusals import refusal_message
from registrations.selectors import event_get, event_list_upcoming, registration_get
from registrations.services import RegistrationRefused, registration_create
from registrations.services_events import event_create, event_update
from registrations.validators import validate_single_line_text

# --- Parsing -------------------------------------------------------------------------------------


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class RateLimited(APIException):
    """429: too many requests from the client's address; `Retry-After` (set by DRF from `wait`) says when."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "rate_limited"

    def __init__(self, verdict: Verdict, what: str) -> None:
        self.wait = verdict.retry_after
        super().__init__(
            {
                "code": "rate_limited",
                "detail": f"Too many {what} from your network address. Try again in {verdict.retry_after} seconds.",
            }
        )


class StrictJSONParser(JSONParser):
    """JSON the way RFC 8259 has it: always UTF-8, whatever charset the Content-Type claims.

    DRF's parser decodes with the claimed charset and only turns ValueError into a 400; an exotic
    charset or a document nested thousands deep would otherwise reach the client as a 500. (DRF reads
    the body through `request.body`, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE caps its size.)
    """

    def parse(self, stream: IO[bytes] | None, media_type: str | None = None, parser_context: Any = None) -> Any:
        if stream is None:
            return {}
        try:
            return json.loads(stream.read().decode("utf-8"), parse_constant=json.strict_constant)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError among them
            raise ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise ParseError("JSON parse error - nested too deep.") from None


# --- Fields and serializers shared by the views ---------------------------------------------------


class TextField(serializers.CharField):
    """A JSON string (a number is not coerced into one) on one line: no control characters."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators.append(validate_single_line_text)

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class EmailTextField(TextField, serializers.EmailField):
    pass


class SlugTextField(TextField, serializers.SlugField):
    pass


class RegexTextField(TextField, serializers.RegexField):
    pass


def _printable_field_name(name: object) -> str | None:
    """A client's key we can safely echo back in an error (not a 10 kB string, not a lone surrogate)."""
    if isinstance(name, str) and 0 < len(name) <= 100 and name.isprintable():
        return name
    return None


class ClosedInputSerializer(serializers.Serializer):
    """An input serializer that refuses fields it does not declare, instead of silently ignoring them."""

    def to_internal_value(self, data: Any) -> Any:
        unknown: dict[str, list[str]] = {}
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            for key in data:
                if key not in writable:
                    named = _printable_field_name(key)
                    if named is None:
                        unknown.setdefault(api_settings.NON_FIELD_ERRORS_KEY, ["Unknown fields are not accepted."])
                    else:
                        unknown[named] = ["Unknown field: it cannot be set."]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                exc.detail.update({k: v for k, v in unknown.items() if k not in exc.detail})
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class EventOutputSerializer(serializers.Serializer):
    """The one representation of an event, shared by every event endpoint so clients see one schema."""

    slug = serializers.CharField()
    name = serializers.CharField()
    venue = serializers.CharField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    capacity = serializers.IntegerField()
    seats_left = serializers.IntegerField()
    price = serializers.DecimalField(max_digits=10, decimal_places=2, help_text="What the attendee pays, VAT included")
    currency = serializers.CharField(help_text="ISO 4217")
    vat_rate = serializers.DecimalField(max_digits=5, decimal_places=2, help_text="Percent")
    registration_opens_at = serializers.DateTimeField()
    registration_closes_at = serializers.DateTimeField()

    class Meta:
        ref_name = "Event"


class RefusalSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="Stable, for programs: e.g. sold_out, closed, already_registered, rate_limited"
    )
    detail = serializers.CharField(help_text="For people")

    class Meta:
        ref_name = "Refusal"


FIELD_ERRORS = OpenApiResponse(
    response={
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "example": {"email": ["Enter a valid email address."]},
    },
    description="Invalid input: a list of messages per field (`non_field_errors` for the body as a whole), or "
    '`{"detail": "..."}` for a body that is not JSON.',
)
NOT_FOUND = OpenApiResponse(
    response={"type": "object", "properties": {"detail": {"type": "string"}}}, description="No such resource."
)
STAFF_ONLY = OpenApiResponse(
    response={"type": "object", "properties": {"detail": {"type": "string"}}},
    description="Not authenticated (401), or not a staff user holding the model permission admin asks for the "
    "same change (403): `registrations.add_event` to create an event, `registrations.change_event` to change one.",
)


RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    response=[429],
    description="Seconds until this client address may try again",
)


def _rate_limited(what: str) -> OpenApiResponse:
    return OpenApiResponse(
        RefusalSerializer,
        description=f"`code` is `rate_limited`: too many {what} from this client address (the connection's "
        "address, or the one our trusted proxies forwarded); `Retry-After` says when to try again.",
    )


def _field_errors(exc: DjangoValidationError) -> serializers.ValidationError:
    """A service's Django ValidationError, as the 400 a serializer would have given."""
    detail = serializers.as_serializer_error(exc)
    if "__all__" in detail:
        detail[api_settings.NON_FIELD_ERRORS_KEY] = detail.pop("__all__")
    return serializers.ValidationError(detail)


_SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")


def _event_or_404(slug: str) -> Event:
    # Checked before querying: a NUL byte in the path would make PostgreSQL refuse the query.
    event = event_get(slug=slug) if _SLUG.match(slug) else None
    if event is None:
        raise NotFound("No such event.")
    return event


# --- One URL, several operations -------------------------------------------------------------------


class MethodRoutedApi(APIView):
    """Serves one URL whose HTTP methods are separate operations, each its own `<Entity><Action>Api`.

    A subclass inherits from the operations (so their handlers and `@extend_schema` come along) and
    lists them in `routes`; the authentication and permissions of the operation a request is for apply.
    """

    routes: ClassVar[dict[str, type[APIView]]] = {}
    operation: APIView | None = None

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        # Authenticators are needed to build the DRF request, so the operation is chosen first.
        method = (request.method or "").lower()
        self.operation = self.routes.get("get" if method == "head" else method, APIView)()
        return super().initialize_request(request, *args, **kwargs)

    def get_authenticators(self) -> Any:
        return (self.operation or APIView()).get_authenticators()

    def get_permissions(self) -> Any:
        return (self.operation or APIView()).get_permissions()


class JsonApi(APIView):
    """Every answer is JSON, including the few errors Django itself would answer with an HTML page."""

    parser_classes: ClassVar[list[type]] = [StrictJSONParser]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, RequestDataTooBig):
            exc = PayloadTooLarge()
        return super().handle_exception(exc)


class PublicApi(JsonApi):
    """Anyone may call it. No session is read, so a logged-in browser needs no CSRF token either."""

    authentication_classes: ClassVar[list[type]] = []
    permission_classes: ClassVar[list[type]] = [AllowAny]


class RateLimitedBasicAuthentication(BasicAuthentication):
    """HTTP Basic, with failed sign-ins limited per client address (shared with the admin login).

    Each attempt is counted before the password is checked, and taken back if it succeeds: concurrent
    guesses cannot get past the limit together, and once over it even the right password is a 429
    until the window ends, or guessing would simply go on.
    """

    def authenticate_credentials(self, userid: str, password: str, request: Any = None) -> tuple[Any, None]:
        verdict = rate_limit_hit(scope=Scope.LOGIN_FAILURES, client=client_address(request))
        if not verdict.allowed:
            raise RateLimited(verdict, "failed sign-in attempts")
        user_and_auth = super().authenticate_credentials(userid, password, request)  # a failure raises: it counts
        rate_limit_release(verdict=verdict)
        return user_and_auth


class StaffApi(JsonApi):
    """Staff users holding the model permission admin would ask for, by HTTP Basic or by their admin session.

    The same rules as admin, so the API is no way around them: a staff account (`is_staff`), and Django's
    model permission for the method on the view's `queryset` model (POST: `add_<model>`, PATCH/PUT:
    `change_<model>`, DELETE: `delete_<model>`), held directly or through a group; superusers hold them all.
    Basic comes first so anonymous calls get a 401 with a `WWW-Authenticate` challenge; an authenticated
    user who is not staff or lacks the permission gets a 403. Failed Basic sign-ins are rate-limited (429).
    """

    authentication_classes: ClassVar[list[type]] = [RateLimitedBasicAuthentication, SessionAuthentication]
    permission_classes: ClassVar[list[type]] = [IsAdminUser, DjangoModelPermissions]


# --- Events ---------------------------------------------------------------------------------------


class EventListApi(PublicApi):
    OutputSerializer = EventOutputSerializer

    @extend_schema(
        operation_id="events_list",
        summary="Upcoming events",
        description="Events that have not ended yet, soonest first, each with the seats left.",
        responses={200: EventOutputSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(event_list_upcoming(), many=True).data)


class EventDetailApi(PublicApi):
    OutputSerializer = EventOutputSerializer

    @extend_schema(
        operation_id="events_retrieve",
        summary="One event",
        description="Any event, past ones included, with the seats left.",
        responses={200: EventOutputSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(self.OutputSerializer(_event_or_404(slug)).data)


class EventCreateApi(StaffApi):
    queryset = Event.objects.all()  # whose model permissions apply: add_event (never evaluated)

    class InputSerializer(ClosedInputSerializer):
        """A new event. Unknown fields (e.g. `seats_left`) are refused; texts are one line."""

        slug = SlugTextField(max_length=100)
        name = TextField(max_length=200)
        venue = TextField(max_length=200)
        starts_at = serializers.DateTimeField()
        ends_at = serializers.DateTimeField()
        capacity = serializers.IntegerField(min_value=0, max_value=2_147_483_647)
        price = serializers.DecimalField(
            max_digits=10, decimal_places=2, min_value=Decimal("0"), help_text='VAT included; "0.00" for free'
        )
        currency = RegexTextField(regex=r"^[A-Z]{3}\Z", max_length=3, help_text="ISO 4217, e.g. EUR")
        vat_rate = serializers.DecimalField(
            max_digits=5,
            decimal_places=2,
            min_value=Decimal("0"),
            max_value=Decimal("100"),
            required=False,
            help_text=f"Percent; default {settings.DEFAULT_VAT_RATE}",
        )
        registration_opens_at = serializers.DateTimeField(required=False, help_text="Default: now")
        registration_closes_at = serializers.DateTimeField(required=False, help_text="Default: starts_at")

        class Meta:
            ref_name = "EventCreateInput"

    OutputSerializer = EventOutputSerializer

    @extend_schema(
        operation_id="events_create",
        summary="Create an event (staff with `registrations.add_event`)",
        description="Registration opens now and closes when the event starts, unless told otherwise.",
        request=InputSerializer,
        parameters=[RETRY_AFTER],
        responses={
            201: EventOutputSerializer,
            400: FIELD_ERRORS,
            401: STAFF_ONLY,
            403: STAFF_ONLY,
            429: _rate_limited("failed sign-in attempts"),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            event = event_create(**serializer.validated_data)
        except DjangoValidationError as exc:
            raise _field_errors(exc) from None
        location = request.build_absolute_uri(reverse("api-event-detail", kwargs={"slug": event.slug}))
        return Response(
            self.OutputSerializer(event).data, status=status.HTTP_201_CREATED, headers={"Location": location}
        )


class EventUpdateApi(StaffApi):
    queryset = Event.objects.all()  # whose model permissions apply: change_event (never evaluated)

    class InputSerializer(EventCreateApi.InputSerializer):
        """Changes to an event: any of its fields. Unknown fields (e.g. `seats_left`) are refused."""

        class Meta:
            ref_name = "EventUpdateInput"

    OutputSerializer = EventOutputSerializer

    @extend_schema(
        operation_id="events_partial_update",
        summary="Change an event (staff with `registrations.change_event`)",
        description="Only the fields given change. The capacity cannot drop below the seats already taken.",
        request=InputSerializer,
        parameters=[RETRY_AFTER],
        responses={
            200: EventOutputSerializer,
            400: FIELD_ERRORS,
            401: STAFF_ONLY,
            403: STAFF_ONLY,
            404: NOT_FOUND,
            429: _rate_limited("failed sign-in attempts"),
        },
    )
    def patch(self, request: Request, slug: str) -> Response:
        event = _event_or_404(slug)
        serializer = self.InputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        try:
            event = event_update(event=event, **serializer.validated_data)
        except DjangoValidationError as exc:
            raise _field_errors(exc) from None
        return Response(self.OutputSerializer(event).data)


class EventCollectionApi(MethodRoutedApi, EventListApi, EventCreateApi):
    """/api/events/: GET lists (public), POST creates (staff)."""

    routes: ClassVar[dict[str, type[APIView]]] = {"get": EventListApi, "post": EventCreateApi}


class EventItemApi(MethodRoutedApi, EventDetailApi, EventUpdateApi):
    """/api/events/<slug>/: GET shows (public), PATCH changes (staff)."""

    routes: ClassVar[dict[str, type[APIView]]] = {"get": EventDetailApi, "patch": EventUpdateApi}


# --- Registrations --------------------------------------------------------------------------------

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
            "429 with `Retry-After`. Every valid request counts, whatever its answer, except one answered from "
            "an earlier request's `Idempotency-Key` (a replay creates nothing, so it is neither counted nor "
            "refused); a malformed body (not JSON, invalid fields) does not count, and a 429 does not use its "
            "key up.\n\n"
            "An address that already holds a registration for the event is a 409 `already_registered` whose "
            "`detail` is the same generic text for everyone: it repeats neither the address nor anything of the "
            "existing registration, and tells a genuine attendee to look for the confirmation e-mail or contact "
            "the organiser."
        ),
        request=InputSerializer,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_KEY_HEADER,
                OpenApiTypes.STR,
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
            429: _rate_limited("registrations"),
        },
    )
    def post(self, request: Request) -> Response:
        key = _idempotency_key(request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if key is None or not idempotent_answer_stored(key=f"api:{key}"):
            verdict = rate_limit_hit(scope=Scope.REGISTRATIONS, client=client_address(request))
            if not verdict.allowed:
                raise RateLimited(verdict, "registrations")
        produce = self._producer(request, data)
        try:
            if key is None:
                (answer_status, body), replayed = produce(), False
            else:
                answer_status, body, replayed = idempotent_call(
                    key=f"api:{key}", request_fingerprint=fingerprint(data), produce=produce
                )
        except IdempotencyKeyReused:
            body = {
                "code": "idempotency_key_reused",
                "detail": "This Idempotency-Key was already used with a different request body.",
            }
            return Response(body, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
        headers = {}
        if answer_status == status.HTTP_202_ACCEPTED:
            headers["Location"] = body["status_url"]
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(body, status=answer_status, headers=headers)

    def _producer(self, request: Request, data: dict[str, Any]) -> Callable[[], tuple[int, dict[str, Any]]]:
        """The answer to remember for an Idempotency-Key: a 202, or a 409 refusal. Input refusals raise a 400
        instead, which rolls the key's record back with everything else."""

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
            {"type": "object", "nullable": True, "description": "null until invoicing provides it (paid events)"}
        )
        def get_invoice(self, registration: Registration) -> None:
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
