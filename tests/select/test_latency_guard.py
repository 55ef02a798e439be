"""The latency guard (on by default on the CLI) and ranks aligned to the target's channel tile.

The API tests use a stand-in cost table (deterministic latencies, no timing); the CLI tests time real blocks on
the host's LiteRT, as a user's run does.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from edgecompress import cli, factorize
from edgecompress.bench.costtable import TILE_PROBE_CHANNELS, channel_tile
from edgecompress.compress import CompressConfig, compress
from edgecompress.factorize.base import align_rank
from edgecompress.graph.layers import describe
from tests.select.conftest import TEST_LEVELS
from tests.select.models import calibration, trained_tiny_cnn

# Measured on this project's AVX-512 host (bench/results/latency_default.md): XNNPACK fp32 steps after 16 and 32
# output channels, not after 48 (its 32-wide kernel covers 33..48 as well as 17..32 would).
MEASURED_FP32_US = {4: 37.0, 5: 36.2, 8: 35.4, 9: 35.5, 12: 34.4, 13: 34.5, 16: 34.4, 17: 61.5, 20: 61.2, 21: 61.4,
                    24: 61.3, 25: 61.5, 28: 61.1, 29: 61.6, 32: 48.4, 33: 89.7, 36: 90.0, 37: 89.3, 40: 89.6,
                    41: 89.0, 44: 89.7, 45: 91.1, 48: 91.4, 49: 91.7}


def stepped(tile: int, noise: float = 0.02) -> dict[int, float]:
    """Probe latencies of a runtime with `tile`-wide kernels: one step per started tile, plus noise."""
    rng = np.random.default_rng(tile)
    return {c: (1 + -(-c // tile)) * (1 + noise * rng.uniform(-1, 1)) for c in TILE_PROBE_CHANNELS}


@pytest.mark.parametrize("latencies, tile", [(MEASURED_FP32_US, 16), (stepped(8), 8), (stepped(16), 16),
                                             (stepped(4), 4), ({c: 1.0 for c in TILE_PROBE_CHANNELS}, 1)])
def test_channel_tile_is_where_time_steps_up(latencies, tile):
    assert channel_tile(latencies) == tile


def test_align_rank_rounds_whole_tiles_down_and_leaves_smaller_entries():
    assert align_rank((5, 16, 17, 31, 33, 70), 16) == (5, 16, 16, 16, 32, 64)


def _layer_for(method: factorize.Method):
    """A 64->64 layer the method applies to: 1x1 conv for matrix methods, else 3x3 (or Dense if conv is not claimed)."""
    inputs = keras.Input((8, 8, 64))
    if "conv2d" in method.kinds:
        kernel = 1 if method.pointwise_only else 3
        outputs = keras.layers.Conv2D(64, kernel, padding="same", name="layer")(inputs)
    else:
        inputs = keras.Input((64,))
        outputs = keras.layers.Dense(64, name="layer")(inputs)
    return next(info for info in describe(keras.Model(inputs, outputs)) if info.name == "layer")


@pytest.mark.parametrize("name", factorize.available())
def test_offered_grid_holds_the_multiple(name):
    """Every method: with multiple 16, each channel rank of one tile or more is a whole number of tiles; methods
    whose ranks are not channel counts (TT-matrix) offer their grid unchanged."""
    method = factorize.get(name)
    info = _layer_for(method)
    aligned, plain = method.ranks(info, 16), method.ranks(info)
    assert aligned, f"{name}: nothing offered with alignment"
    if not method.ranks_are_channels:
        assert aligned == plain
        return
    for rank in aligned:
        assert all(r < 16 or r % 16 == 0 for r in rank) or method.rank_problem(info, align_rank(rank, 16)), rank
    assert len(aligned) <= len(plain)


class StandInTable:
    """A cost table with fixed latencies: each layer 1.0 ms, each block 0.5 ms, except blocks on inputs of
    `slow_shape` (2.0 ms: factorizing that layer does not pay); channel tile 16."""

    def __init__(self, target: str, slow_shape: tuple):
        self.target, self.runtime, self.slow_shape = SimpleNamespace(name=target), "stand-in 1.0", slow_shape

    def latency_many(self, requests):
        latencies = []
        for block, shape in requests:
            original = len(block) == 1  # the layer as it is; every block has two or more layers
            latencies.append(1.0 if original else 2.0 if tuple(shape) == self.slow_shape else 0.5)
        return latencies

    def channel_multiple(self) -> int:
        return 16


def test_guard_keeps_a_layer_whose_blocks_do_not_pay_and_records_target_tile_and_latency():
    conv2_input = tuple(trained_tiny_cnn().get_layer("conv2").input.shape[1:])
    config = CompressConfig(budget="params=0.7", latency_guard="stand-in", levels=TEST_LEVELS, samples_per_layer=256,
                            cost_table=lambda target: StandInTable(target, conv2_input))
    result = compress(trained_tiny_cnn(), calibration(128), config)
    layers = {layer.name: layer for layer in result.plan.layers}
    assert layers["conv2"].method is None and "no block is faster than the layer on stand-in" in layers["conv2"].reason
    budget = result.plan.budget
    assert budget["latency_guard"] == "stand-in" and budget["rank_multiple"] == 16
    assert budget["latency_runtime"] == "stand-in 1.0"
    assert budget["latency_guard_after_ms"] <= budget["latency_guard_before_ms"]
    for layer in result.plan.layers:
        if layer.method and factorize.get(layer.method).ranks_are_channels:
            assert all(r < 16 or r % 16 == 0 for r in layer.rank), (layer.name, layer.rank)


# --- the CLI: guarded by default, on the host --------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard")
    trained_tiny_cnn().save(root / "tiny.keras")
    x, y = calibration(128)
    np.savez(root / "calib.npz", x=x, y=y)
    return root


def _compress(files, out, *extra):
    return cli.main(["compress", str(files / "tiny.keras"), "--data", str(files / "calib.npz"), "-o", str(out),
                     "--budget", "params=0.5", "--methods", "tucker,svd", "--memory-cap-mb", "64", *extra])


def test_cli_default_is_guarded_on_host_and_no_slower_there(files, tmp_path):
    """Default plan on the host cost table: no guarded layer's chosen block is timed slower than the layer, so
    the guarded total is no slower; layers left alone say why; the tile used is recorded."""
    assert _compress(files, tmp_path / "out") == 0
    budget = json.loads((tmp_path / "out" / "plan.json").read_text())["budget"]
    assert budget["latency_guard"] == "host" and budget["rank_multiple"] >= 1
    assert budget["latency_runtime"].split()[0] in ("ai_edge_litert", "tflite_runtime", "tensorflow")
    assert budget["latency_guard_after_ms"] <= budget["latency_guard_before_ms"]


def test_no_latency_guard_restores_the_unguarded_plan(files, tmp_path):
    assert _compress(files, tmp_path / "out", "--no-latency-guard") == 0
    budget = json.loads((tmp_path / "out" / "plan.json").read_text())["budget"]
    assert "latency_guard" not in budget and "rank_multiple" not in budget


def test_unknown_guard_target_is_one_line_before_any_capture(files, tmp_path, capsys):
    rc = _compress(files, tmp_path / "out", "--latency-guard", "no-such-board")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no-such-board" in err[0], err
    assert not (tmp_path / "out").exists()


def test_cli_latency_budget_is_measured_on_the_whole_model(files, tmp_path, capsys):
    """On the host: the plan's whole model is timed against the original's, and the summary says so; a runtime on
    which no plan reaches 0.9 of the original says what is reachable, in one line."""
    rc = _compress(files, tmp_path / "out", "--budget", "latency=0.9@host")
    out, err = capsys.readouterr()
    if rc == 2:
        assert "whole models timed" in err and "latency>=" in err and len(err.strip().splitlines()) == 1, err
        return
    assert rc == 0, err
    budget = json.loads((tmp_path / "out" / "plan.json").read_text())["budget"]
    assert budget["latency_measured_as"] == "whole model" and budget["achieved"]["latency"] <= 0.9
    assert budget["latency_model_after_ms"] <= 0.9 * budget["latency_model_before_ms"]
    assert "whole models interleaved" in out and "asked <= 0.9, measured" in out


def test_target_precision_reaches_the_cost_table_and_the_plan():
    """--target-precision int8 builds int8 cost tables (nothing timed here); the precision a table times at is
    recorded in plan.json."""
    from edgecompress.commands.compress import _cost_table_if_needed

    args = SimpleNamespace(latency_guard="host", target_precision="int8")
    assert _cost_table_if_needed(args, None)("host").precision == "int8"
    assert _cost_table_if_needed(SimpleNamespace(latency_guard="host", target_precision="fp32"), None)(
        "host").precision == "fp32"

    class Int8StandIn(StandInTable):
        precision = "int8"

    config = CompressConfig(budget="params=0.7", latency_guard="stand-in", levels=TEST_LEVELS, samples_per_layer=256,
                            cost_table=lambda target: Int8StandIn(target, ()))
    assert compress(trained_tiny_cnn(), calibration(128), config).plan.budget["latency_precision"] == "int8"


@pytest.mark.slow
def test_cli_target_precision_int8_prices_blocks_in_int8(files, tmp_path, capsys):
    """--target-precision int8: the guard's blocks, layers and channel probe are timed as int8 .tflite; plan.json
    and the summary say so."""
    assert _compress(files, tmp_path / "out", "--target-precision", "int8") == 0
    out = capsys.readouterr().out
    budget = json.loads((tmp_path / "out" / "plan.json").read_text())["budget"]
    assert budget["latency_guard"] == "host" and budget["latency_precision"] == "int8"
    assert budget["latency_guard_after_ms"] <= budget["latency_guard_before_ms"]
    assert " int8, layers timed alone" in out


def test_cli_int8_faithful_is_recorded(files, tmp_path):
    """--int8-faithful (implied by --target-precision int8): hybrid without the int8-fragile methods."""
    rc = cli.main(["compress", str(files / "tiny.keras"), "--data", str(files / "calib.npz"), "-o",
                   str(tmp_path / "out"), "--budget", "params=0.5", "--memory-cap-mb", "64", "--no-latency-guard",
                   "--int8-faithful"])
    assert rc == 0
    budget = json.loads((tmp_path / "out" / "plan.json").read_text())["budget"]
    assert budget["int8_faithful"] == {"left_out": ["cp"]} and "cp" not in budget["methods"]
