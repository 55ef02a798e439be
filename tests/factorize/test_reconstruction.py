"""Full rank reconstructs the layer: block output vs original, max|diff| <= 1e-4 * max|y| in float32."""
import numpy as np
import pytest

from edgecompress import factorize
from edgecompress.graph.layers import describe, layer_weights
from tests.conftest import run_chain, single_layer_model
from tests.factorize.layer_cases import make_layer, variant_cases

RELATIVE_TOLERANCE = 1e-4


@pytest.mark.parametrize("method, kind, stride, padding, dilation",
                         variant_cases(factorize.applicable_pairs()))
def test_full_rank_reconstructs(method, kind, stride, padding, dilation):
    layer, input_shape = make_layer(method, kind, stride, padding, dilation, activation="linear")
    model = single_layer_model(layer, input_shape)
    info = describe(model)[0]
    chosen = factorize.get(method)
    assert info.reason is None and chosen.shape_problem(info) is None
    x = np.random.rand(3, *input_shape).astype(np.float32) - 0.5
    expected = model(x).numpy()
    kernel, bias = layer_weights(layer)
    block = chosen.build(info, chosen.decompose(info, kernel, bias, 1.0))
    actual = run_chain(block, x)
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= RELATIVE_TOLERANCE * np.abs(expected).max()


def test_ttm_layer_matches_t3f_dense_matrix():
    """TTMatrixDense on random cores equals x @ t3f.full(cores) within 1e-5 relative."""
    import t3f
    import tensorflow as tf

    from edgecompress.factorize.layers import TTMatrixDense

    in_modes, out_modes, ranks = (4, 2, 3), (3, 5, 2), (1, 3, 4, 1)
    cores = [np.random.randn(ranks[k], n, m, ranks[k + 1]).astype(np.float32)
             for k, (n, m) in enumerate(zip(in_modes, out_modes))]
    dense = TTMatrixDense(in_modes, out_modes, ranks, use_bias=False)
    dense.build((None, 24))
    dense.set_weights(cores)
    matrix = t3f.full(t3f.TensorTrain([tf.constant(c) for c in cores])).numpy()
    assert matrix.shape == (24, 30)
    x = np.random.randn(5, 24).astype(np.float32)
    expected = x @ matrix
    assert np.abs(dense(x).numpy() - expected).max() <= 1e-5 * np.abs(expected).max()
