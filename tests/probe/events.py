"""Probe event types."""

import os

from mice.events import event_type

PINGED = event_type("probe.pinged", version=1, producer="probe", doc="Two handlers record it.", example={"n": 1})
FLAKED = event_type(
    "probe.flaked",
    version=1,
    producer="probe",
    doc="Its handler fails transiently `failures` times.",
    example={"failures": 2},
)
BROKE = event_type(
    "probe.broke", version=1, producer="probe", doc="Its handler fails until the 'fixed' switch is on.", example={}
)
CRASHED = event_type(
    "probe.crashed", version=1, producer="probe", doc="Its handler kills its worker process.", example={}
)
SLEPT = event_type(
    "probe.slept", version=1, producer="probe", doc="Its handler sleeps `seconds` first.", example={"seconds": 0.1}
)
STEPPED = event_type(
    "probe.stepped",
    version=1,
    producer="probe",
    doc="Its non-atomic handler commits a step, then fails transiently `failures` times after it.",
    example={"failures": 1},
)
CHAINED = event_type("probe.chained", version=1, producer="probe", doc="Its handler emits probe.pinged.", example={})

# A deploy that adds an event type: only processes started with MICE_PROBE_NEW_CODE=1 know it, so tests
# can run new code beside a process still on the old code.
if os.environ.get("MICE_PROBE_NEW_CODE"):
    INTRODUCED = event_type(
        "probe.introduced", version=1, producer="probe", doc="Known only to new code; one handler.", example={}
    )
