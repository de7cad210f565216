"""The conventions every endpoint keeps: JSON parsing, strict fields, base views, shared OpenAPI answers.

What they mean for a client (documented in the OpenAPI schema too):
- Bodies are JSON objects, UTF-8. Anything else is a 4xx with a JSON body, never a 500.
- Unknown fields are rejected (400), so a read-only field (`status`, `seats_left`, ...) or a typo is never
  silently dropped.
- Strings must be JSON strings (a number is not coerced into a name); null is not accepted, omit an optional
  field instead. Names and other one-line texts refuse control characters and line breaks; any other
  Unicode (accents, right-to-left scripts, emoji) is welcome.
- Staff endpoints need the model permission admin asks for; failed sign-ins and registrations are
  rate-limited per client address (429 with `Retry-After`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import IO, Any, ClassVar

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest
from drf_spectacular.authentication import BasicScheme
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers, status
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.exceptions import APIException, ParseError
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


# The same rule in the OpenAPI document (regular expressions that Python, ECMAScript and Rust read alike): no C0/C1
# control character, no line or paragraph separator; a required text also needs one character that is not white
# space, since surrounding spaces are trimmed and a blank value is refused.
_SINGLE_LINE_CHAR = r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]"
_SINGLE_LINE_PATTERN = rf"^{_SINGLE_LINE_CHAR}+$"  # drf-spectacular adds "or empty" (maxLength 0) itself
_NOT_BLANK_SINGLE_LINE_PATTERN = rf"^{_SINGLE_LINE_CHAR}*[^\s\x00-\x1f\x7f-\x9f]{_SINGLE_LINE_CHAR}*$"


class TextFieldSchema(OpenApiSerializerFieldExtension):
    """Documents a TextField's rules (one line; not blank unless allowed), as `validate_single_line_text` checks."""

    target_class = "registrations.apis.conventions.TextField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> Any:
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if not self.target.allow_blank:
            schema["minLength"] = max(1, schema.get("minLength", 1))
        # A slug, a currency code or an e-mail address already has a stricter pattern or format of its own (added
        # by drf-spectacular after this, from the field's validators, and only where no pattern is set yet).
        if not isinstance(self.target, (serializers.RegexField, serializers.SlugField, serializers.EmailField)):
            schema["pattern"] = _SINGLE_LINE_PATTERN if self.target.allow_blank else _NOT_BLANK_SINGLE_LINE_PATTERN
        return schema


class NonNegativeDecimalSchema(OpenApiSerializerFieldExtension):
    """A decimal string with a lower bound of 0 (and an upper one of 10, 100...): the document says so in its pattern.

    OpenAPI's `minimum` and `maximum` apply to numbers, and our amounts travel as strings, exact to the cent.
    """

    target_class = "rest_framework.serializers.DecimalField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> Any:
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        field = self.target
        if schema.get("type") != "string" or field.min_value is None or field.min_value < 0:
            return schema
        fraction = rf"(?:\.\d{{0,{field.decimal_places}}})?"
        whole_digits = field.max_digits - field.decimal_places
        if field.max_value is not None:
            top = Decimal(field.max_value)
            digits = len(str(int(top))) - 1
            if top != 10**digits:
                return schema  # no simple pattern for it: the document stays looser than the API
            # Below 10^n: up to n whole digits; or 10^n itself, with zeros only after the point.
            whole_digits = digits
            schema["pattern"] = (
                rf"^(?:\d{{1,{whole_digits}}}{fraction}|{int(top)}(?:\.0{{0,{field.decimal_places}}})?)$"
            )
            return schema
        schema["pattern"] = rf"^\d{{1,{whole_digits}}}{fraction}$"
        return schema


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


class ClosedInputSerializerSchema(OpenApiSerializerExtension):
    """`additionalProperties: false` in the document, as the serializer refuses fields it does not declare."""

    target_class = "registrations.apis.conventions.ClosedInputSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> Any:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        return schema


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
        # A body that is not JSON at all gets {"detail": "..."}; otherwise each key is a field with its messages.
        "properties": {"detail": {"type": "string"}},
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


def rate_limited_answer(what: str) -> OpenApiResponse:
    return OpenApiResponse(
        RefusalSerializer,
        description=f"`code` is `rate_limited`: too many {what} from this client address (the connection's "
        "address, or the one our trusted proxies forwarded); `Retry-After` says when to try again.",
    )


def field_errors(exc: DjangoValidationError) -> serializers.ValidationError:
    """A service's Django ValidationError, as the 400 a serializer would have given."""
    detail = serializers.as_serializer_error(exc)
    if "__all__" in detail:
        detail[api_settings.NON_FIELD_ERRORS_KEY] = detail.pop("__all__")
    return serializers.ValidationError(detail)


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


class RateLimitedBasicScheme(BasicScheme):
    """In the OpenAPI document it is plain HTTP Basic (the 429 is documented on each operation)."""

    target_class = "registrations.apis.conventions.RateLimitedBasicAuthentication"


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
