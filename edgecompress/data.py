"""Fashion-MNIST from offline sources (Keras cache, Debian package, embedded subset) in three views, and .npz writing.

Never downloads anything: when no full copy is installed, the stratified subset shipped in the package is used,
and every `Dataset` says which source it came from.
"""
from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from edgecompress.errors import DataError
from edgecompress.io import atomic_path

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIDE = 28
CLIP_FRAMES = 4
# Per-sample shift direction of a clip (rows, cols per frame); sample i moves along CLIP_DIRECTIONS[i % 4].
CLIP_DIRECTIONS = ((0, 1), (1, 0), (0, -1), (-1, 0))

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
EMBEDDED_PATH = Path(__file__).resolve().parent / "data" / "fashion_mnist_subset.npz"
FULL_SOURCES = ("keras-cache", "debian")
SOURCES = (*FULL_SOURCES, "embedded")

# How to repair a broken file, per source.
_FIXES = {
    "keras-cache": "delete it (keras.datasets.fashion_mnist.load_data() fetches it again) or pass source='debian'",
    "debian": "reinstall it: apt-get install --reinstall dataset-fashion-mnist",
    "embedded": "reinstall edgecompress, or rebuild it with python bench/make_embedded_subset.py",
}


@dataclass
class Dataset:
    """Train and test splits of one view; `source` is 'keras-cache', 'debian' or 'embedded'."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    view: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES


# --- sources ---------------------------------------------------------------------------------------------


def keras_cache_dir() -> Path:
    """Where keras.datasets.fashion_mnist caches its files ($KERAS_HOME or ~/.keras)."""
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(keras_home) / "datasets" / "fashion-mnist"


def source_dirs() -> dict[str, Path]:
    """Directory of each full source, in the order `auto` tries them."""
    return {"keras-cache": keras_cache_dir(), "debian": DEBIAN_DIR}


def available_sources() -> list[str]:
    """Sources present on this machine, in preference order (a full source needs all four IDX files)."""
    found = [name for name, directory in source_dirs().items() if _has_idx_files(directory)]
    return found + (["embedded"] if EMBEDDED_PATH.is_file() else [])


def _has_idx_files(directory: Path) -> bool:
    return all((directory / name).is_file() for name in IDX_FILES.values())


def resolve_source(source: str = "auto") -> str:
    """Turn 'auto' / 'full' / a source name into the source that will be read, or say why none can be."""
    if source not in ("auto", "full", *SOURCES):
        raise DataError(f"unknown Fashion-MNIST source {source!r}; use auto, full, {', '.join(SOURCES)}")
    present = available_sources()
    wanted = {"auto": SOURCES, "full": FULL_SOURCES}.get(source, (source,))
    for name in wanted:
        if name in present:
            return name
    dirs = ", ".join(str(d) for d in source_dirs().values())
    raise DataError(f"Fashion-MNIST source {source!r} not found (looked in {dirs}, {EMBEDDED_PATH}); "
                    f"install it with apt-get install dataset-fashion-mnist, or use source='embedded'")


# --- raw uint8 arrays ------------------------------------------------------------------------------------


def load_raw(source: str = "auto") -> Dataset:
    """Fashion-MNIST as stored: uint8 images (N, 28, 28) and uint8 labels, view 'raw'."""
    name = resolve_source(source)
    if name == "embedded":
        arrays = _read_embedded(EMBEDDED_PATH)
    else:
        directory = source_dirs()[name]
        arrays = {key: read_idx(directory / fname, name) for key, fname in IDX_FILES.items()}
        _check_pairs(arrays, directory, name)
    return Dataset(**arrays, source=name, view="raw")


def read_idx(path: Path, source: str = "debian") -> np.ndarray:
    """Read one gzipped IDX file (uint8 payload), checking its header against its size."""
    stat = path.stat()
    return _read_idx_cached(str(path), stat.st_mtime_ns, stat.st_size, source)


@lru_cache(maxsize=4)
def _read_idx_cached(path_text: str, mtime_ns: int, size_bytes: int, source: str) -> np.ndarray:
    path = Path(path_text)
    try:
        with gzip.open(path, "rb") as stream:
            payload = stream.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: not a readable gzip file ({error}); {_FIXES[source]}") from error
    shape = _idx_shape(path, payload, source)
    array = np.frombuffer(payload, np.uint8, offset=4 + 4 * len(shape)).reshape(shape)
    return array  # read-only view on the bytes: callers copy when they convert


def _idx_shape(path: Path, payload: bytes, source: str) -> tuple[int, ...]:
    # IDX header: two zero bytes, type code 0x08 (uint8), number of dims, then big-endian uint32 dims.
    if len(payload) < 8 or payload[:3] != b"\x00\x00\x08" or payload[3] not in (1, 3):
        raise DataError(f"{path}: not an IDX uint8 file (bad header); {_FIXES[source]}")
    shape = tuple(int(d) for d in np.frombuffer(payload, ">u4", count=payload[3], offset=4))
    expected_bytes = 4 + 4 * len(shape) + int(np.prod(shape))
    if len(payload) != expected_bytes:
        raise DataError(f"{path}: truncated or corrupt IDX file ({len(payload)} bytes, header says "
                        f"{expected_bytes}); {_FIXES[source]}")
    return shape


def _check_pairs(arrays: dict[str, np.ndarray], where: Path, source: str) -> None:
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE) or len(images) != len(labels):
            raise DataError(f"{where}: {split} images {images.shape} do not match labels {labels.shape}; "
                            f"{_FIXES[source]}")
        if labels.size and int(labels.max()) >= NUM_CLASSES:
            raise DataError(f"{where}: {split} labels go up to {int(labels.max())}, expected < {NUM_CLASSES}; "
                            f"{_FIXES[source]}")


def _read_embedded(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in IDX_FILES}
    except (OSError, KeyError, ValueError, zlib.error) as error:
        raise DataError(f"{path}: embedded Fashion-MNIST subset unreadable ({error}); {_FIXES['embedded']}") from error
    _check_pairs(arrays, path, "embedded")
    return arrays


# --- views -----------------------------------------------------------------------------------------------


def to_image(images_u8: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 28, 28, 1) float32 in [0, 1], channels-last."""
    return (images_u8.astype(np.float32) / 255.0)[..., None]


