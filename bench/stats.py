"""Aggregates with bootstrap 95% intervals, computed from stored per-sample values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 1000


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    n: int
    nan_count: int = 0
    """How many values were NaN: left out of the mean and the interval, and reported beside them
    (the runner fails a cell that has any, unless its metric declares NaN meaningful)."""

    @property
    def standard_error(self) -> float:
        """The half-width of the interval expressed as a normal standard error."""
        return (self.high - self.low) / (2 * 1.959964)

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n, "nan_count": self.nan_count}


def mean_interval(values: np.ndarray, seed: int = 0) -> Estimate:
    """Mean with a percentile bootstrap interval (scipy.stats.bootstrap), seeded and reproducible.

    NaN values are counted (``nan_count``), never dropped silently: the mean and interval are of
    the other values, and ``n`` is how many those are."""
    values = np.asarray(values, dtype=np.float64)
    nan = np.isnan(values)
    nan_count = int(nan.sum())
    values = values[~nan]
    if np.isinf(values).any():
        mean = float(values.mean())
        return Estimate(mean, mean, mean, len(values), nan_count)
    if len(values) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, nan_count)
    mean = float(values.mean())
    if len(values) < 2 or np.all(values == values[0]):
        return Estimate(mean, mean, mean, len(values), nan_count)
    result = stats.bootstrap((values,), np.mean, confidence_level=CONFIDENCE, n_resamples=RESAMPLES,
                             method="percentile", rng=np.random.default_rng(seed))
    return Estimate(mean, float(result.confidence_interval.low), float(result.confidence_interval.high),
                    len(values), nan_count)


def set_interval(statistic: Callable[[np.ndarray, np.ndarray], float], features: np.ndarray,
                 reference: np.ndarray, resamples: int = 200, seed: int = 0) -> Estimate:
    """A two-set statistic (FID, KID) with a bootstrap interval over both sets, resampled apart.

    Resampling with replacement duplicates samples, which inflates FID (and KID) by a bias that is
    large next to their spread at small n, so the plain percentile interval can miss the estimate
    itself. The interval is therefore the percentile interval of the bootstrap draws shifted by
    their bias (mean of the draws minus the estimate).
    """
    value = float(statistic(features, reference))
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    for i in range(resamples):
        a = features[rng.integers(0, len(features), len(features))]
        b = reference[rng.integers(0, len(reference), len(reference))]
        draws[i] = statistic(a, b)
    draws -= draws.mean() - value
    low, high = np.percentile(draws, [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2])
    return Estimate(value, float(low), float(high), len(features))
