"""The scheduler: the Procfile's process runs every upkeep job on its timer, alone per job, and stops on SIGTERM."""

import datetime as dt

import psycopg2
import pytest
from django.db import connection
from django.utils import timezone

from mice.upkeep import _NAMESPACE, _lock_key, upkeep_jobs, upkeep_run
from registrations.models import IdempotencyRecord
from tests.processes import procfile_command, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def session_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return bool(cursor.fetchone()[0])


def record(key, age):
    return IdempotencyRecord.objects.create(
        key=key, request_fingerprint="f", response_status=202, response_body={}, created_at=timezone.now() - age
    )


def test_the_procfile_scheduler_runs_every_job_each_interval_and_stops_cleanly_on_sigterm(system):
    # given
    record("api:expired", dt.timedelta(days=2))
    record("api:fresh", dt.timedelta(minutes=1))

    # when: the Procfile's line, as a Procfile runner starts it (a shell that hands over to the command)
    scheduler = system.start(
        "scheduler", ["/bin/sh", "-c", f"exec {procfile_command('scheduler')}"], MICE_UPKEEP_INTERVAL="0.5"
    )

    # then: the expired record is purged, the fresh one kept, and the jobs come round again
    wait_until(lambda: not IdempotencyRecord.objects.filter(key="api:expired").exists(), what="expired key purged")
    assert IdempotencyRecord.objects.filter(key="api:fresh").exists()
    for job in upkeep_jobs():
        wait_until(lambda job=job: scheduler.log().count(f"job={job}") >= 2, timeout=20, what=f"{job} run twice")
    assert "count=1 job=idempotency_keys_expired" in scheduler.log()  # each job logs what it did, and how long

    assert scheduler.terminate() == 0
    assert scheduler.log().rstrip().endswith('msg="upkeep stopped"')


def test_a_job_another_scheduler_is_running_is_skipped_this_round(database_url):
    # given: another scheduler holds the job's lock
    runs = []
    other = psycopg2.connect(database_url)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s), pg_backend_pid()", [_NAMESPACE, _lock_key("probe")])
            other_pid = cursor.fetchone()[1]

        # when
        [outcome] = upkeep_run(jobs={"probe": lambda: runs.append(1) or 1})
    finally:
        other.close()  # its lock goes with its session

    # then
    assert (outcome.outcome, runs) == ("skipped", [])
    # The server ends the other session a moment after the client has closed it, and frees its lock then.
    wait_until(lambda: not session_alive(other_pid), timeout=10, what="the other scheduler's session ended")
    [outcome] = upkeep_run(jobs={"probe": lambda: runs.append(1) or 1})
    assert (outcome.outcome, outcome.count, runs) == ("done", 1, [1])


def test_a_failing_job_is_logged_and_the_others_still_run(caplog):
    def broken() -> int:
        raise RuntimeError("boom")

    outcomes = upkeep_run(jobs={"broken": broken, "fine": lambda: 3})

    assert [(o.job, o.outcome, o.count) for o in outcomes] == [("broken", "failed", 0), ("fine", "done", 3)]
    assert "upkeep job failed" in caplog.text
