"""Baselines: EVBMF finds the rank of a noisy low-rank matrix, energy keeps the asked energy, and each meets a
params budget through its one knob on a small model."""
import math

import numpy as np
import pytest

from edgecompress.select import baselines
from edgecompress.select.selectors import BaselineSelector


@pytest.mark.parametrize("rank, shape", [(5, (60, 40)), (12, (100, 300)), (1, (30, 30))])
def test_evbmf_recovers_the_rank_of_a_noisy_low_rank_matrix(rank, shape):
    rng = np.random.default_rng(rank)
    signal = rng.normal(size=(shape[0], rank)) @ rng.normal(size=(rank, shape[1]))
    noisy = signal + 0.1 * rng.normal(size=shape)
    values = np.linalg.svd(noisy, compute_uv=False)
    assert baselines.evbmf_rank(values, shape) == rank


def test_energy_rank_keeps_the_fraction_asked():
    values = np.array([4.0, 2.0, 1.0, 1.0])  # energies 16, 4, 1, 1 of 22
    assert baselines.energy_rank(values, 16 / 22) == 1
    assert baselines.energy_rank(values, 0.9) == 2
    assert baselines.energy_rank(values, 1.0) == 4


@pytest.mark.parametrize("select", ["vbmf", "energy", "uniform"])
def test_each_baseline_meets_a_params_budget(tiny_run, select):
    run, _ = tiny_run
    selector = BaselineSelector(run.folded, run.tasks, select, hybrid=True)
    limit = math.floor(0.25 * run.total("params"))
    choices = selector.choose("params", limit, 0)
    kept = sum(run.tasks[name].info.params for name in run.tasks if name not in choices)
    assert kept + sum(p.params for p in choices.values()) <= limit
    assert {p.method for p in choices.values()} <= {"tucker", "svd"}


def test_unfoldings_exist_for_every_registered_method():
    from edgecompress.factorize import available

    assert set(available()) <= set(baselines.UNFOLDINGS)
