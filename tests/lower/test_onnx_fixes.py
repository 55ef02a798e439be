"""Repairs of tf2onnx output, checked on hand-built ONNX graphs run by onnxruntime."""
import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecompress.lower.onnx import split_fused_conv_add


def conv_with_addend(spatial: int) -> tuple[onnx.ModelProto, dict]:
    """Conv(x, w, b, addend): what tf2onnx writes for a 1x1 conv, its bias and a BiasAdd-shaped residual."""
    rng = np.random.default_rng(0)
    arrays = {"w": rng.normal(size=(4, 3) + (1,) * spatial).astype(np.float32),
              "b": rng.normal(size=4).astype(np.float32)}
    shape = [1, 3] + [2] * spatial
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b", "addend"], ["y"], name="conv")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape),
         helper.make_tensor_value_info("addend", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4] + [2] * spatial)],
        [numpy_helper.from_array(value, name) for name, value in arrays.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), arrays


@pytest.mark.parametrize("spatial", [1, 2, 3])
def test_a_conv_with_a_fourth_input_becomes_conv_then_add(spatial):
    model, arrays = conv_with_addend(spatial)
    assert split_fused_conv_add(model) == ["conv"]
    onnx.checker.check_model(model, full_check=True)
    rng = np.random.default_rng(1)
    x = rng.normal(size=[1, 3] + [2] * spatial).astype(np.float32)
    addend = rng.normal(size=4).astype(np.float32)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x, "addend": addend})
    channel = (slice(None),) + (None,) * spatial  # (C,) broadcast over the spatial axes of NC...
    expected = np.einsum("oi,ni...->no...", arrays["w"].reshape(4, 3), x) + (arrays["b"] + addend)[channel]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)  # float32 sums of 3 terms
