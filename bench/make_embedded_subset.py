"""Build edgecompress/data/fashion_mnist_subset.npz: a stratified, seeded subset of Fashion-MNIST from the Debian files.

Reproducible: the same seed and source files give byte-identical arrays. Prints the per-class counts and the size.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from edgecompress import data
from edgecompress.io import atomic_path


def stratified_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """`per_class` indices of each class, drawn without replacement, then shuffled together."""
    chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(data.NUM_CLASSES)]
    return rng.permutation(np.concatenate(chosen))


def build_subset(raw: data.Dataset, train_per_class: int, test_per_class: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    train_index = stratified_indices(raw.y_train, train_per_class, rng)
    test_index = stratified_indices(raw.y_test, test_per_class, rng)
    return {
        "x_train": raw.x_train[train_index], "y_train": raw.y_train[train_index],
        "x_test": raw.x_test[test_index], "y_test": raw.y_test[test_index],
        # Where each sample came from in the full set, so the subset can be checked against it.
        "train_index": train_index.astype(np.int32), "test_index": test_index.astype(np.int32),
        "seed": np.array(seed, np.int64),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="debian", choices=data.FULL_SOURCES)
    parser.add_argument("--train-per-class", type=int, default=600)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("-o", "--out", type=Path, default=data.EMBEDDED_PATH)
    args = parser.parse_args(argv)
    raw = data.load_raw(args.source)
    arrays = build_subset(raw, args.train_per_class, args.test_per_class, args.seed)
    with atomic_path(args.out) as tmp_path, open(tmp_path, "wb") as stream:
        np.savez_compressed(stream, **arrays)
    counts = np.bincount(arrays["y_train"], minlength=data.NUM_CLASSES)
    print(f"{args.out}: {len(arrays['y_train'])} train + {len(arrays['y_test'])} test images from {raw.source} "
          f"(seed {args.seed}), train per class {counts.tolist()}, {args.out.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
