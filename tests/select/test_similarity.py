"""Each similarity metric against an independent numpy reference, over the registry."""
import numpy as np
import pytest

from edgecompress.errors import EdgeCompressError
from edgecompress.select.similarity import DEFAULT_METRIC, get_metric, metrics


def _cka_kernel_form(x, y):
    """Linear CKA through centred Gram matrices (the n x n HSIC form), not the feature form the code uses."""
    n = len(x)
    centring = np.eye(n) - np.ones((n, n)) / n
    k, l = centring @ (x @ x.T) @ centring, centring @ (y @ y.T) @ centring
    return np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l))


REFERENCES = {
    "cosine": lambda x, y: np.dot(x.ravel(), y.ravel()) / (np.linalg.norm(x.ravel()) * np.linalg.norm(y.ravel())),
    "nmse": lambda x, y: 1 - np.mean((x - y) ** 2) / np.mean(x ** 2),
    "cka": _cka_kernel_form,
}


def _pair(seed=0, n=50, c=7):
    rng = np.random.default_rng(seed)
    y_true = np.maximum(rng.normal(size=(n, c)), 0)
    return y_true, y_true + 0.4 * rng.normal(size=(n, c))


def test_registry_has_the_three_metrics_and_a_default():
    assert {"cosine", "nmse", "cka"} <= set(metrics())
    assert DEFAULT_METRIC in metrics()


@pytest.mark.parametrize("name", sorted(metrics()))
def test_metric_equals_numpy_reference(name):
    for seed in range(3):
        y_true, y_pred = _pair(seed)
        assert get_metric(name)(y_true, y_pred) == pytest.approx(REFERENCES[name](y_true, y_pred), rel=1e-9)


@pytest.mark.parametrize("name", sorted(metrics()))
def test_metric_is_one_for_identical_and_lower_for_noisier(name):
    y_true, y_pred = _pair()
    noisier = y_true + 3 * (y_pred - y_true)
    metric = get_metric(name)
    assert metric(y_true, y_true) == pytest.approx(1.0)
    assert metric(y_true, noisier) < metric(y_true, y_pred) < 1.0


def test_unknown_metric_names_the_available_ones():
    with pytest.raises(EdgeCompressError, match="cka"):
        get_metric("psnr")
