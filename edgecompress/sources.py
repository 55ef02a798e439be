"""Data as users keep it (an .npz, a folder with one sub-folder of images per class, TFRecords, a tf.data.Dataset,
an iterator of batches, (x, y) arrays) opened as one `DataSource` with its preprocessing declared once.

Reads only: never writes, downloads or shuffles. Every bad input is a DataError naming the file and the fix.

    source = open_source("imgs/", model=model, preprocess="scale01")
    x, y = source.arrays(limit=512)       # the first 512 samples, the same ones on every call
    for x, y in source.batches(64): ...   # streamed: a big set is never held in memory
    plan["data"] = source.to_record()
"""
from __future__ import annotations

import collections.abc
import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from edgecompress.errors import DataError

PREPROCESS = ("none", "scale01", "scale-1-1", "imagenet-caffe", "imagenet-torch")
PREPROCESS_HELP = ("how stored values become model inputs, declared once: none (as stored, the default; right for a "
                   "model with its own Rescaling layer), scale01 (x/255), scale-1-1 (x/127.5 - 1), imagenet-caffe "
                   "(RGB to BGR minus the ImageNet mean, keras.applications' caffe mode), imagenet-torch (x/255 minus "
                   "the ImageNet mean, over its std)")
TFRECORD_SPEC_HELP = ("TFRecord feature names as image=KEY,label=KEY (default image=image,label=label); the image "
                      "feature holds PNG/JPEG/BMP/GIF bytes, or raw uint8 bytes / a float or int64 list, for which "
                      "add shape=HxWxC unless it is the model's input shape")
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # what tf.io.decode_image (and keras' loaders) read
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF")
TFRECORD_SUFFIXES = (".tfrecord", ".tfrec", ".tfrecords")
IGNORED_NAMES = ("Thumbs.db", "desktop.ini")
READ_BATCH = 256

# Channels tf.io.decode_image gives each PIL mode by default; which of them a model's channel count accepts.
MODE_CHANNELS = {"1": 1, "L": 1, "I": 1, "I;16": 1, "LA": 2, "P": 3, "RGB": 3, "YCbCr": 3, "RGBA": 4, "PA": 4}
CHANNELS_FIT = {1: (1, 2), 3: (3, 4), 4: (3, 4)}
CHANNELS_WITHOUT_MODEL = {1: 1, 2: 1, 3: 3, 4: 3}  # alpha is dropped unless the model takes 4 channels
CHANNEL_NAMES = {1: "grayscale", 2: "grayscale+alpha", 3: "RGB", 4: "RGBA"}
ENCODED_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM")

CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)
PREPROCESSORS: dict[str, Callable] = {
    "scale01": lambda x: x / 255.0,
    "scale-1-1": lambda x: x / 127.5 - 1.0,
    "imagenet-caffe": lambda x: x[..., ::-1] - CAFFE_MEAN_BGR,
    "imagenet-torch": lambda x: (x / 255.0 - TORCH_MEAN) / TORCH_STD,
}
RGB_ONLY = ("imagenet-caffe", "imagenet-torch")


def check_preprocess(name: str) -> str:
    """The name, if it is one of PREPROCESS; else a DataError listing them."""
    if name not in PREPROCESS:
        raise DataError(f"unknown preprocess {name!r}; use one of {', '.join(PREPROCESS)}")
    return name


def apply_preprocess(x, name: str, where: str = "data"):
    """x (numpy array or tf tensor) after the named preprocessing: float32, or unchanged for 'none'."""
    if name == "none":
        return x
    if name in RGB_ONLY and x.shape[-1] != 3:
        raise DataError(f"{where}: preprocess {name} needs RGB inputs (3 channels), these have {x.shape[-1]}; "
                        f"use scale01 or scale-1-1")
    x = tf.cast(x, tf.float32) if isinstance(x, tf.Tensor) else np.asarray(x, np.float32)
    return PREPROCESSORS[name](x)


