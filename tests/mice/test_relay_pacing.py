"""The relay's waits: turns to claim, and sleeping until a deadline, on a clock the test moves."""

import pytest

import mice.relay
from mice.relay import ClaimPacer, sleep_until


class Clock:
    """time.monotonic() that moves `tick` seconds per read and by what is slept; time.sleep() as strict as the
    real one about negative lengths."""

    def __init__(self, tick: float = 0.0) -> None:
        self.now, self.tick = 100.0, tick
        self.slept: list[float] = []

    def monotonic(self) -> float:
        self.now += self.tick
        return self.now

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(mice.relay.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(mice.relay.time, "sleep", clock.sleep)
    return clock


def test_a_deadline_that_passes_between_two_reads_of_the_clock_ends_the_sleep(clock):
    # given a clock that moves 60 ms each time it is read, and a deadline 100 ms away
    clock.tick = 0.06
    deadline = clock.now + 0.1

    # when the relay sleeps until then (reading the time twice per step would ask for -20 ms)
    sleep_until(deadline, lambda: False)

    # then it slept what was left, never a negative length
    assert all(s >= 0 for s in clock.slept)
    assert clock.now >= deadline


def test_busy_loops_take_turns_one_linger_apart_and_a_quiet_one_claims_at_once(clock):
    pacer = ClaimPacer(0.010)

    # a loop after a quiet spell: its turn is now
    pacer.wait_turn(lambda: False)
    first = clock.now
    assert clock.slept == []

    # two more loops woken by the same commit: each waits a linger after the one before
    pacer.wait_turn(lambda: False)
    second = clock.now
    pacer.wait_turn(lambda: False)
    assert second - first == pytest.approx(0.010)
    assert clock.now - second == pytest.approx(0.010)

    # after a quiet second, the next turn is at once again
    clock.now += 1.0
    slept = len(clock.slept)
    pacer.wait_turn(lambda: False)
    assert len(clock.slept) == slept


def test_a_stop_request_ends_the_wait_for_a_turn(clock):
    pacer = ClaimPacer(60.0)
    pacer.wait_turn(lambda: False)

    pacer.wait_turn(lambda: True)

    assert clock.slept == []
