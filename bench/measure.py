"""Percentiles and medians: how every benchmark in bench/ turns its samples into the figures it prints."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile of `values`, nearest-rank: the smallest value with at least p% of the values <= it.

    With n values it is the ceil(p * n / 100)-th smallest (the smallest for p = 0): always a value that was
    measured, never one interpolated between two, so the p99 of 100 latencies is the 99th smallest and p100
    is the maximum. NaN when there are no values. `values` need not be sorted.

    Every script in bench/ uses this one definition, so their percentile columns can be compared.
    """
    if not 0 <= p <= 100:
        raise ValueError(f"a percentile is between 0 and 100, not {p}")
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p * len(ordered) / 100))  # p * n first: exact for whole p, no 99.00000000000001
    return ordered[rank - 1]


@dataclass(frozen=True)
class Percentiles:
    """p50 / p95 / p99 / max of one set of samples (NaN for none), as the scripts print and tabulate them."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Percentiles:
        ordered = sorted(values)
        return cls(
            count=len(ordered),
            p50=percentile(ordered, 50),
            p95=percentile(ordered, 95),
            p99=percentile(ordered, 99),
            max=ordered[-1] if ordered else math.nan,
        )

    def text(self, unit: str = "ms") -> str:
        values = ("p50", self.p50), ("p95", self.p95), ("p99", self.p99), ("max", self.max)
        return ", ".join(f"{name} {value:.1f} {unit}" for name, value in values)