@dataclass
class DataSource:
    """One opened source: `arrays()` for its first samples in memory, `batches()` to stream all of them.

    `read(limit)` and `samples()` give raw (x, y or None) arrays and a dataset of single samples (x or (x, y));
    `explain(error)` turns a TensorFlow error met while reading into the DataError naming the culprit.
    """

    kind: str  # "npz" | "folder" | "tfrecord" | "dataset" | "arrays"
    description: str  # one line for plan.json and reports
    preprocess: str
    count: int | None = None  # samples, where known without reading them all
    path: str | None = None
    details: dict = field(default_factory=dict)  # classes, feature names, files: recorded by to_record()
    read: Callable = field(kw_only=True, repr=False)
    samples: Callable = field(kw_only=True, repr=False)
    explain: Callable = field(kw_only=True, repr=False)

    @property
    def where(self) -> str:
        return self.path or self.kind

    @property
    def in_memory(self) -> bool:
        """Whether the whole set is already in memory (an .npz or arrays), so reading all of it costs nothing."""
        return self.kind in ("npz", "arrays")

    def arrays(self, limit: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The first `limit` samples (all when None), preprocessed, and their int labels or None."""
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        try:
            x, y = self.read(limit)
        except tf.errors.OpError as error:
            raise self.explain(error) from None
        return apply_preprocess(x, self.preprocess, self.where), y

    def batches(self, batch_size: int, shuffle_buffer: int = 0, seed: int = 0) -> tf.data.Dataset:
        """Preprocessed (x, y) or x batches streamed in order (shuffled within `shuffle_buffer` samples if > 0).
        A TensorFlow error while iterating them can be turned into a DataError with `diagnose`."""
        samples = self.samples()
        if shuffle_buffer > 0:
            samples = samples.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        preprocess = self.preprocess
        if isinstance(samples.element_spec, tuple):
            samples = samples.map(lambda x, y: (apply_preprocess(x, preprocess, self.where), y))
        else:
            samples = samples.map(lambda x: apply_preprocess(x, preprocess, self.where))
        return samples.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def diagnose(self, error: Exception) -> DataError:
        """The DataError naming the file behind a TensorFlow error raised while iterating `batches()`."""
        return self.explain(error)

    def to_record(self) -> dict:
        """What plan.json records: kind, path (None for in-memory data), description, preprocess, count, details."""
        return {"kind": self.kind, "path": self.path, "description": self.description,
                "preprocess": self.preprocess, "count": self.count, **self.details}


@dataclass
class _Request:
    """What the caller asked for, shared by every opener."""

    input_shape: tuple | None
    preprocess: str
    need_labels: bool
    feature_spec: str | None
    rescaling: str | None  # the model's own input Rescaling, described

    def preprocess_text(self) -> str:
        if self.rescaling is None:
            return self.preprocess
        if self.preprocess == "none":
            return f"none: the model's own {self.rescaling} scales the inputs"
        return f"{self.preprocess}, then the model's own {self.rescaling}: scaled twice?"


def open_source(spec, *, input_shape=None, preprocess: str = "none", need_labels: bool = False,
                feature_spec: str | None = None, model=None) -> DataSource:
    """Open data as users keep it, checked up front; nothing is read beyond headers and a first record.

    Args:
        spec: an .npz path; a folder with one sub-folder of images per class; TFRecord files (a .tfrecord/.tfrec/
            .tfrecords path, a folder of them or a glob); a tf.data.Dataset or an iterator of x or (x, y) batches
            (an iterator is read once, into memory); (x, y) or x arrays; or a DataSource (returned as is).
        input_shape: the model's per-sample input shape (H, W, C): images are decoded to C channels and resized to
            H x W as keras.utils.image_dataset_from_directory does (bilinear). Without it, the first image decides.
        preprocess: one of PREPROCESS, applied by arrays() and batches().
        need_labels: raise a DataError when the source has no integer labels.
        feature_spec: TFRecord feature names, "image=KEY,label=KEY[,shape=HxWxC]" (see TFRECORD_SPEC_HELP).
        model: a keras.Model: gives input_shape, and a Rescaling layer at its input is named in the description.

    Folder images are ordered by file name across all class folders, numbers in names compared by value
    (img2 before img10), then by class folder; so images written as CLASS/INDEX.png from an array come back in
    the array's order. Labels are the class folders' indices in sorted order (as keras infers them).
    """
    check_preprocess(preprocess)
    _parse_feature_spec(feature_spec)  # a malformed spec fails whatever the source is
    if isinstance(spec, DataSource):
        return _require_labels(spec, need_labels)
    if model is not None:
        input_shape = input_shape or tuple(model.inputs[0].shape[1:])
    request = _Request(_per_sample_shape(input_shape), preprocess, need_labels, feature_spec,
                       _input_rescaling(model) if model is not None else None)
    return _require_labels(_opener(spec)(spec, request), need_labels)


def _per_sample_shape(input_shape) -> tuple | None:
    if input_shape is None:
        return None
    shape = tuple(input_shape)
    return shape[1:] if len(shape) == 4 and shape[0] is None else shape


def _require_labels(source: DataSource, need_labels: bool) -> DataSource:
    if need_labels and not source.details.get("labels", True):
        raise DataError(f"{source.where}: has no labels, which this step needs; give integer labels y")
    return source


def _input_rescaling(model) -> str | None:
    """'Rescaling(scale=0.003922, offset=0)' when the model's first layer after its input is a Rescaling."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Rescaling):
            scale, offset = (float(np.ravel(value)[0]) for value in (layer.scale, layer.offset))
            return f"Rescaling(scale={scale:.4g}, offset={offset:.4g})"
        return _input_rescaling(layer) if isinstance(layer, keras.Model) else None
    return None


def _opener(spec) -> Callable[[object, _Request], DataSource]:
    if isinstance(spec, tf.data.Dataset):
        return _open_dataset
    if isinstance(spec, (str, os.PathLike)):
        return _path_opener(spec)
    if isinstance(spec, collections.abc.Iterator):
        return _open_iterator
    return _open_arrays


def _path_opener(spec) -> Callable[[object, _Request], DataSource]:
    text = os.fspath(spec)
    path = Path(text)
    suffix = path.suffix.lower()
    if glob.has_magic(text) and not path.exists():
        return _open_tfrecord_glob
    if path.is_dir():
        return _open_tfrecord_folder if _tfrecords_in(path) and not _subfolders(path) else _open_folder
    if suffix == ".npz":
        return _open_npz  # load_npz says what is wrong with it, missing included
    if not path.exists():
        return _missing
    if suffix in TFRECORD_SUFFIXES:
        return lambda spec, request: _open_tfrecords(text, [path], request)
    return _unsupported_file


# --- .npz and in-memory arrays ---------------------------------------------------------------------------


def _missing(spec, request: _Request) -> DataSource:
    raise DataError(f"{os.fspath(spec)}: no such file or folder; give an .npz (x, y), a folder with one "
                    f"sub-folder of images per class, or TFRecord files")


def _unsupported_file(spec, request: _Request) -> DataSource:
    path = Path(spec)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise DataError(f"{path}: a single image; put the images in one sub-folder per class and give the folder")
    raise DataError(f"{path}: cannot read {path.suffix or 'suffix-less'} files as data; give an .npz (x, y), a folder "
                    f"with one sub-folder of images per class, or TFRecord files (.tfrecord)")


def _open_npz(spec, request: _Request) -> DataSource:
    from edgecompress.io import load_npz

    x, y = load_npz(spec, need_labels=request.need_labels)
    return _in_memory("npz", f"npz {os.fspath(spec)}", x, y, request, os.fspath(spec))


def _open_arrays(spec, request: _Request) -> DataSource:
    x, y = spec if isinstance(spec, tuple) and len(spec) == 2 else (spec, None)
    x = np.asarray(x)
    return _in_memory("arrays", "arrays", x, _checked_labels("arrays", x, y), request)


def _checked_labels(where: str, x: np.ndarray, y) -> np.ndarray | None:
    if x.ndim < 2 or len(x) == 0 or x.dtype == object or x.dtype.kind in "SUM":
        raise DataError(f"{where}: x must be a non-empty numeric array with a batch axis, got {x.dtype} {x.shape}")
    if y is None:
        return None
    y = np.asarray(y)
    y = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) != len(x):
        raise DataError(f"{where}: labels must be {len(x)} integer class indices, got {y.dtype} {y.shape} "
                        f"(one-hot? give y.argmax(-1))")
    return y.astype(np.int64)


