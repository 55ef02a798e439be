"""The zoo registry: names, views, errors, custom registration, and the shipped pretrained weights."""
from __future__ import annotations

import io
import zipfile

import h5py
import keras
import numpy as np
import pytest

from edgecompress import data, zoo
from edgecompress.errors import DataError, ModelLoadError
from edgecompress.zoo import registry


def saved_groups(path) -> list[str]:
    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as weights:
        return list(weights.keys())


def test_all_six_architectures_are_registered():
    assert {"lenet5", "vgg", "resnet20", "mobilenet", "conv1d", "conv3d"} <= set(zoo.available())
    assert {zoo.dataset_for(name) for name in zoo.available()} == set(data.VIEWS)


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(ModelLoadError, match="unknown zoo model 'alexnet'; available: .*lenet5"):
        zoo.build("alexnet")


def test_input_shape_of_the_wrong_rank():
    with pytest.raises(DataError, match="reads the 'image' view"):
        zoo.build("lenet5", input_shape=(28, 28))
    assert zoo.build("lenet5", input_shape=(32, 32, 3)).input_shape == (None, 32, 32, 3)


def test_a_new_model_registers_with_the_decorator(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @zoo.register("tiny_dense", view="seq1d", kinds=("dense",))
    def tiny_dense(input_shape, num_classes):
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Dense(num_classes)(keras.layers.Flatten()(inputs)))

    assert "tiny_dense" in zoo.available() and zoo.dataset_for("tiny_dense") == "seq1d"
    assert zoo.build("tiny_dense", num_classes=4).output_shape == (None, 4)


def test_missing_weights_say_how_to_train_them(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    assert zoo.shipped() == []
    with pytest.raises(ModelLoadError, match="bench/train_zoo.py --models vgg --ship"):
        zoo.pretrained("vgg")


def test_lenet5_weights_are_shipped():
    assert "lenet5" in zoo.shipped()


@pytest.mark.parametrize("name", zoo.shipped())
def test_shipped_weights_are_small_and_accurate(name):
    assert zoo.weights_path(name).stat().st_size <= 2 * 1024 * 1024
    assert "optimizer" not in saved_groups(zoo.weights_path(name))  # weights only, no training state
    model = zoo.pretrained(name)
    dataset = data.load_fashion_mnist("embedded", zoo.dataset_for(name), train_limit=0, test_limit=1000)
    logits = model.predict(dataset.x_test, batch_size=500, verbose=0)
    top1 = float(np.mean(np.argmax(logits, axis=1) == dataset.y_test))
    assert top1 > 0.85, f"{name}: top-1 {top1:.3f} on 1000 embedded test images"
