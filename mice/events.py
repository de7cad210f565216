"""The event-type registry and the CloudEvents 1.0 envelope every event travels in."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from django.dispatch import Signal

SPECVERSION = "1.0"
DATACONTENTTYPE = "application/json"


class UnknownEventType(LookupError):
    """Raised when code names an event type nobody declared."""


@dataclasses.dataclass(frozen=True, eq=False)  # one object per declared name: equal only to itself, hashable
class EventType:
    """One declared event type: the name is a contract, never reused once retired."""

    name: str
    version: int
    producer: str
    doc: str
    example: Mapping[str, Any]
    retired: bool = False
    # Fields of `data` that an older version carried and must never be stored (e.g. a payment token):
    # the dead-letter recorder drops them from what it keeps, so admin never shows them.
    secret_fields: tuple[str, ...] = ()
    # The domain signal apps send; the outbox receives every type's and records the event.
    signal: Signal = dataclasses.field(default_factory=Signal, compare=False, repr=False)

    def __str__(self) -> str:
        return self.name

    def send(
        self,
        *,
        subject: str,
        data: Mapping[str, Any],
        correlation_id: str | None = None,
        deliver_at: dt.datetime | None = None,
    ) -> Envelope:
        """Send this domain signal: the outbox records the event in the current transaction and answers it.

        Outside `transaction.atomic()` the outbox refuses (an error), so an event commits or rolls back with
        the change that caused it. Inside a handler the event names the handled one as its cause.
        """
        answers = self.signal.send(
            sender=self, subject=subject, data=data, correlation_id=correlation_id, deliver_at=deliver_at
        )
        # (django-stubs types receivers' answers as str | None; the outbox's is the Envelope it recorded)
        recorded: list[Envelope] = [answer for _, answer in answers if isinstance(answer, Envelope)]  # type: ignore[misc]
        if not recorded:
            raise RuntimeError(f"{self.name}: no outbox receives domain signals (is the mice app installed?)")
        return recorded[0]


EVENT_TYPES: dict[str, EventType] = {}
_EVERY_TYPE_RECEIVERS: list[Callable[..., Any]] = []


def connect_to_every_type(receiver: Callable[..., Any]) -> None:
    """Connect a receiver to every event type's signal, those declared now and those declared later."""
    _EVERY_TYPE_RECEIVERS.append(receiver)
    for declared in EVENT_TYPES.values():
        declared.signal.connect(receiver, sender=declared, weak=False, dispatch_uid=id(receiver))


def event_type(
    name: str,
    *,
    version: int,
    producer: str,
    doc: str,
    example: Mapping[str, Any],
    retired: bool = False,
    secret_fields: tuple[str, ...] = (),
) -> EventType:
    """Declare an event type. Declaring a name twice is a programming error."""
    if name in EVENT_TYPES:
        raise ValueError(f"event type {name!r} is declared twice")
    parts = name.split(".")
    if len(parts) < 2 or not all(p and p.replace("_", "").isalnum() and p.islower() for p in parts):
        raise ValueError(f"event type {name!r} must be lower-case dotted words, e.g. 'registration.created'")
    declared = EventType(
        name=name,
        version=version,
        producer=producer,
        doc=doc,
        example=dict(example),
        retired=retired,
        secret_fields=tuple(secret_fields),
    )
    for receiver in _EVERY_TYPE_RECEIVERS:
        declared.signal.connect(receiver, sender=declared, weak=False, dispatch_uid=id(receiver))
    EVENT_TYPES[name] = declared
    return declared


def get_event_type(name: str) -> EventType:
    try:
        return EVENT_TYPES[name]
    except KeyError:
        raise UnknownEventType(f"no event type {name!r} is declared") from None


@dataclasses.dataclass(frozen=True)
class Envelope:
    """A CloudEvents 1.0 envelope with the correlationid/causationid extensions."""

    id: str
    type: str
    source: str
    subject: str
    time: str
    data: dict[str, Any]
    correlationid: str
    causationid: str | None = None
    dataschemaversion: int = 1

    @classmethod
    def new(
        cls,
        etype: EventType,
        *,
        subject: str,
        data: Mapping[str, Any],
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> Envelope:
        event_id = str(uuid.uuid4())
        return cls(
            id=event_id,
            type=etype.name,
            source=etype.producer,
            subject=str(subject),
            time=dt.datetime.now(dt.UTC).isoformat(),
            data=dict(data),
            correlationid=correlation_id or event_id,
            causationid=causation_id,
            dataschemaversion=etype.version,
        )

    def to_dict(self) -> dict[str, Any]:
        envelope: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "time": self.time,
            "datacontenttype": DATACONTENTTYPE,
            "dataschemaversion": self.dataschemaversion,
            "correlationid": self.correlationid,
            "data": self.data,
        }
        if self.causationid:
            envelope["causationid"] = self.causationid
        return envelope

    @classmethod
    def from_dict(cls, envelope: Mapping[str, Any]) -> Envelope:
        """Parse an envelope; unknown attributes are tolerated, missing required ones are not."""
        if envelope.get("specversion") != SPECVERSION:
            raise ValueError(f"unsupported CloudEvents specversion {envelope.get('specversion')!r}")
        return cls(
            id=str(envelope["id"]),
            type=str(envelope["type"]),
            source=str(envelope["source"]),
            subject=str(envelope.get("subject", "")),
            time=str(envelope["time"]),
            data=dict(envelope.get("data") or {}),
            correlationid=str(envelope.get("correlationid") or envelope["id"]),
            causationid=envelope.get("causationid"),
            dataschemaversion=int(envelope.get("dataschemaversion", 1)),
        )
