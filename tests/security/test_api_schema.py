"""The REST API against its own OpenAPI document, fuzzed with Schemathesis on PostgreSQL.

Every operation in `/api/schema/` gets valid and invalid requests (Schemathesis' positive and negative modes):
no answer may be a 5xx; every answer must be one the document declares (status code, content type, headers,
body); invalid data must be refused with a 4xx and a JSON body; an operation that needs staff must refuse a
request without credentials. The run's tally (requests per operation and status) is printed at the end.
"""

from __future__ import annotations

import base64
import collections
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.test import override_settings
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from config.wsgi import application
from registrations.services import registration_create
from tests.factories import make_event

PASSWORD = "a-long-test-password"
# Per operation and mode; 7 operations run in about a minute on a 2-core machine. Raise it locally to dig deeper.
MAX_EXAMPLES = 60

# Operations whose valid-looking requests may be refused for reasons JSON Schema cannot express: an event's dates
# must come in order (opens <= closes <= starts < ends), and registering needs an event that exists, is open and
# (if paid) a payment token. Their 400s are right; every other check still applies to them.
CROSS_FIELD_RULES = {"POST /api/events/", "PATCH /api/events/{slug}/", "POST /api/registrations/"}

# Loaded once, at collection, through the WSGI application as a client would fetch it (no database needed).
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

# Requests per (operation, status), printed at the end of the run (tests/security/conftest.py).
tally: collections.Counter[tuple[str, int]] = collections.Counter()


@pytest.fixture
def known(transactional_db: None) -> dict[str, str]:
    """Real rows for generated requests to hit now and then: random slugs and ids would only ever find a 404."""
    paid = make_event()
    registration = registration_create(
        event_slug=paid.slug,
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.com",
        company="",
        payment_token="tok_visa",
    )
    make_event(price=0)
    User.objects.create_superuser("fuzz-admin", "admin@example.com", PASSWORD)
    return {"slug": paid.slug, "event": paid.slug, "registration_id": str(registration.id)}


@schema.given(data=st.data())
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@override_settings(MICE_RATE_LIMIT_REGISTRATIONS="100000/1h", MICE_RATE_LIMIT_LOGIN_FAILURES="100000/1h")
@pytest.mark.django_db(transaction=True)
def test_every_operation_answers_as_documented(case: Any, data: st.DataObject, known: dict[str, str]) -> None:
    # given: now and then, a slug or id that exists, so that the 200/202 paths run too. Only in a valid case:
    # a case made invalid only by its slug (say "00*") would otherwise be sent with a real one, and a 202
    # to it taken for invalid data accepted (it failed once so)
    positive = case.meta is None or case.meta.generation.mode.is_positive
    for name in ("slug", "registration_id"):
        if positive and name in (case.path_parameters or {}) and data.draw(st.booleans(), label=f"known {name}"):
            case.path_parameters[name] = known[name]
    body = case.body if isinstance(case.body, dict) else {}
    if positive and isinstance(body.get("event"), str) and data.draw(st.booleans()):
        body["event"] = known["event"]
    operation = f"{case.method.upper()} {case.path}"
    excluded = [positive_data_acceptance] if operation in CROSS_FIELD_RULES else []
    credentials = base64.b64encode(f"fuzz-admin:{PASSWORD}".encode()).decode()

    # when / then
    response = case.call_and_validate(headers={"Authorization": f"Basic {credentials}"}, excluded_checks=excluded)

    tally[(operation, response.status_code)] += 1
