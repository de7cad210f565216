"""The OpenAPI document describes the input the API really accepts, so a client validating against it, or a
fuzzer generating from it, is never surprised by a 400 for a request the document calls valid."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from jsonschema import Draft7Validator

INPUTS = ["EventCreateInput", "PatchedEventUpdateInput", "RegistrationCreateInput"]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def matches(schema: dict[str, Any], value: str) -> bool:
    """Whether a JSON string is valid under the document's schema of one field."""
    return Draft7Validator(schema).is_valid(value)


@pytest.mark.parametrize("name", INPUTS)
def test_input_objects_refuse_unknown_fields_as_the_api_does(document, name):
    assert document["components"]["schemas"][name]["additionalProperties"] is False


def test_required_names_must_be_one_line_and_not_blank(document):
    attendee = document["components"]["schemas"]["RegistrationCreateInput"]["properties"]
    event = document["components"]["schemas"]["EventCreateInput"]["properties"]

    for field in (attendee["first_name"], attendee["last_name"], event["name"], event["venue"]):
        assert field["minLength"] == 1
        assert matches(field, "Zoë 李 O'Brien-Łukasz")
        for refused in ("", "   ", "Ada\nLovelace", "Ada\x00", "Ada\u2028Lovelace", "tab\there"):
            assert not matches(field, refused), refused
    # Optional texts may be blank, never multi-line.
    for company in ("", "  ", "ACME"):
        assert matches(attendee["company"], company), company
    assert not matches(attendee["company"], "ACME\r\nBcc: x")


def test_amounts_and_rates_are_non_negative_decimal_strings_within_their_bounds(document):
    event = document["components"]["schemas"]["EventCreateInput"]["properties"]

    for accepted in ("0", "0.00", "120", "99999999.99"):
        assert matches(event["price"], accepted), accepted
    for refused in ("", "-1", "-0.01", "1.234", "123456789", "abc"):
        assert not matches(event["price"], refused), refused
    for accepted in ("0", "20.00", "5.5", "100", "100.00"):
        assert matches(event["vat_rate"], accepted), accepted
    for refused in ("", "-1", "100.01", "101", "999.99"):
        assert not matches(event["vat_rate"], refused), refused


def test_the_idempotency_key_header_is_described_as_the_api_checks_it(document):
    create = document["paths"]["/api/registrations/"]["post"]
    [key] = [p["schema"] for p in create["parameters"] if p["name"] == "Idempotency-Key"]

    assert matches(key, "3f2c1a9e-8d1b-4c55-9f0e-1d2b3c4d5e6f")
    for refused in ("", "with space", "é", "x" * 256):
        assert not matches(key, refused), refused


def test_a_400_for_a_body_that_is_not_json_is_described_too(document, client):
    answer = client.post("/api/registrations/", data=b"\x00", content_type="application/json")
    described = document["paths"]["/api/registrations/"]["post"]["responses"]["400"]["content"]["application/json"]

    assert answer.status_code == 400
    assert Draft7Validator(described["schema"]).is_valid(answer.json()), answer.json()