def to_seq1d(images_u8: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 28, 28) float32: 28 steps (rows) of 28 features (pixels of the row).

    Rows as steps keep the sequence short, so a few Conv1D layers see the whole image and train fast;
    784 steps of one feature would need a deep or dilated stack for the same receptive field.
    """
    return images_u8.astype(np.float32) / 255.0


def to_clip3d(images_u8: np.ndarray, frames: int = CLIP_FRAMES) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, frames, 28, 28, 1) float32: frame t is the image moved t pixels.

    Sample i moves along CLIP_DIRECTIONS[i % 4] (right, down, left, up); pixels moved out are dropped and the
    uncovered border is zero, so there is no wrap-around. Deterministic, so a clip set is reproducible.
    """
    images = images_u8.astype(np.float32) / 255.0
    clips = np.zeros((len(images), frames, *images.shape[1:], 1), np.float32)
    for direction_index, (d_row, d_col) in enumerate(CLIP_DIRECTIONS):
        chosen = slice(direction_index, None, len(CLIP_DIRECTIONS))
        for frame in range(frames):
            clips[chosen, frame, ..., 0] = _shift(images[chosen], d_row * frame, d_col * frame)
    return clips


def _shift(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    moved = np.zeros_like(images)
    height, width = images.shape[1:]
    src_r, dst_r = slice(max(0, -rows), height - max(0, rows)), slice(max(0, rows), height - max(0, -rows))
    src_c, dst_c = slice(max(0, -cols), width - max(0, cols)), slice(max(0, cols), width - max(0, -cols))
    moved[:, dst_r, dst_c] = images[:, src_r, src_c]
    return moved


VIEWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"image": to_image, "seq1d": to_seq1d, "clip3d": to_clip3d}
VIEW_SHAPES = {"image": (28, 28, 1), "seq1d": (28, 28), "clip3d": (CLIP_FRAMES, 28, 28, 1)}


def make_view(raw: Dataset, view: str = "image", train_limit: int | None = None,
              test_limit: int | None = None) -> Dataset:
    """Convert a raw dataset to a view, optionally keeping only the first `*_limit` samples of each split."""
    if view not in VIEWS:
        raise DataError(f"unknown Fashion-MNIST view {view!r}; use one of {', '.join(VIEWS)}")
    train, test = slice(0, train_limit), slice(0, test_limit)
    return Dataset(
        x_train=VIEWS[view](raw.x_train[train]), y_train=raw.y_train[train].astype(np.int64),
        x_test=VIEWS[view](raw.x_test[test]), y_test=raw.y_test[test].astype(np.int64),
        source=raw.source, view=view,
    )


def load_fashion_mnist(source: str = "auto", view: str = "image", train_limit: int | None = None,
                       test_limit: int | None = None) -> Dataset:
    """Fashion-MNIST in one view, float32 in [0, 1], int64 labels.

    Args:
        source: 'auto' (keras-cache, then debian, then embedded), 'full' (keras-cache or debian, else DataError),
            or one source name: 'keras-cache', 'debian', 'embedded'.
        view: 'image' (N,28,28,1), 'seq1d' (N,28,28) rows as steps, 'clip3d' (N,4,28,28,1) shifted-image clips.
        train_limit, test_limit: keep only the first N samples of a split (both sources are shuffled already).
    """
    return make_view(load_raw(source), view, train_limit, test_limit)


# --- public .npz format -----------------------------------------------------------------------------------


def save_npz(path: str | os.PathLike, x: np.ndarray, y: np.ndarray | None = None) -> Path:
    """Write the public data format (`x`, optional integer `y`) atomically; read it with edgecompress.io.load_npz."""
    path = Path(path)
    if y is not None and len(y) != len(x):
        raise DataError(f"{path}: {len(x)} inputs but {len(y)} labels; give one label per input")
    arrays = {"x": np.asarray(x)} if y is None else {"x": np.asarray(x), "y": np.asarray(y)}
    with atomic_path(path) as tmp_path, open(tmp_path, "wb") as stream:
        # A file object, not a name: numpy would append '.npz' to a name that lacks it.
        np.savez_compressed(stream, **arrays)
    return path
