import math

import pytest

from bench.measure import Percentiles, percentile

ONE_TO_HUNDRED = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose


def test_percentile_of_one_to_hundred_is_a_measured_value_of_that_rank():
    assert percentile(ONE_TO_HUNDRED, 50) == 50
    assert percentile(ONE_TO_HUNDRED, 95) == 95
    assert percentile(ONE_TO_HUNDRED, 99) == 99
    assert percentile(ONE_TO_HUNDRED, 100) == 100
    assert percentile(ONE_TO_HUNDRED, 0) == 1


def test_percentile_never_interpolates_between_two_values():
    # given ten values: the p99 is the largest, not a value between the 9th and the 10th
    values = [float(v) for v in range(1, 11)]

    assert percentile(values, 99) == 10
    assert percentile(values, 50) == 5
    assert percentile(values, 51) == 6


def test_percentile_of_a_single_value_is_that_value():
    assert percentile([7.5], 0) == 7.5
    assert percentile([7.5], 50) == 7.5
    assert percentile([7.5], 99) == 7.5


def test_percentile_of_nothing_is_nan():
    assert math.isnan(percentile([], 50))
    assert math.isnan(Percentiles.of([]).max)


def test_percentile_outside_0_to_100_is_refused():
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_percentiles_summary_uses_the_same_definition():
    summary = Percentiles.of(ONE_TO_HUNDRED)

    assert (summary.count, summary.p50, summary.p95, summary.p99, summary.max) == (100, 50, 95, 99, 100)
