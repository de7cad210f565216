"""The sandbox gateway behaves like a provider's test mode, idempotently."""

from decimal import Decimal

import pytest

from invoicing.gateways import GatewayUnavailable, SandboxGateway


@pytest.fixture
def gateway(tmp_path):
    return SandboxGateway(str(tmp_path / "ledger.sqlite3"))


def charge(gateway, token, key="reg-1"):
    return gateway.charge(token=token, amount=Decimal("120.00"), currency="EUR", idempotency_key=key)


def test_tok_visa_succeeds_with_a_reference(gateway):
    result = charge(gateway, "tok_visa")
    assert result.succeeded and result.reference.startswith("ch_sandbox_")


def test_tok_charge_declined_is_a_decline_not_an_error(gateway):
    result = charge(gateway, "tok_chargeDeclined")
    assert not result.succeeded and result.decline_code == "card_declined"


def test_an_unknown_token_is_declined_as_invalid(gateway):
    assert charge(gateway, "4242424242424242").decline_code == "invalid_token"


def test_tok_flaky_fails_transiently_twice_then_succeeds(gateway):
    for _ in range(2):
        with pytest.raises(GatewayUnavailable):
            charge(gateway, "tok_flaky")
    assert charge(gateway, "tok_flaky").succeeded


def test_the_same_idempotency_key_returns_the_first_outcome(gateway):
    first = charge(gateway, "tok_visa", key="k")
    again = charge(gateway, "tok_chargeDeclined", key="k")
    assert again == first
    assert charge(gateway, "tok_visa", key="other").reference != first.reference
