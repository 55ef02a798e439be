"""Latency cost tables: blocks timed on a target once, then served from the cache keyed by shape and runtime."""
import json

import pytest

import edgecompress.bench.api
from edgecompress.bench.costtable import CostTable, block_key, block_latency_ms
from edgecompress.errors import TargetError


def tucker_like_block(rank: int = 8, out_channels: int = 16):
    import keras

    return [keras.layers.Conv2D(rank, 1), keras.layers.Conv2D(rank, 3, padding="same"),
            keras.layers.Conv2D(out_channels, 1, activation="relu")]


def test_block_is_timed_once_then_cached(tmp_path, monkeypatch):
    cache = tmp_path / "latency.json"
    first_ms = block_latency_ms("host", tucker_like_block(), (16, 16, 16), cache_path=cache)
    assert first_ms > 0

    def no_run(*args, **kwargs):
        raise AssertionError("a cached block was measured again")

    monkeypatch.setattr(edgecompress.bench.api, "run", no_run)
    again = tucker_like_block()  # new layer objects with other names and initial weights: same cost key
    assert block_latency_ms("host", again, (16, 16, 16), cache_path=cache) == first_ms
    entry = next(iter(json.loads(cache.read_text())["entries"].values()))
    assert entry["target"] == "host" and entry["runtime"].startswith("ai_edge_litert ") and not entry["emulated"]


def test_many_blocks_in_one_call_and_cost_grows_with_rank(tmp_path):
    table = CostTable("host", cache_path=tmp_path / "latency.json")
    small_ms, large_ms = table.latency_many([(tucker_like_block(rank=4), (32, 32, 64)),
                                             (tucker_like_block(rank=64, out_channels=64), (32, 32, 64))])
    assert large_ms > 2 * small_ms


def test_keys_separate_shapes_and_configs_but_not_names(models):
    import keras

    base = block_key(tucker_like_block(), (16, 16, 16))
    assert base == block_key(tucker_like_block(), (16, 16, 16))
    assert base != block_key(tucker_like_block(), (8, 8, 16))
    assert base != block_key(tucker_like_block(rank=4), (16, 16, 16))
    assert block_key([keras.layers.Dense(4, name="a")], (8,)) == block_key([keras.layers.Dense(4, name="b")], (8,))
    assert block_key(models["base"], None) != block_key(models["cheap"], None)


def test_tflite_file_as_block(models, tmp_path):
    table = CostTable("host", cache_path=tmp_path / "latency.json")
    assert table.latency_ms(models["base"]) > table.latency_ms(models["cheap"]) * 0.5 > 0


def test_emulated_target_is_refused_for_budgets(tmp_path):
    with pytest.raises(TargetError, match="emulated, useless as a latency budget"):
        CostTable("arm64-qemu", cache_path=tmp_path / "latency.json")


def test_int8_blocks_are_keyed_apart(tmp_path):
    cache = tmp_path / "latency.json"
    fp32_ms = block_latency_ms("host", tucker_like_block(), (16, 16, 16), cache_path=cache)
    int8_ms = block_latency_ms("host", tucker_like_block(), (16, 16, 16), cache_path=cache, precision="int8")
    keys = sorted(json.loads(cache.read_text())["entries"])  # each precision: the block and its overhead probe
    assert len(keys) == 4 and sum("|fp32|" in k for k in keys) == 2 and sum("|int8|" in k for k in keys) == 2
    assert fp32_ms > 0 and int8_ms > 0


def test_latency_is_the_timed_p50_less_the_invoke_overhead(tmp_path):
    """A block's cost is what it adds to a model: its own p50 as a model of its own, less that of a one-RELU model
    on its input shape (the runner's cost around an invoke, paid once per model, not once per layer)."""
    table = CostTable("host", cache_path=tmp_path / "latency.json")
    block = (tucker_like_block(rank=16, out_channels=32), (16, 16, 16))
    overhead_ms = table.overhead_ms((16, 16, 16))
    assert 0 < overhead_ms < table.timed_ms([block])[0]
    assert table.latency_ms(*block) == pytest.approx(table.timed_ms([block])[0] - overhead_ms)


def _conv_model(channels: int, name: str):
    import keras

    inputs = keras.Input((32, 32, 16))
    x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(16, 3, padding="same")(x), name=name)


def test_whole_models_are_timed_in_context_then_cached(tmp_path, monkeypatch):
    """model_ratios: each candidate against the original, interleaved (a model with 1/8 of the channels runs at
    well under 0.8 of the time; generous, the host is shared); the same files are then served from the cache."""
    table = CostTable("host", cache_path=tmp_path / "latency.json")
    original, thin = _conv_model(64, "original"), _conv_model(8, "thin")
    (timed,) = table.model_ratios(original, [thin])
    assert 0 < timed["ratio"] < 0.8 and timed["candidate_ms"] < timed["original_ms"]
    assert timed["ratio"] == pytest.approx(timed["candidate_ms"] / timed["original_ms"], rel=0.25)

    def no_run(*args, **kwargs):
        raise AssertionError("a cached pair of models was timed again")

    monkeypatch.setattr(edgecompress.bench.api, "run", no_run)
    assert table.model_ratios(original, [thin]) == [timed]
