"""The runner under tflite-runtime alone (numpy<2, no TensorFlow, no ai-edge-litert): what a 32-bit Raspberry
Pi OS user has. Slow: the first run builds the venv from PyPI (edgecompress target setup host-tflite-runtime)."""
import pytest

from edgecompress import bench
from tests.bench.conftest import QUICK


@pytest.mark.slow
def test_tflite_runtime_gives_the_same_top1_as_ai_edge_litert(models, data):
    target = bench.get_target("host-tflite-runtime")
    target.setup(progress=print)
    float_and_int8 = [models["base"], models["base_int8"]]
    old = bench.run(float_and_int8, target=target, data=data, settings=QUICK)
    new = bench.run(float_and_int8, target="host", data=data, settings=QUICK)
    assert {m["runtime"]["name"] for m in old.models} == {"tflite_runtime"}
    assert {m["runtime"]["name"] for m in new.models} == {"ai_edge_litert"}
    assert old.system["numpy"].startswith("1.")
    for before, after in zip(old.models, new.models):
        assert before["accuracy"]["top1"] == after["accuracy"]["top1"]