def _in_memory(kind: str, label: str, x: np.ndarray, y, request: _Request, path: str | None = None) -> DataSource:
    facts = [f"{len(x)} samples", "labels" if y is not None else "no labels", request.preprocess_text()]

    def samples() -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))

    return DataSource(kind, f"{label} ({', '.join(facts)})", request.preprocess, len(x), path,
                      {"labels": y is not None}, read=lambda limit: (x[:limit], None if y is None else y[:limit]),
                      samples=samples, explain=lambda error: _generic_failure(label, error))


def _generic_failure(where: str, error: Exception) -> DataError:
    return DataError(f"{where}: reading failed ({_first_line(error)}); check the data")


def _first_line(error: Exception) -> str:
    text = getattr(error, "message", None) or str(error)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:200] if lines else type(error).__name__


# --- tf.data.Dataset and iterators -----------------------------------------------------------------------


def _is_batched(x_rank: int | None, y_rank: int | None, input_shape: tuple | None, where: str) -> bool:
    """Whether elements are batches: a label per element says so, else the model's input rank (default: yes)."""
    if input_shape is not None and x_rank is not None and x_rank not in (len(input_shape), len(input_shape) + 1):
        raise DataError(f"{where}: elements have rank {x_rank} but the model takes samples of shape {input_shape}; "
                        f"yield x or (x, y) batches shaped (batch, {', '.join(map(str, input_shape))})")
    if y_rank is not None:
        return y_rank > 0
    return input_shape is None or x_rank is None or x_rank == len(input_shape) + 1


