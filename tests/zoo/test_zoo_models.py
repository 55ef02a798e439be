"""Every registered zoo model (generated from the registry): builds, has its candidate layers, runs on its data view."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from edgecompress import data, zoo
from edgecompress.graph.layers import describe


@pytest.fixture(scope="module")
def embedded_raw():
    return data.load_raw("embedded")


def candidate_kinds(model: keras.Model) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for info in describe(model):
        if info.is_candidate:
            kinds[info.kind] = kinds.get(info.kind, 0) + 1
    return kinds


@pytest.mark.parametrize("name", zoo.available())
def test_builds_with_declared_candidate_kinds(name):
    model = zoo.build(name)
    assert set(candidate_kinds(model)) == zoo.entry(name).kinds
    assert model.input_shape[1:] == data.VIEW_SHAPES[zoo.dataset_for(name)]
    assert model.output_shape == (None, 10)
    # Every conv/dense layer is usable as it is: channels-last, groups=1, single call site.
    assert [info.name for info in describe(model) if info.kind and not info.is_candidate] == []


@pytest.mark.parametrize("name", zoo.available())
def test_forward_on_its_view_of_real_data(name, embedded_raw):
    dataset = data.make_view(embedded_raw, zoo.dataset_for(name), train_limit=8, test_limit=8)
    model = zoo.build(name, num_classes=3)
    logits = np.asarray(model(dataset.x_test, training=False))
    assert logits.shape == (8, 3) and np.isfinite(logits).all()
    assert np.ptp(logits, axis=0).max() > 0  # different images give different outputs


def test_lenet5_fc_layers():
    dense = [info for info in describe(zoo.build("lenet5")) if info.kind == "dense"]
    assert [info.kernel_shape for info in dense] == [(400, 120), (120, 84), (84, 10)]


def test_vgg_has_six_convs_and_a_512_to_256_fc():
    infos = describe(zoo.build("vgg"))
    assert sum(info.kind == "conv2d" for info in infos) == 6
    assert (512, 256) in [info.kernel_shape for info in infos if info.kind == "dense"]
    dense_params = sum(info.params for info in infos if info.kind == "dense")
    assert dense_params > 0.8 * sum(info.params for info in infos if info.is_candidate)


def test_resnet20_structure():
    model = zoo.build("resnet20")
    infos = describe(model)
    three_by_three = [info for info in infos if info.kind == "conv2d" and info.kernel_size == (3, 3)]
    assert len(three_by_three) == 19  # stem + 3 stages x 3 blocks x 2 convs; + the FC layer = 20
    assert sum(info.kind == "dense" for info in infos) == 1
    assert sum(isinstance(layer, keras.layers.Add) for layer in model.layers) == 9
    assert {info.out_channels for info in three_by_three} == {16, 32, 64}


def test_mobilenet_is_depthwise_separable():
    model = zoo.build("mobilenet")
    depthwise = [info for info in describe(model) if info.class_name == "DepthwiseConv2D"]
    assert len(depthwise) == 5 and all("depthwise" in info.reason for info in depthwise)
    pointwise = [info for info in describe(model) if info.kind == "conv2d" and info.is_pointwise]
    assert len(pointwise) == 5
    assert any(isinstance(layer, keras.layers.ReLU) and float(layer.max_value) == 6.0 for layer in model.layers)


def test_conv3d_convolves_over_time():
    convs = [info for info in describe(zoo.build("conv3d")) if info.kind == "conv3d"]
    assert convs and all(info.kernel_size[0] > 1 for info in convs)
    assert convs[0].input_shape == (data.CLIP_FRAMES, 28, 28, 1)
