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


def build_application(name: str, size: int = 224, classes: int = 10, seed: int = 0):
    """keras.applications NAME at size x size x 3 with `classes` outputs and seeded random weights."""
    import keras

    if name not in APPLICATIONS:
        raise KeyError(f"unknown application {name!r}; available: {', '.join(APPLICATIONS)}")
    keras.utils.set_random_seed(seed)
    builder = getattr(keras.applications, APPLICATIONS[name])
    return builder(weights=None, input_shape=(size, size, 3), classes=classes)