def _open_dataset(dataset: tf.data.Dataset, request: _Request) -> DataSource:
    spec = dataset.element_spec
    labeled = isinstance(spec, tuple) and len(spec) == 2
    x_spec, y_spec = spec if labeled else (spec, None)
    if not isinstance(x_spec, tf.TensorSpec) or (labeled and not isinstance(y_spec, tf.TensorSpec)):
        raise DataError(f"tf.data.Dataset: elements must be x or (x, y) tensors, got {spec}")
    if labeled and not y_spec.dtype.is_integer:
        raise DataError(f"tf.data.Dataset: labels must be integer class indices, got {y_spec.dtype.name} "
                        f"(one-hot? map y to tf.argmax(y, -1))")
    batched = _is_batched(x_spec.shape.rank, y_spec.shape.rank if labeled else None, request.input_shape,
                          "tf.data.Dataset")

    def samples() -> tf.data.Dataset:
        return dataset.unbatch() if batched else dataset

    def read(limit: int | None):
        if limit is None and dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise DataError("tf.data.Dataset: repeats forever; read it with a limit or drop its .repeat()")
        return _collect(samples(), limit, "tf.data.Dataset")

    facts = ["labels" if labeled else "no labels", request.preprocess_text()]
    return DataSource("dataset", f"tf.data.Dataset ({', '.join(facts)})", request.preprocess, None, None,
                      {"labels": labeled}, read=read, samples=samples,
                      explain=lambda error: _generic_failure("tf.data.Dataset", error))


