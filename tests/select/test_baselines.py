"""Baselines: EVBMF finds the rank of a noisy low-rank matrix, energy keeps the asked energy, and each meets a
params budget through its one knob on a small model."""
import math

import numpy as np
import pytest

from edgecompress.factorize import applicable_pairs, get
from edgecompress.graph.layers import describe
from edgecompress.select import baselines
from edgecompress.select.baselines import DEFAULT_KNOBS
from edgecompress.select.selectors import BaselineSelector
from tests.conftest import single_layer_model
from tests.factorize.layer_cases import make_layer


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


@pytest.mark.parametrize("select", list(DEFAULT_KNOBS))
def test_each_baseline_meets_a_params_budget(tiny_run, select):
    run, searched = tiny_run
    selector = BaselineSelector(run.folded, run.tasks, select, hybrid=True, scorers=searched.scorers)
    limit = math.floor(0.25 * run.total("params"))
    choices = selector.choose("params", limit, 0)
    kept = sum(run.tasks[name].info.params for name in run.tasks if name not in choices)
    assert kept + sum(p.params for p in choices.values()) <= limit
    assert {p.method for p in choices.values()} <= {"tucker", "svd"}


@pytest.mark.parametrize("method, kind", applicable_pairs())
def test_every_method_names_unfoldings_that_set_its_rank(method, kind):
    """A baseline's per-unfolding ranks at their maximum give a rank the method accepts, one entry per mode."""
    layer, input_shape = make_layer(method, kind)
    info = describe(single_layer_model(layer, input_shape))[-1]
    chosen = get(method)
    unfoldings = chosen.unfoldings(info, layer.kernel.numpy())
    assert unfoldings and all(m.ndim == 2 for m in unfoldings)
    rank = chosen.rank_from_unfoldings(info, [min(m.shape) for m in unfoldings])
    assert len(chosen.resolve(info, rank)) == len(chosen.full_rank(info))
