"""The events resource: /api/events/ (list: public; create: staff) and /api/events/<slug>/ (show; change)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from registrations.apis.conventions import (
    FIELD_ERRORS,
    NOT_FOUND,
    RETRY_AFTER,
    STAFF_ONLY,
    ClosedInputSerializer,
    MethodRoutedApi,
    PublicApi,
    RegexTextField,
    SlugTextField,
    StaffApi,
    TextField,
    field_errors,
    rate_limited_answer,
)
from registrations.models import DEFAULT_PAYMENT_DEADLINE_SECONDS, Event
from registrations.selectors import event_get, event_list_upcoming
from registrations.services import event_create, event_update


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
    payment_deadline_seconds = serializers.IntegerField(
        help_text="Seconds a registration has to be paid; unpaid by then it is cancelled and its seat released"
    )

    class Meta:
        ref_name = "Event"


_SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")


def _event_or_404(slug: str) -> Event:
    # Checked before querying: a NUL byte in the path would make PostgreSQL refuse the query.
    event = event_get(slug=slug) if _SLUG.match(slug) else None
    if event is None:
        raise NotFound("No such event.")
    return event


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
        payment_deadline_seconds = serializers.IntegerField(
            min_value=1,
            max_value=2_147_483_647,
            required=False,
            help_text=f"Seconds a registration has to be paid; default {DEFAULT_PAYMENT_DEADLINE_SECONDS}",
        )

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
            429: rate_limited_answer("failed sign-in attempts"),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            event = event_create(**serializer.validated_data)
        except DjangoValidationError as exc:
            raise field_errors(exc) from None
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
            429: rate_limited_answer("failed sign-in attempts"),
        },
    )
    def patch(self, request: Request, slug: str) -> Response:
        event = _event_or_404(slug)
        serializer = self.InputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        try:
            event = event_update(event=event, **serializer.validated_data)
        except DjangoValidationError as exc:
            raise field_errors(exc) from None
        return Response(self.OutputSerializer(event).data)


class EventCollectionApi(MethodRoutedApi, EventListApi, EventCreateApi):
    """/api/events/: GET lists (public), POST creates (staff)."""

    routes: ClassVar[dict[str, type[APIView]]] = {"get": EventListApi, "post": EventCreateApi}


class EventItemApi(MethodRoutedApi, EventDetailApi, EventUpdateApi):
    """/api/events/<slug>/: GET shows (public), PATCH changes (staff)."""

    routes: ClassVar[dict[str, type[APIView]]] = {"get": EventDetailApi, "patch": EventUpdateApi}
