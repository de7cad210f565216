"""Payment gateways: the interface, and the sandbox that stands in for a real provider (the default)."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import time
import uuid
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


class GatewayUnavailable(Exception):
    """The provider could not be reached or answered 5xx: transient, the charge may be retried."""


class ChargeAlreadyRefunded(Exception):
    """The provider refuses to refund more than was charged (Stripe's `charge_already_refunded`): permanent."""


@dataclasses.dataclass(frozen=True)
class ChargeResult:
    succeeded: bool
    reference: str = ""
    decline_code: str = ""
    message: str = ""


@dataclasses.dataclass(frozen=True)
class ChargeMade:
    """A charge the provider made, as it reports it when asked by idempotency key."""

    reference: str
    amount: Decimal
    currency: str


@dataclasses.dataclass(frozen=True)
class RefundResult:
    reference: str


class PaymentGateway(Protocol):
    name: str

    def charge(self, *, token: str, amount: Decimal, currency: str, idempotency_key: str) -> ChargeResult:
        """Charge once per idempotency key: a repeated call returns the first outcome and charges nothing."""

    def charge_made(self, *, idempotency_key: str) -> ChargeMade | None:
        """The successful charge made with this key, if any: what an attempt whose outcome we lost did."""

    def refund(self, *, charge_reference: str, amount: Decimal, idempotency_key: str) -> RefundResult:
        """Refund once per idempotency key; ChargeAlreadyRefunded if the charge has nothing left to give back."""

    def refunds_made(self, *, charge_reference: str) -> list[RefundResult]:
        """The refunds made of this charge (Stripe lists them by charge), however long ago."""


class SandboxGateway:
    """Behaves like a provider's test mode, with Stripe's test-token names.

    `tok_visa` succeeds, `tok_chargeDeclined` is declined (card_declined), `tok_flaky` fails
    transiently twice per idempotency key and then succeeds; any other token is declined as
    invalid_token. Its ledger lives in its own SQLite file, outside the application's database and
    transactions, as a real provider's would: a retried charge finds the first outcome there.

    Like Stripe, it keeps idempotency keys for a while only (SANDBOX_IDEMPOTENCY_KEY_TTL seconds, 24 hours
    by default; `idempotency_keys_forget` ends them now): a charge repeated after that is made again. The
    key is also kept with the charge itself, for good, as Stripe keeps metadata: `charge_made` finds it.
    """

    name = "sandbox"
    FLAKY_FAILURES = 2

    def __init__(self, path: str | None = None) -> None:
        self.path = Path(path or settings.SANDBOX_GATEWAY_PATH)
        self.key_ttl = settings.SANDBOX_IDEMPOTENCY_KEY_TTL
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            # Every charge made, one row each (a forgotten key lets the same key charge twice).
            db.execute(
                "CREATE TABLE IF NOT EXISTS ledger_charges (reference TEXT PRIMARY KEY, idempotency_key TEXT, "
                "token TEXT, amount TEXT, currency TEXT, succeeded INTEGER, decline_code TEXT, message TEXT, "
                "created_at REAL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS ledger_charges_key ON ledger_charges (idempotency_key)")
            # The keys the provider still remembers, and the charge each answered with.
            db.execute(
                "CREATE TABLE IF NOT EXISTS idempotency_keys (idempotency_key TEXT PRIMARY KEY, reference TEXT, "
                "created_at REAL)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS transient_failures (idempotency_key TEXT PRIMARY KEY, count INTEGER)"
            )
            # Every refund made, with its charge; its key is remembered in idempotency_keys like a charge's.
            db.execute(
                "CREATE TABLE IF NOT EXISTS ledger_refunds (reference TEXT PRIMARY KEY, idempotency_key TEXT, "
                "charge_reference TEXT, amount TEXT, created_at REAL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS ledger_refunds_charge ON ledger_refunds (charge_reference)")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def charge(self, *, token: str, amount: Decimal, currency: str, idempotency_key: str) -> ChargeResult:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT c.succeeded, c.reference, c.decline_code, c.message FROM idempotency_keys k "
                "JOIN ledger_charges c ON c.reference = k.reference WHERE k.idempotency_key = ? AND k.created_at > ?",
                (idempotency_key, time.time() - self.key_ttl),
            ).fetchone()
            if row is not None:
                db.execute("COMMIT")
                reference = row[1] if row[0] else ""
                return ChargeResult(succeeded=bool(row[0]), reference=reference, decline_code=row[2], message=row[3])
            if token == "tok_flaky":
                failures = db.execute(
                    "SELECT count FROM transient_failures WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                count = failures[0] if failures else 0
                if count < self.FLAKY_FAILURES:
                    db.execute(
                        "INSERT OR REPLACE INTO transient_failures (idempotency_key, count) VALUES (?, ?)",
                        (idempotency_key, count + 1),
                    )
                    db.execute("COMMIT")
                    raise GatewayUnavailable(f"sandbox: simulated timeout {count + 1} of {self.FLAKY_FAILURES}")
            reference = f"ch_sandbox_{uuid.uuid4().hex[:16]}"
            if token in ("tok_visa", "tok_flaky"):
                result = ChargeResult(succeeded=True, reference=reference)
            elif token == "tok_chargeDeclined":
                result = ChargeResult(succeeded=False, decline_code="card_declined", message="Your card was declined.")
            else:
                result = ChargeResult(succeeded=False, decline_code="invalid_token", message="Unknown payment token.")
            now = time.time()
            db.execute(
                "INSERT INTO ledger_charges VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    reference,
                    idempotency_key,
                    token,
                    str(amount),
                    currency,
                    int(result.succeeded),
                    result.decline_code,
                    result.message,
                    now,
                ),
            )
            db.execute("INSERT OR REPLACE INTO idempotency_keys VALUES (?, ?, ?)", (idempotency_key, reference, now))
            db.execute("COMMIT")
            return result
        except sqlite3.Error as exc:
            raise GatewayUnavailable(f"sandbox ledger unavailable: {exc}") from exc
        finally:
            db.close()

    def idempotency_keys_forget(self) -> None:
        """Test mode: end every idempotency key now, as the provider does after its retention."""
        with contextlib.closing(self._connect()) as db:
            db.execute("DELETE FROM idempotency_keys")

    def charges_made(self, *, idempotency_key: str) -> list[ChargeMade]:
        """Test mode: every successful charge made with this key (more than one is a double charge)."""
        with contextlib.closing(self._connect()) as db:
            rows = db.execute(
                "SELECT reference, amount, currency FROM ledger_charges WHERE idempotency_key = ? AND succeeded = 1 "
                "ORDER BY created_at",
                (idempotency_key,),
            ).fetchall()
        return [ChargeMade(reference=r[0], amount=Decimal(r[1]), currency=r[2]) for r in rows]

    def charge_made(self, *, idempotency_key: str) -> ChargeMade | None:
        try:
            with contextlib.closing(self._connect()) as db:
                # Looked up by the key kept with the charge (like Stripe's metadata search), not through the
                # idempotency cache: it works however long ago the charge was made.
                row = db.execute(
                    "SELECT reference, amount, currency FROM ledger_charges "
                    "WHERE idempotency_key = ? AND succeeded = 1 ORDER BY created_at LIMIT 1",
                    (idempotency_key,),
                ).fetchone()
        except sqlite3.Error as exc:
            raise GatewayUnavailable(f"sandbox ledger unavailable: {exc}") from exc
        return None if row is None else ChargeMade(reference=row[0], amount=Decimal(row[1]), currency=row[2])

    def refund(self, *, charge_reference: str, amount: Decimal, idempotency_key: str) -> RefundResult:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            remembered = db.execute(
                "SELECT reference FROM idempotency_keys WHERE idempotency_key = ? AND created_at > ?",
                (idempotency_key, time.time() - self.key_ttl),
            ).fetchone()
            if remembered is not None:
                db.execute("COMMIT")
                return RefundResult(reference=remembered[0])
            charged = db.execute(
                "SELECT amount FROM ledger_charges WHERE reference = ? AND succeeded = 1", (charge_reference,)
            ).fetchone()
            refunded = db.execute(
                "SELECT amount FROM ledger_refunds WHERE charge_reference = ?", (charge_reference,)
            ).fetchall()
            if charged is None or sum((Decimal(r[0]) for r in refunded), Decimal(0)) + amount > Decimal(charged[0]):
                db.execute("COMMIT")
                raise ChargeAlreadyRefunded(f"sandbox: {charge_reference} has no {amount} left to refund")
            reference = f"re_sandbox_{uuid.uuid4().hex[:16]}"
            now = time.time()
            db.execute(
                "INSERT INTO ledger_refunds VALUES (?, ?, ?, ?, ?)",
                (reference, idempotency_key, charge_reference, str(amount), now),
            )
            db.execute("INSERT OR REPLACE INTO idempotency_keys VALUES (?, ?, ?)", (idempotency_key, reference, now))
            db.execute("COMMIT")
            return RefundResult(reference=reference)
        except sqlite3.Error as exc:
            raise GatewayUnavailable(f"sandbox ledger unavailable: {exc}") from exc
        finally:
            db.close()

    def refunds_made(self, *, charge_reference: str) -> list[RefundResult]:
        try:
            with contextlib.closing(self._connect()) as db:
                rows = db.execute(
                    "SELECT reference FROM ledger_refunds WHERE charge_reference = ? ORDER BY created_at",
                    (charge_reference,),
                ).fetchall()
        except sqlite3.Error as exc:
            raise GatewayUnavailable(f"sandbox ledger unavailable: {exc}") from exc
        return [RefundResult(reference=row[0]) for row in rows]


@cache
def get_gateway() -> PaymentGateway:
    """The gateway named by the PAYMENT_GATEWAY setting (an import path)."""
    gateway: PaymentGateway = import_string(settings.PAYMENT_GATEWAY)()
    return gateway
