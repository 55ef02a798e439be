"""int8 against fp32 on the whole Fashion-MNIST test set, for directories written by `edgecompress demo` (each
holds model_fp32.tflite and model_int8.tflite): top-1 agreement, each file's top-1 and the largest logit gap, on
host LiteRT. The demo's own audit checks 500 samples; this checks all 10,000.

    python bench/int8_agreement.py DEMO_DIR [DEMO_DIR ...]
"""
from __future__ import annotations

import sys

import numpy as np

from edgecompress import data, zoo
from edgecompress.lower.runtime import run_tflite


def main(directories: list[str]) -> int:
    dataset = data.load_fashion_mnist(view=zoo.dataset_for("edgecnn"))
    print("| demo dir | test images | int8 top-1 agreement | fp32 top-1 | int8 top-1 | max abs logit diff |")
    print("|---|---|---|---|---|---|")
    for directory in directories:
        fp32, int8 = (run_tflite(open(f"{directory}/model_{p}.tflite", "rb").read(), dataset.x_test)
                      for p in ("fp32", "int8"))
        top1 = [100 * np.mean(logits.argmax(1) == dataset.y_test) for logits in (fp32, int8)]
        print(f"| {directory} | {len(dataset.y_test)} | {100 * np.mean(fp32.argmax(1) == int8.argmax(1)):.2f}% | "
              f"{top1[0]:.2f}% | {top1[1]:.2f}% | {np.abs(fp32 - int8).max():.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