def _open_iterator(iterator, request: _Request) -> DataSource:
    """Read an iterator of x or (x, y) batches (or single samples) once, into memory."""
    elements = [element if isinstance(element, tuple) and len(element) == 2 else (element, None)
                for element in iterator]
    if not elements:
        raise DataError("generator: yielded nothing; yield x or (x, y) batches")
    if len({y is None for _, y in elements}) > 1:
        raise DataError("generator: some elements have labels and some not; yield all x or all (x, y)")
    xs = [np.asarray(x) for x, _ in elements]
    y_rank = None if elements[0][1] is None else np.ndim(elements[0][1])
    join = np.concatenate if _is_batched(xs[0].ndim, y_rank, request.input_shape, "generator") else np.stack
    y = None if elements[0][1] is None else join([np.asarray(y) for _, y in elements])
    x = join(xs)
    return _in_memory("arrays", "generator", x, _checked_labels("generator", x, y), request)


def _collect(samples: tf.data.Dataset, limit: int | None, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The first `limit` elements of a dataset of x or (x, y) samples, as arrays."""
    parts = list(samples.take(-1 if limit is None else limit).batch(READ_BATCH).as_numpy_iterator())
    if not parts:
        raise DataError(f"{where}: holds no samples")
    if not isinstance(parts[0], tuple):
        return np.concatenate(parts), None
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]).astype(np.int64)


# --- a folder of images, one sub-folder per class --------------------------------------------------------


def _ignored(path: Path) -> bool:
    return path.name.startswith(".") or path.name in IGNORED_NAMES


def _subfolders(path: Path) -> list[Path]:
    return [entry for entry in sorted(path.iterdir()) if entry.is_dir() and not _ignored(entry)]


def _natural_key(text: str) -> tuple:
    # Text and numbers alternate after the split, so the tuples always compare like with like.
    return tuple(int(part) if index % 2 else part for index, part in enumerate(re.split(r"(\d+)", text)))


def _open_folder(spec, request: _Request) -> DataSource:
    root = Path(spec)
    classes, files, labels = _index_folder(root)
    size, channels, resized = _image_geometry(files, request.input_shape, root)
    facts = [f"{len(files)} images", f"{len(classes)} classes"]
    facts += [f"resized to {size[0]}x{size[1]}"] if resized else []

    def samples() -> tf.data.Dataset:
        images = tf.data.Dataset.from_tensor_slices([str(path) for path in files]).map(
            lambda path: _decode_image(tf.io.read_file(path), size, channels), num_parallel_calls=tf.data.AUTOTUNE)
        return tf.data.Dataset.zip((images, tf.data.Dataset.from_tensor_slices(labels)))

    name = os.fspath(spec).rstrip("/") + "/"
    return DataSource("folder", f"folder {name} ({', '.join(facts + [request.preprocess_text()])})",
                      request.preprocess, len(files), os.fspath(spec), {"labels": True, "classes": classes},
                      read=lambda limit: _collect(samples(), limit, name), samples=samples,
                      explain=lambda error: _undecodable_image(root, files, channels, error))


def _index_folder(root: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """Class names (sorted sub-folder names), image files in reading order, and their labels."""
    entries = [entry for entry in sorted(root.iterdir()) if not _ignored(entry)]
    if not entries:
        raise DataError(f"{root}: folder is empty; put the images in one sub-folder per class ({root}/CLASS/*.png)")
    loose = [entry.name for entry in entries if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES]
    class_dirs = [entry for entry in entries if entry.is_dir()]
    if loose or not class_dirs:
        found = f"images such as {loose[0]} directly in it" if loose else "no class sub-folders"
        raise DataError(f"{root}: has {found}; put each class's images in a sub-folder {root}/CLASS/ "
                        f"(one sub-folder for unlabeled data)")
    found = [(path, label) for label, directory in enumerate(class_dirs) for path in _class_files(directory)]
    if not found:
        raise DataError(f"{root}: its class sub-folders ({', '.join(d.name for d in class_dirs[:5])}) hold no "
                        f"images; add {'/'.join(IMAGE_SUFFIXES)} files")
    found.sort(key=lambda item: (_natural_key(item[0].name), _natural_key(str(item[0].relative_to(root)))))
    return [d.name for d in class_dirs], [path for path, _ in found], np.array([lab for _, lab in found], np.int64)


def _class_files(directory: Path) -> list[Path]:
    files = []
    for parent, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        for path in (Path(parent) / name for name in sorted(filenames)):
            if _ignored(path):
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{path}: not an image file ({path.suffix or 'no suffix'}); class folders may hold "
                                f"only {'/'.join(IMAGE_SUFFIXES)} images: remove it or move it out")
            files.append(path)
    return files


def _image_header(path: Path) -> tuple[int, int, int]:
    """(height, width, channels as decoded) read from the file's header only."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            format_name, mode, (width, height) = image.format, image.mode, image.size
    except Exception as error:  # noqa: BLE001 - PIL raises several types for a file that is not an image
        raise DataError(f"{path}: not a readable image ({_first_line(error)}); remove it or save it again "
                        f"as PNG or JPEG") from None
    if format_name not in IMAGE_FORMATS or mode not in MODE_CHANNELS:
        raise DataError(f"{path}: {format_name} {mode} images cannot be read; save it as a grayscale or RGB "
                        f"PNG or JPEG")
    return height, width, MODE_CHANNELS[mode]


def _image_geometry(files: list[Path], input_shape: tuple | None, where) -> tuple[tuple[int, int], int, bool]:
    """((height, width), channels) the images are decoded to, and whether any is resized; checked up front."""
    headers = [_image_header(path) for path in files]
    if input_shape is None:
        height, width, channels = headers[0][0], headers[0][1], CHANNELS_WITHOUT_MODEL[headers[0][2]]
        _check_same_size(files, headers)
    else:
        height, width, channels = _image_input_shape(input_shape, where)
        height, width = height or headers[0][0], width or headers[0][1]
    for path, (_, _, image_channels) in zip(files, headers):
        _check_channels(path, image_channels, channels)
    return (height, width), channels, any(header[:2] != (height, width) for header in headers)


def _image_input_shape(input_shape: tuple, where) -> tuple[int | None, int | None, int]:
    if len(input_shape) != 3 or input_shape[-1] not in CHANNELS_FIT:
        raise DataError(f"{where}: images feed models taking (height, width, 1|3|4 channels) inputs, this one "
                        f"takes {input_shape}; give the data as an .npz")
    return input_shape


def _check_same_size(files: list[Path], headers: list[tuple[int, int, int]]) -> None:
    height, width = headers[0][:2]
    for path, header in zip(files, headers):
        if header[:2] != (height, width):
            raise DataError(f"{path}: is {header[0]}x{header[1]} but {files[0].name} is {height}x{width}; give the "
                            f"model (or input_shape) so images are resized to its input, or resize them")


def _check_channels(where, image_channels: int, channels: int) -> None:
    if image_channels not in CHANNELS_FIT[channels]:
        convert = "Image.convert('L')" if channels == 1 else "Image.convert('RGB')"
        raise DataError(f"{where}: {CHANNEL_NAMES[image_channels]} image but the model takes {channels} channel(s) "
                        f"({CHANNEL_NAMES[channels]}); convert the images (e.g. PIL's {convert}) or give a model "
                        f"with {CHANNELS_WITHOUT_MODEL[image_channels]}-channel input")


def _decode_image(content: tf.Tensor, size: tuple[int, int], channels: int) -> tf.Tensor:
    """As keras.utils.image_dataset_from_directory loads an image: decode, bilinear resize, float32."""
    image = tf.io.decode_image(content, channels=channels, expand_animations=False)
    image = tf.image.resize(image, size, method="bilinear")
    image.set_shape((*size, channels))
    return image


def _undecodable_image(root: Path, files: list[Path], channels: int, error: Exception) -> DataError:
    """The DataError naming the first file TensorFlow cannot decode (headers were checked already)."""
    for path in files:
        try:
            tf.io.decode_image(tf.io.read_file(str(path)), channels=channels, expand_animations=False)
        except tf.errors.OpError as decode_error:
            return DataError(f"{path}: cannot be decoded ({_first_line(decode_error)}); the file is truncated or "
                             f"corrupt: remove it or save it again")
    return _generic_failure(str(root), error)


# --- TFRecords of (image, label) -------------------------------------------------------------------------


def _tfrecords_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in TFRECORD_SUFFIXES and path.is_file())


