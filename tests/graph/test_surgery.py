"""Surgery on real architectures: every applicable method at rank fraction 0.5 runs, keeps the output shape,
and a .keras save/load round trip gives identical outputs; other layers keep their weights."""
import subprocess
import sys

import keras
import numpy as np
import pytest

from edgecompress import factorize
from edgecompress.errors import UnsupportedLayerError
from edgecompress.graph.layers import describe
from edgecompress.graph.surgery import compress_model
from tests.graph.architectures import ARCHITECTURES, multi_io_net


def random_inputs(model, batch=2):
    return [np.random.rand(batch, *t.shape[1:]).astype(np.float32) for t in model.inputs]


def choices_for(model, method, fraction=0.5):
    return {info.name: (method, fraction) for info in describe(model)
            if factorize.get(method).why_not(info) is None}


def as_list(outputs):
    return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def arch_method_cases():
    cases = []
    for name, build in ARCHITECTURES.items():
        model = build()
        for method in factorize.available():
            if choices_for(model, method):
                marks = [pytest.mark.slow] if name == "mobilenet_v2" and method in ("cp", "tt", "tucker") else []
                cases.append(pytest.param(name, method, marks=marks, id=f"{name}-{method}"))
    return cases


@pytest.mark.parametrize("arch, method", arch_method_cases())
def test_compress_runs_and_round_trips(arch, method, tmp_path):
    model = ARCHITECTURES[arch]()
    choices = choices_for(model, method)
    compressed = compress_model(model, choices)
    inputs = random_inputs(model)
    before, after = as_list(model(inputs)), as_list(compressed(inputs))
    assert [o.shape for o in before] == [o.shape for o in after]
    names = {layer.name for layer in compressed.layers}
    assert not set(choices) & names, "replaced layers must be gone"
    assert all(f"{name}_{method}_0" in names for name in choices)
    path = tmp_path / "compressed.keras"
    compressed.save(path)
    reloaded = keras.models.load_model(path)
    for a, b in zip(after, as_list(reloaded(inputs))):
        np.testing.assert_array_equal(a, b)


def test_untouched_layers_keep_weights_and_original_is_unchanged():
    model = ARCHITECTURES["concat_net"]()
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers}
    first_conv = next(info.name for info in describe(model) if info.kind == "conv2d")
    compressed = compress_model(model, {first_conv: ("tucker", 0.5)})
    for layer in compressed.layers:
        if layer.name in before and layer.get_weights():
            for a, b in zip(layer.get_weights(), before[layer.name]):
                np.testing.assert_array_equal(a, b)
    for layer in model.layers:
        for a, b in zip(layer.get_weights(), before[layer.name]):
            np.testing.assert_array_equal(a, b)


def test_multi_input_output_model():
    model = multi_io_net()
    compressed = compress_model(model, {"head_a": ("svd", 0.5), "head_b": ("qr", 1.0)})
    inputs = random_inputs(model)
    full_rank_b = np.asarray(compressed(inputs)[1])
    np.testing.assert_allclose(full_rank_b, np.asarray(model(inputs)[1]), rtol=1e-4, atol=1e-5)


def test_shared_layer_is_left_alone_with_reason():
    shared = keras.layers.Dense(8, name="shared_fc")
    inputs = keras.Input((8,))
    model = keras.Model(inputs, shared(shared(inputs)))
    info = describe(model)[0]
    assert info.reason and "shared between 2 call sites" in info.reason
    with pytest.raises(UnsupportedLayerError, match="shared_fc.*shared"):
        compress_model(model, {"shared_fc": ("svd", 0.5)})


def test_unknown_layer_name_is_a_clear_error():
    with pytest.raises(UnsupportedLayerError, match="no layer named 'nope'.*inspect"):
        compress_model(ARCHITECTURES["sequential_cnn"](), {"nope": ("svd", 0.5)})


def test_saved_model_loads_in_fresh_process_after_import_only(tmp_path):
    model = ARCHITECTURES["conv3d_net"]()
    choices = {**choices_for(model, "cp"), **{n: c for n, c in choices_for(model, "ttm").items() if "dense" in n}}
    compressed = compress_model(model, choices)
    x = np.random.rand(2, 4, 12, 12, 2).astype(np.float32)
    path = tmp_path / "m.keras"
    compressed.save(path)
    np.save(tmp_path / "x.npy", x)
    code = ("import sys, numpy as np, edgecompress, keras; m = keras.models.load_model(sys.argv[1]); "
            "np.save(sys.argv[3], np.asarray(m(np.load(sys.argv[2]))))")
    subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                   check=True, capture_output=True)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), np.asarray(compressed(x)))
