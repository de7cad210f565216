"""`python manage.py demo_load`: the demo that `scripts/run` loads, so a newcomer has something to click.

Two upcoming conferences (one paid, one free, a few seats each), one attendee already registered for the
free one (whose status page is worth opening), and a staff superuser whose credentials it prints. Run again,
it changes nothing but the conferences' dates, kept upcoming. It refuses to run unless MICE_DEMO=1, which
only scripts/run sets: a production database must never get a superuser with a printed password.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from registrations.models import Registration
from registrations.selectors import event_get
from registrations.services import event_create, event_update, registration_create

CONFERENCES: list[dict[str, Any]] = [
    {
        "slug": "demo-paid-summit",
        "name": "Demo Summit (paid)",
        "venue": "Lisbon Congress Centre",
        "price": Decimal("150.00"),
        "capacity": 5,
        "days_ahead": 30,
    },
    {
        "slug": "demo-free-meetup",
        "name": "Demo Meetup (free)",
        "venue": "Brussels Expo",
        "price": Decimal("0.00"),
        "capacity": 5,
        "days_ahead": 45,
    },
]
ATTENDEE = {"first_name": "Demo", "last_name": "Attendee", "email": "demo.attendee@example.com"}
USERNAME = "demo-admin"


class Command(BaseCommand):
    help = "Load the local demo: two upcoming conferences and a staff user (only with MICE_DEMO=1, as scripts/run)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password-file",
            default=str(Path(settings.BASE_DIR) / "var" / "demo-admin-password"),
            help="where the staff user's generated password is kept between runs (default: var/demo-admin-password)",
        )
        parser.add_argument("--site-url", default=settings.MICE_SITE_URL, help="the base of the URLs printed")

    def handle(self, *args: Any, **options: Any) -> None:
        if os.environ.get("MICE_DEMO") != "1":
            raise CommandError("the demo is loaded only in a local run: scripts/run sets MICE_DEMO=1")
        site = options["site_url"].rstrip("/")
        for conference in CONFERENCES:
            done = self._conference_ensure(**conference)
            form_path = reverse("pages:registration_form", kwargs={"slug": conference["slug"]})
            self.stdout.write(f"demo: {conference['name']} ({done}): {site}{form_path}")
        registration = self._attendee_ensure()
        status_path = reverse("pages:registration_detail", kwargs={"registration_id": registration.pk})
        self.stdout.write(f"demo: status page of a registration: {site}{status_path}")
        password = self._staff_ensure(Path(options["password_file"]))
        self.stdout.write(
            f"demo: staff login at {site}/admin/ : username {USERNAME} password {password}"
            f"  (a local demo: the password is kept in {options['password_file']})"
        )

    def _conference_ensure(self, *, slug: str, days_ahead: int, **fields: Any) -> str:
        """Create the conference, or move a past one's dates forward so it stays upcoming."""
        starts_at = (timezone.now() + dt.timedelta(days=days_ahead)).replace(hour=9, minute=0, second=0, microsecond=0)
        ends_at = starts_at + dt.timedelta(days=2, hours=8)
        event = event_get(slug=slug)
        if event is None:
            event_create(slug=slug, starts_at=starts_at, ends_at=ends_at, currency="EUR", **fields)
            return "created"
        if event.registration_closes_at <= timezone.now() + dt.timedelta(days=1):
            event_update(event=event, starts_at=starts_at, ends_at=ends_at, registration_closes_at=starts_at)
            return "moved forward"
        return "kept"

    def _attendee_ensure(self) -> Registration:
        free = CONFERENCES[1]["slug"]
        existing = Registration.objects.filter(event__slug=free, email__iexact=ATTENDEE["email"]).first()
        return existing or registration_create(event_slug=free, **ATTENDEE)

    def _staff_ensure(self, password_file: Path) -> str:
        """A superuser whose password is generated once and kept, so the printed one always logs in."""
        if not password_file.exists() or not password_file.read_text().strip():
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.touch(mode=0o600)
            password_file.write_text(secrets.token_urlsafe(12) + "\n")
        password = password_file.read_text().strip()
        users = get_user_model()
        with transaction.atomic():
            user = users.objects.filter(username=USERNAME).first()
            if user is None:
                users.objects.create_superuser(username=USERNAME, email="demo-admin@example.com", password=password)
            elif not (user.is_staff and user.is_superuser and user.is_active and user.check_password(password)):
                user.is_staff = user.is_superuser = user.is_active = True
                user.set_password(password)
                user.save()
        return password