def _open_tfrecord_folder(spec, request: _Request) -> DataSource:
    return _open_tfrecords(os.fspath(spec), _tfrecords_in(Path(spec)), request)


def _open_tfrecord_glob(spec, request: _Request) -> DataSource:
    files = [Path(name) for name in sorted(glob.glob(os.fspath(spec))) if Path(name).is_file()]
    if not files:
        raise DataError(f"{os.fspath(spec)}: no files match; give TFRecord files, a folder of them or a glob")
    return _open_tfrecords(os.fspath(spec), files, request)


def _parse_feature_spec(text: str | None) -> dict:
    """{'image': KEY, 'label': KEY, 'label_given': bool, 'shape': tuple or None} from 'image=K,label=K,shape=HxWxC'."""
    spec = {"image": "image", "label": "label", "label_given": False, "shape": None}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        role, _, value = item.partition("=")
        if role not in ("image", "label", "shape") or not value:
            raise DataError(f"TFRecord spec {text!r}: expected image=KEY,label=KEY[,shape=HxWxC]")
        spec[role] = value
        spec["label_given"] |= role == "label"
    if spec["shape"] is not None:
        try:
            spec["shape"] = tuple(int(d) for d in spec["shape"].lower().split("x"))
        except ValueError:
            raise DataError(f"TFRecord spec {text!r}: shape must read like 28x28x1") from None
    return spec


