"""Rebuilding analytics' rows from the outbox: the same figures as the handlers, however often it runs."""

import pytest
from django.core.management import call_command
from django.db import transaction

from analytics.selectors import event_figures_list
from mice.models import OutboxMessage
from mice.outbox import emit
from tests.analytics.test_handlers import EXPECTED, NOW, T0, a_morning_of_registrations, handle, summary
from tests.factories import make_event

pytestmark = pytest.mark.django_db


def test_the_rebuild_from_the_outbox_gives_the_handlers_figures_and_can_run_again(capsys):
    # given a morning's events in the outbox (as a deploy finds them), some of them handled already
    event = make_event(capacity=10)
    events = a_morning_of_registrations(event, T0)
    with transaction.atomic():
        for each in events:
            emitted = emit(each.type, subject=each.subject, data=each.data, correlation_id=each.correlationid)
            # as if emitted that morning
            OutboxMessage.objects.filter(event_id=emitted.id).update(envelope={**emitted.to_dict(), "time": each.time})
    for each in events[:4]:
        handle(each)

    # when the rebuild runs, twice
    call_command("analytics_rebuild")
    call_command("analytics_rebuild")

    # then the figures are those the handlers alone give
    (figures,) = [f for f in event_figures_list(now=NOW) if f.slug == event.slug]
    assert summary(figures) == EXPECTED
    assert capsys.readouterr().out.count("applied 15 events to analytics") == 2
