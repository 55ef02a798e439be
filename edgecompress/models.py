"""The model a user names on the command line or passes to the API: a .keras/.h5 path or zoo:NAME, loaded and
normalized to one flat graph (see graph.rebuild.normalize). File format checks live in io; this adds the zoo."""
from __future__ import annotations

import os

from edgecompress.errors import ModelLoadError
from edgecompress.graph.rebuild import normalize
from edgecompress.io import load_model

ZOO_PREFIX = "zoo:"


def load(reference: str | os.PathLike):
    """A model from a file path or `zoo:NAME` (shipped weights where they exist), ready for every stage."""
    if str(reference).startswith(ZOO_PREFIX):
        return _zoo_model(str(reference)[len(ZOO_PREFIX):])
    return normalize(load_model(reference))


def _zoo_model(name: str):
    from edgecompress import zoo

    if name not in zoo.available():
        raise ModelLoadError(f"{ZOO_PREFIX}{name}: no such built-in model; available: "
                             f"{', '.join(ZOO_PREFIX + n for n in zoo.available())}")
    return normalize(zoo.pretrained(name) if name in zoo.shipped() else zoo.build(name))
