"""Full-rank reconstruction error per method x layer kind, worst over stride/padding/dilation variants.

    python bench/reconstruction_table.py   ->  bench/results/reconstruction.md

Error = max|block(x) - layer(x)| / max|layer(x)|, float32, random inputs in [-0.5, 0.5); tests require <= 1e-4.
"""
from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from edgecompress import factorize  # noqa: E402
from edgecompress.graph.layers import describe, layer_weights  # noqa: E402
from tests.factorize.layer_cases import make_layer, variant_cases  # noqa: E402


def relative_error(method, kind, stride, padding, dilation) -> float:
    layer, input_shape = make_layer(method, kind, stride, padding, dilation, activation="linear")
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, layer(inputs))
    info = describe(model)[0]
    chosen = factorize.get(method)
    block = chosen.build(info, chosen.decompose(info, *layer_weights(layer), 1.0))
    x = np.random.default_rng(0).random((3,) + input_shape, dtype=np.float32) - 0.5
    y, z = model(x).numpy(), x
    for part in block:
        z = part(z)
    return float(np.abs(np.asarray(z) - y).max() / np.abs(y).max())


def main() -> None:
    worst: dict[tuple[str, str], float] = defaultdict(float)
    count: dict[tuple[str, str], int] = defaultdict(int)
    for case in variant_cases(factorize.applicable_pairs()):
        key = case[:2]
        worst[key] = max(worst[key], relative_error(*case))
        count[key] += 1
    kinds = ["conv1d", "conv2d", "conv3d", "dense"]
    lines = ["# Full-rank reconstruction error (worst relative max-abs error over variants)", "",
             "`python bench/reconstruction_table.py`; conv kinds: stride {1,2} x padding {same,valid} x dilation "
             "{1,2} (not stride 2 with dilation 2); matrix methods on convs use 1x1 kernels. Bound in tests: 1e-4.", "",
             "| method | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for method in factorize.available():
        cells = [f"{worst[(method, k)]:.1e} ({count[(method, k)]})" if (method, k) in worst else "-" for k in kinds]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/reconstruction.md").write_text(table)


if __name__ == "__main__":
    main()
