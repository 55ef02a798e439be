"""Architectures users bring, from keras.applications, with random weights (nothing is downloaded).

Not registered in the zoo: they are not trained here. Used by bench/real_architectures.py (224x224) and by the
tests (a small input size) to run the whole pipeline on real graphs: residual adds, concatenations, depthwise
convs, squeeze-and-excitation multiplies, Rescaling/Normalization front ends.
"""
from __future__ import annotations

APPLICATIONS = {
    "mobilenet_v2": "MobileNetV2",
    "resnet50": "ResNet50",
    "efficientnet_b0": "EfficientNetB0",
    "densenet121": "DenseNet121",
    "vgg16": "VGG16",
    "mobilenet_v3_small": "MobileNetV3Small",
}


def build_application(name: str, size: int = 224, classes: int = 10, seed: int = 0, own_top: bool = True):
    """keras.applications NAME at size x size x 3 with `classes` outputs and seeded random weights.

    own_top=False replaces the application's classifier by global average pooling and one Dense layer (VGG16's
    own top alone holds 120 M of its 138 M params at 224x224).
    """
    import keras

    if name not in APPLICATIONS:
        raise KeyError(f"unknown application {name!r}; available: {', '.join(APPLICATIONS)}")
    keras.utils.set_random_seed(seed)
    builder = getattr(keras.applications, APPLICATIONS[name])
    if own_top:
        return builder(weights=None, input_shape=(size, size, 3), classes=classes)
    body = builder(weights=None, input_shape=(size, size, 3), include_top=False, pooling="avg")
    return keras.Model(body.inputs, keras.layers.Dense(classes, name="logits")(body.outputs[0]), name=body.name)
