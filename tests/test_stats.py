"""The intervals are checked, not assumed: coverage by simulation, width against n, and NaN counted."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bench import tables
from bench.errors import BenchError
from bench.metrics.fid import frechet_distance
from bench.metrics.kid import kernel_inception_distance
from bench.runner import Runner, ScenarioResult
from bench.stats import Estimate, mean_interval, set_interval


def test_mean_interval_covers_the_true_mean_about_95_percent_of_the_time():
    covered = 0
    for trial in range(200):
        values = np.random.default_rng(trial).normal(3.0, 2.0, size=40)
        estimate = mean_interval(values, seed=trial)
        assert estimate.low < estimate.value < estimate.high
        covered += estimate.low <= 3.0 <= estimate.high
    assert 0.90 <= covered / 200 <= 0.99


def test_mean_interval_width_shrinks_as_one_over_root_n():
    def width(n):
        return np.mean([mean_interval(np.random.default_rng(t).normal(0, 1, size=n), seed=t).standard_error
                        for t in range(30)])
    small, large = width(25), width(100)
    assert small / large == pytest.approx(2.0, rel=0.2)
    assert small == pytest.approx(1 / np.sqrt(25), rel=0.2)  # sigma / sqrt(n)


def _two_gaussians(seed, n, dim=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)), rng.normal(0.5, 1.2, size=(n, dim))


STATISTICS = pytest.mark.parametrize("statistic", [frechet_distance, kernel_inception_distance], ids=["fid", "kid"])


@STATISTICS
def test_set_interval_has_width_holds_the_estimate_and_shrinks_with_n(statistic):
    def intervals(n, trials):
        return [set_interval(statistic, *_two_gaussians(t, n), resamples=100, seed=t) for t in range(trials)]
    small, large = intervals(30, 8), intervals(120, 8)
    assert all(e.low < e.value < e.high for e in small + large)
    assert np.mean([e.high - e.low for e in large]) < 0.65 * np.mean([e.high - e.low for e in small])


@pytest.mark.slow
@STATISTICS
def test_set_interval_covers_the_expected_statistic(statistic):
    """Target: the statistic's mean over many independent draws at this n (FID is biased at small n;
    the interval is about the estimator at the n it is computed on). 4-d features, 100 trials."""
    n = 40
    target = np.mean([statistic(*_two_gaussians(10_000 + i, n)) for i in range(300)])
    covered = sum(e.low <= target <= e.high for e in
                  (set_interval(statistic, *_two_gaussians(t, n), resamples=200, seed=t) for t in range(100)))
    assert 0.85 <= covered / 100 <= 0.995


def test_nan_values_are_counted_not_dropped_silently():
    estimate = mean_interval(np.array([1.0, np.nan, 3.0, np.nan, 2.0]))
    assert (estimate.value, estimate.n, estimate.nan_count) == (2.0, 3, 2)
    assert estimate.as_dict()["nan_count"] == 2
    assert mean_interval(np.array([np.nan, np.nan])).nan_count == 2
    assert mean_interval(np.array([1.0, 2.0])).nan_count == 0


class _Metric:
    higher_is_better = True
    nan_meaningful = False


class _MeaningfulNaN(_Metric):
    nan_meaningful = True


def _write(tmp_path, samples, metric):
    folder = tmp_path / "cell"
    folder.mkdir(exist_ok=True)
    label = SimpleNamespace(label="tiny")
    cell = SimpleNamespace(key="abc123", defense=label, attack=SimpleNamespace(label="pgd-encoder"),
                           scenario=SimpleNamespace(label="reconstruction"), eps=8 / 255, budget={"eps": 8 / 255},
                           threat_model="adaptive",
                           transfer_source=None, seed=0, resolved=lambda: {})
    store = SimpleNamespace(folder=folder, summary_path=folder / "summary.json")
    context = SimpleNamespace(metrics={"psnr": metric}, defense=SimpleNamespace(weights=lambda: {}))
    runner = Runner(tmp_path / "run")
    return runner._write(cell, store, context, ScenarioResult(pd.DataFrame(samples))), store


def test_a_nan_metric_fails_its_cell_with_one_line_naming_it(tmp_path):
    samples = {"index": [0, 1, 2, 3], "psnr": [20.0, np.nan, 22.0, np.nan]}
    with pytest.raises(BenchError) as err:
        _write(tmp_path, samples, _Metric())
    message = str(err.value)
    assert "\n" not in message
    assert "abc123" in message and "tiny x pgd-encoder" in message and "psnr 2 of 4" in message
    assert not (tmp_path / "cell" / "summary.json").exists()


def test_a_metric_that_declares_nan_meaningful_reports_the_count(tmp_path):
    samples = {"index": [0, 1, 2, 3], "psnr": [20.0, np.nan, 22.0, 24.0]}
    summary, store = _write(tmp_path, samples, _MeaningfulNaN())
    assert summary["metrics"]["psnr"]["nan_count"] == 1 and summary["metrics"]["psnr"]["n"] == 3
    assert json.loads(store.summary_path.read_text())["metrics"]["psnr"]["nan_count"] == 1
    table = tables.render([summary], "md")
    assert "(1 NaN)" in table
    assert tables.long_frame([summary])["nan_count"].tolist() == [1]


def test_set_estimate_dict_carries_nan_count():
    assert Estimate(1.0, 0.5, 1.5, 10).as_dict() == {"value": 1.0, "low": 0.5, "high": 1.5, "n": 10, "nan_count": 0}
