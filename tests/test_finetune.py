"""One-shot fine-tuning: a tiny model compressed hard gets its validation accuracy back (measured before and
after), from labels or by distillation without labels; without either it is a clear error."""
import keras
import numpy as np
import pytest

from edgecompress.compress import CompressConfig, compress
from edgecompress.errors import ConfigError, DataError
from edgecompress.finetune import FinetuneConfig, distill_loss, finetune, top1_pct
from tests.select.models import calibration, fashion, trained_tiny_cnn


def _hard_compressed():
    """Fixed low ranks through per-layer overrides (no search: fast and the same every run)."""
    hard = {"conv2": "cp:3", "conv3": "tucker:3", "fc1": "svd:2", "_default": "skip"}
    config = CompressConfig(layers=hard, samples_per_layer=256)
    return compress(trained_tiny_cnn(), calibration(128), config).model


@pytest.mark.parametrize("distill", [False, True])
def test_finetuning_recovers_validation_accuracy(distill):
    x_train, y_train, x_test, y_test = fashion()
    original = top1_pct(trained_tiny_cnn(), x_test, y_test)
    model = _hard_compressed()
    before = top1_pct(model, x_test, y_test)
    config = FinetuneConfig(epochs=3, learning_rate=2e-3, distill=distill)
    result = finetune(model, x_train, None if distill else y_train, config, teacher=trained_tiny_cnn())
    after = top1_pct(result.model, x_test, y_test)
    assert before < original - 20, "the test needs a model that compression really hurt"
    assert after > before + 10  # measured: labels 25 -> ~50, distillation 25 -> ~41 (3 epochs)
    assert result.epochs_run >= 1 and "val_loss" in result.history


def test_without_labels_or_distillation_is_a_clear_error():
    x_train, _, _, _ = fashion()
    with pytest.raises(DataError, match="--distill"):
        finetune(keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]),
                 x_train[:20], None, FinetuneConfig(epochs=1))


def test_softened_kl_matches_numpy():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    temperature = 2.0

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p, q = softmax(teacher / temperature), softmax(student / temperature)
    expected = temperature ** 2 * np.sum(p * np.log(p / q), axis=1)
    got = keras.ops.convert_to_numpy(distill_loss(False, "kl", temperature)(teacher, student))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_auto_learning_rate_skips_a_diverging_rate_and_restores_the_weights(monkeypatch):
    """learning_rate='auto' probes each candidate from the same weights: a rate of 50 blows the loss up, so
    1e-3 is kept; every probe starts from the compressed weights (the probe leaves no trace)."""
    from edgecompress import finetune as finetune_module

    monkeypatch.setattr(finetune_module, "LEARNING_RATE_CANDIDATES", (50.0, 1e-3))
    x_train, y_train, _, _ = fashion()
    model = _hard_compressed()
    start = [w.copy() for w in model.get_weights()]
    seen = []
    original_probe = finetune_module.probe_learning_rate

    def probe_and_check(model, *args):
        chosen, losses = original_probe(model, *args)
        seen.append(all(np.array_equal(a, b) for a, b in zip(model.get_weights(), start)))
        return chosen, losses

    monkeypatch.setattr(finetune_module, "probe_learning_rate", probe_and_check)
    result = finetune(model, x_train, y_train, FinetuneConfig(epochs=1, learning_rate="auto"))
    assert seen == [True]
    assert result.learning_rate == 1e-3
    assert set(result.probe_losses) == {50.0, 1e-3}
    assert result.probe_losses[1e-3] < result.probe_losses[50.0]


@pytest.mark.parametrize("rate", ["fast", -1.0, 0, float("nan")])
def test_a_bad_learning_rate_is_a_clear_error(rate):
    x_train, y_train, _, _ = fashion()
    with pytest.raises(ConfigError, match="learning rate"):
        finetune(_hard_compressed(), x_train[:20], y_train[:20], FinetuneConfig(epochs=1, learning_rate=rate))
