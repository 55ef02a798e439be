"""Time each method's decomposition at rank fraction 0.25 on three big layers; prints a Markdown table.

    python bench/decompose_speed.py [--fraction 0.25] [--out bench/results/decompose_speed.md]

Goal (issue 3): <= 5 s per method and layer on 2 cores. Random kernels (decomposition time depends on
shapes and ranks, not on what the weights learned).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import edgecompress  # noqa: E402
from edgecompress import factorize  # noqa: E402
from edgecompress.graph.layers import describe  # noqa: E402

LAYERS = {
    "Conv2D 3x3x256x256 @16x16": (lambda: keras.layers.Conv2D(256, 3, padding="same"), (16, 16, 256)),
    "Conv3D 3x3x3x64x64 @8x8x8": (lambda: keras.layers.Conv3D(64, 3, padding="same"), (8, 8, 8, 64)),
    "Dense 4096x1024": (lambda: keras.layers.Dense(1024), (4096,)),
}


def time_method(info, kernel, bias, method: str, fraction: float) -> tuple[float, float, tuple]:
    chosen = factorize.get(method)
    start = time.perf_counter()
    factors = chosen.decompose(info, kernel, bias, fraction)
    decompose_s = time.perf_counter() - start
    start = time.perf_counter()
    chosen.build(info, factors)
    return decompose_s, time.perf_counter() - start, factors.rank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--out", default="bench/results/decompose_speed.md")
    args = parser.parse_args()
    rows = []
    for label, (make, shape) in LAYERS.items():
        layer = make()
        inputs = keras.Input(shape)
        info = describe(keras.Model(inputs, layer(inputs)))[0]
        kernel = np.random.default_rng(0).standard_normal(layer.kernel.shape).astype(np.float32)
        bias = layer.bias.numpy()
        for method in factorize.available():
            if factorize.get(method).why_not(info):
                continue
            decompose_s, build_s, rank = time_method(info, kernel, bias, method, args.fraction)
            verdict = "ok" if decompose_s <= 5 else "over 5 s"
            rows.append(f"| {label} | {method} | {rank} | {decompose_s:.2f} | {build_s:.2f} | {verdict} |")
            print(rows[-1], flush=True)
    header = [f"# Decomposition time at rank fraction {args.fraction}",
              f"Measured {date.today()} on {platform.machine()} ({os.cpu_count()} cores), "
              f"`python bench/decompose_speed.py --fraction {args.fraction}`; edgecompress {edgecompress.__version__}.",
              "", "| layer | method | rank | decompose s | build s | goal <= 5 s |", "|---|---|---|---|---|---|"]
    table = "\n".join(header + rows) + "\n"
    print(table)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write(table)


if __name__ == "__main__":
    main()
