"""Paired A/B comparisons: interleaved runs of two models in one process, speedup with a bootstrap 95% CI."""
import dataclasses

import numpy as np

from edgecompress import bench
from edgecompress.ondevice import runner
from tests.bench.conftest import QUICK

PAIRED = bench.BenchSettings(min_runs=60, min_secs=0.6, max_secs=10, warmup_runs=5, warmup_secs=0.05, segments=6)


def test_identical_copies_ci_contains_one(models):
    # A calibrated 95% CI misses the truth in 1 run of 20, so one independent second run is allowed:
    # both missing happens 1 time in 400, while a biased CI would miss both nearly always.
    misses = []
    for seed in (0, 1):
        result = bench.run([models["base"], models["copy"]], settings=dataclasses.replace(PAIRED, seed=seed))
        comparison = result.comparisons[0]
        assert comparison["segments"] == 6 and result.settings["interleaved"]
        assert result.models[0]["runs"] == result.models[1]["runs"]  # one sample of each per round
        if comparison["ci95"][0] <= 1.0 <= comparison["ci95"][1]:
            return
        misses.append(comparison)
    raise AssertionError(f"95% CI of identical copies excluded 1.0 twice: {misses}")


def test_four_times_cheaper_model_ci_excludes_one(models):
    result = bench.run([models["base"], models["cheap"]], settings=QUICK)
    comparison = result.comparisons[0]
    assert comparison["ci95"][0] > 1.5, comparison  # the cheap model is clearly faster
    assert comparison["ci95"][0] <= comparison["speedup"] <= comparison["ci95"][1]


def test_ci_reflects_spread_between_segments():
    """A model that is 1% faster in half of the segments and 1% slower in the rest is not faster."""
    rng = np.random.default_rng(0)
    base = [list(1.0 + 0.001 * rng.standard_normal(200)) for _ in range(6)]
    other = [list(np.array(b) * (0.99 if j % 2 else 1.01)) for j, b in enumerate(base)]
    low, high = runner.speedup_ci(base, other)["ci95"]
    assert low < 1.0 < high


def test_ci_of_a_real_difference_is_tight():
    rng = np.random.default_rng(0)
    base = [list(4.0 + 0.2 * rng.standard_normal(100)) for _ in range(4)]
    other = [list(1.0 + 0.05 * rng.standard_normal(100)) for _ in range(4)]
    result = runner.speedup_ci(base, other)
    assert 3.8 < result["ci95"][0] < result["speedup"] < result["ci95"][1] < 4.2
