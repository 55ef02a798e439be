"""Small standard models (LeNet-5, VGG-style, ResNet-20, MobileNet-style, Conv1D, Conv3D) found through a registry.

Importing this package imports every module in it, so a model registered in a new file is available (and tested)
with no other edit. Data for each model: `edgecompress.data.load_fashion_mnist(view=dataset_for(name))`.
"""
from __future__ import annotations

import importlib
import pkgutil

from edgecompress.zoo.registry import (WEIGHTS_DIR, ZooEntry, available, build, dataset_for, entry, pretrained,
                                       register, shipped, weights_path)

_SUPPORT_MODULES = {"registry", "blocks"}

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _SUPPORT_MODULES:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["WEIGHTS_DIR", "ZooEntry", "available", "build", "dataset_for", "entry", "pretrained", "register",
           "shipped", "weights_path"]