def _open_tfrecords(where: str, files: list[Path], request: _Request) -> DataSource:
    spec = _parse_feature_spec(request.feature_spec)
    compression = _compression(files[0])
    features = _first_example(where, files, compression)
    if spec["image"] not in features:
        found = ", ".join(sorted(features)) or "none"
        raise DataError(f"{where}: records have no feature {spec['image']!r} (found: {found}); "
                        f"name the image feature with --tfrecord-spec image=KEY,label=KEY")
    label_key = _label_key(where, features, spec, request.need_labels)
    image_parser, facts = _image_parser(where, features[spec["image"]], spec, request.input_shape)
    parse = _record_parser(spec["image"], image_parser, label_key)

    def samples() -> tf.data.Dataset:
        records = tf.data.TFRecordDataset([str(path) for path in files], compression_type=compression)
        return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)

    facts = [f"{len(files)} file{'s' * (len(files) != 1)}", *facts,
             f"label={label_key}" if label_key else "no labels", request.preprocess_text()]
    details = {"labels": label_key is not None, "files": [str(path) for path in files],
               "feature_spec": f"image={spec['image']}" + (f",label={label_key}" if label_key else "")}
    return DataSource("tfrecord", f"tfrecord {where} ({', '.join(facts)})", request.preprocess, None, where, details,
                      read=lambda limit: _collect(samples(), limit, where), samples=samples,
                      explain=lambda error: DataError(f"{where}: reading the records failed ({_first_line(error)}); "
                                                      f"every record needs the features of the first one"))


def _compression(path: Path) -> str:
    with path.open("rb") as stream:
        return "GZIP" if stream.read(2) == b"\x1f\x8b" else ""


def _first_example(where: str, files: list[Path], compression: str) -> dict:
    """The features of the first record, as {name: tf.train.Feature}."""
    records = tf.data.TFRecordDataset([str(path) for path in files], compression_type=compression)
    try:
        first = next(iter(records.take(1)), None)
    except tf.errors.OpError as error:
        raise DataError(f"{where}: not a TFRecord file ({_first_line(error)}); write it with "
                        f"tf.io.TFRecordWriter") from None
    if first is None:
        raise DataError(f"{where}: holds no records; write (image, label) tf.train.Example records")
    try:
        return dict(tf.train.Example.FromString(first.numpy()).features.feature)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError: the records are something else
        raise DataError(f"{where}: records are not tf.train.Example protos; write each (image, label) as "
                        f"tf.train.Example(features=...)") from None


def _label_key(where: str, features: dict, spec: dict, need_labels: bool) -> str | None:
    key = spec["label"]
    if key not in features:
        if spec["label_given"] or need_labels:
            raise DataError(f"{where}: records have no label feature {key!r} (found: {', '.join(sorted(features))}); "
                            f"name it with --tfrecord-spec image=KEY,label=KEY")
        return None
    feature = features[key]
    if feature.WhichOneof("kind") != "int64_list" or len(feature.int64_list.value) != 1:
        raise DataError(f"{where}: feature {key!r} must hold one int64 class index per record, it holds "
                        f"{feature.WhichOneof('kind')}")
    return key


def _image_parser(where: str, feature, spec: dict, input_shape: tuple | None) -> tuple[tuple, list[str]]:
    """((tf.io feature, function of the parsed value -> float32 image), description facts) for the image feature."""
    kind = feature.WhichOneof("kind")
    values = getattr(feature, kind).value if kind else []
    if kind == "bytes_list" and len(values) == 1 and values[0].startswith(ENCODED_MAGIC):
        return _encoded_image_parser(where, values[0], spec, input_shape)
    shape = spec["shape"] or input_shape
    length = len(values[0]) if kind == "bytes_list" and len(values) == 1 else len(values)
    if shape is None or None in shape or length != int(np.prod(shape)):
        raise DataError(f"{where}: feature {spec['image']!r} holds {length} raw values ({kind}), not PNG/JPEG bytes "
                        f"and not the {shape or 'unknown'} shape; add shape=HxWxC to --tfrecord-spec")
    if kind == "bytes_list":
        return ((tf.io.FixedLenFeature([], tf.string),
                 lambda raw: tf.reshape(tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.float32), shape)),
                [f"image={spec['image']} raw uint8 {'x'.join(map(str, shape))}"])
    dtype = tf.float32 if kind == "float_list" else tf.int64
    return ((tf.io.FixedLenFeature([length], dtype), lambda raw: tf.reshape(tf.cast(raw, tf.float32), shape)),
            [f"image={spec['image']} {kind} {'x'.join(map(str, shape))}"])


def _encoded_image_parser(where: str, content: bytes, spec: dict, input_shape: tuple | None):
    try:
        first = tf.io.decode_image(content, expand_animations=False).shape
    except tf.errors.OpError as error:
        raise DataError(f"{where}: the first record's {spec['image']!r} cannot be decoded "
                        f"({_first_line(error)}); write PNG or JPEG bytes") from None
    wanted = input_shape or spec["shape"]
    if wanted is None:
        height, width, channels = first[0], first[1], CHANNELS_WITHOUT_MODEL[first[2]]
    else:
        height, width, channels = _image_input_shape(tuple(wanted), where)
        height, width = height or first[0], width or first[1]
    _check_channels(f"{where}: feature {spec['image']!r}", first[2], channels)
    size = (height, width)
    return ((tf.io.FixedLenFeature([], tf.string), lambda raw: _decode_image(raw, size, channels)),
            [f"image={spec['image']} encoded, {height}x{width}x{channels}"])


def _record_parser(image_key: str, image_parser: tuple, label_key: str | None) -> Callable:
    feature, decode = image_parser
    features = {image_key: feature, **({label_key: tf.io.FixedLenFeature([], tf.int64)} if label_key else {})}

    def parse(record):
        parsed = tf.io.parse_single_example(record, features)
        image = decode(parsed[image_key])
        return (image, parsed[label_key]) if label_key else image

    return parse
