"""edgecompress.sources: every way users keep data gives the same arrays as the .npz, and bad data fails early
with one DataError naming the file and the fix."""
from __future__ import annotations

import io
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from edgecompress.data import load_raw
from edgecompress.errors import DataError
from edgecompress.sources import PREPROCESS, apply_preprocess, check_preprocess, open_source

SAMPLES = 300
INPUT_SHAPE = (28, 28, 1)


def png_bytes(image: np.ndarray) -> bytes:
    stream = io.BytesIO()
    Image.fromarray(image).save(stream, format="PNG")
    return stream.getvalue()


def write_folder(root: Path, x: np.ndarray, y: np.ndarray, name: str = "{index:05d}.png") -> Path:
    """Each image as root/class_LABEL/NAME, the way users write a folder from arrays."""
    for index, (image, label) in enumerate(zip(x, y)):
        (root / f"class_{label}").mkdir(parents=True, exist_ok=True)
        (root / f"class_{label}" / name.format(index=index)).write_bytes(png_bytes(image))
    return root


def write_tfrecord(path: Path, x: np.ndarray, y: np.ndarray, image_key: str, encode) -> Path:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image, label in zip(x, y):
            label_feature = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
            features = {image_key: encode(image), "label": label_feature}
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    return path


def bytes_feature(content: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[content]))


@pytest.fixture(scope="module")
def fashion():
    raw = load_raw("embedded")
    return raw.x_test[:SAMPLES], raw.y_test[:SAMPLES].astype(np.int64)


@pytest.fixture(scope="module")
def stored(fashion, tmp_path_factory):
    """The same 300 Fashion-MNIST images as an .npz, a class folder of PNGs and TFRecords of three kinds."""
    root = tmp_path_factory.mktemp("stored")
    x, y = fashion
    np.savez(root / "data.npz", x=x[..., None], y=y)
    write_folder(root / "folder", x, y)
    write_tfrecord(root / "a.tfrecord", x[:200], y[:200], "image", lambda im: bytes_feature(png_bytes(im)))
    write_tfrecord(root / "b.tfrecord", x[200:], y[200:], "image", lambda im: bytes_feature(png_bytes(im)))
    write_tfrecord(root / "raw.tfrec", x, y, "image_raw", lambda im: bytes_feature(im.tobytes()))
    write_tfrecord(root / "floats.tfrecords", x, y, "pixels",
                   lambda im: tf.train.Feature(float_list=tf.train.FloatList(value=im.ravel().astype(np.float32))))
    return root


@pytest.fixture(scope="module")
def reference(stored):
    x, y = np.load(stored / "data.npz")["x"], np.load(stored / "data.npz")["y"]
    return x.astype(np.float32), y


def assert_same(source, reference):
    x, y = source.arrays()
    assert x.dtype == np.float32 and np.array_equal(x, reference[0])
    assert np.array_equal(y, reference[1])


def test_folder_gives_the_npz_arrays(stored, reference):
    source = open_source(stored / "folder", input_shape=INPUT_SHAPE)
    assert_same(source, reference)
    assert source.kind == "folder" and source.count == SAMPLES
    assert source.description == f"folder {stored / 'folder'}/ (300 images, 10 classes, none)"
    first_x, first_y = source.arrays(limit=7)
    assert np.array_equal(first_x, reference[0][:7]) and np.array_equal(first_y, reference[1][:7])


def test_folder_values_are_keras_loader_values(stored, reference):
    """The decode is keras.utils.image_dataset_from_directory's; only the order is ours (by file name)."""
    folder = stored / "folder"
    dataset = keras.utils.image_dataset_from_directory(folder, labels="inferred", label_mode="int", shuffle=False,
                                                       image_size=(28, 28), color_mode="grayscale", verbose=False)
    keras_x = np.concatenate([x for x, _ in dataset.as_numpy_iterator()])
    row = {Path(path).name: index for index, path in enumerate(dataset.file_paths)}
    ours, _ = open_source(folder, input_shape=INPUT_SHAPE).arrays()
    assert np.array_equal(keras_x[[row[f"{i:05d}.png"] for i in range(SAMPLES)]], ours)


def test_numbers_in_file_names_compare_by_value(fashion, tmp_path):
    x, y = fashion[0][:12], np.arange(12) % 3
    source = open_source(write_folder(tmp_path / "f", x, y, name="img{index}.png"))
    got_x, got_y = source.arrays()
    assert np.array_equal(got_x[..., 0], x) and np.array_equal(got_y, y)  # img2 before img10


def test_batches_stream_the_same_samples(stored, reference):
    source = open_source(stored / "folder", input_shape=INPUT_SHAPE, preprocess="scale01")
    parts = list(source.batches(64).as_numpy_iterator())
    assert [len(x) for x, _ in parts] == [64, 64, 64, 64, 44]
    assert np.allclose(np.concatenate([x for x, _ in parts]), reference[0] / 255.0)
    assert np.array_equal(np.concatenate([y for _, y in parts]), reference[1])


@pytest.mark.parametrize("spec, feature_spec", [("*.tfrecord", None), ("raw.tfrec", "image=image_raw,shape=28x28x1"),
                                                ("floats.tfrecords", "image=pixels")])
def test_tfrecords_give_the_npz_arrays(stored, reference, spec, feature_spec):
    source = open_source(str(stored / spec), input_shape=INPUT_SHAPE, feature_spec=feature_spec)
    assert_same(source, reference)
    assert source.kind == "tfrecord" and source.to_record()["feature_spec"].endswith(",label=label")
    streamed = np.concatenate([x for x, _ in source.batches(100).as_numpy_iterator()])
    assert np.array_equal(streamed, reference[0])


def test_a_folder_of_tfrecords(stored, reference, tmp_path):
    for name in ("a.tfrecord", "b.tfrecord"):
        (tmp_path / name).write_bytes((stored / name).read_bytes())
    assert_same(open_source(tmp_path, input_shape=INPUT_SHAPE), reference)


@pytest.mark.parametrize("batched", [True, False])
def test_tf_dataset_and_generator_give_the_npz_arrays(reference, batched):
    x, y = reference
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    assert_same(open_source(dataset.batch(32) if batched else dataset, input_shape=INPUT_SHAPE), reference)
    pairs = ((x[i:i + 32], y[i:i + 32]) for i in range(0, len(x), 32)) if batched else zip(x, y)
    source = open_source(iter(pairs))  # the labels' rank says whether elements are batches
    assert_same(source, reference)
    assert source.description == "generator (300 samples, labels, none)"


def test_npz_and_arrays(stored, reference):
    npz = open_source(stored / "data.npz")
    x, y = npz.arrays()
    assert x.dtype == np.uint8 and np.array_equal(x, reference[0]) and np.array_equal(y, reference[1])
    assert npz.to_record() == {"kind": "npz", "path": str(stored / "data.npz"), "preprocess": "none", "count": 300,
                               "description": f"npz {stored / 'data.npz'} (300 samples, labels, none)",
                               "labels": True}
    assert_same(open_source(reference), reference)


def test_preprocess_modes_give_the_stated_numbers():
    pixels = np.array([[[[0, 128, 255], [10, 20, 30]]]], np.uint8)
    caffe = keras.applications.imagenet_utils.preprocess_input(pixels.astype(np.float32), mode="caffe")
    torch = keras.applications.imagenet_utils.preprocess_input(pixels.astype(np.float32), mode="torch")
    expected = {"none": pixels, "scale01": pixels / 255.0, "scale-1-1": pixels / 127.5 - 1.0,
                "imagenet-caffe": caffe, "imagenet-torch": torch}
    assert set(expected) == set(PREPROCESS)
    for name, values in expected.items():
        x, _ = open_source(pixels, preprocess=name).arrays()
        assert x.dtype == (np.uint8 if name == "none" else np.float32)
        np.testing.assert_allclose(x, values, rtol=1e-6, atol=1e-5)
    assert np.allclose(apply_preprocess(pixels, "scale-1-1")[0, 0, 0, [0, 2]], [-1.0, 1.0])


def test_preprocess_is_recorded_and_the_models_rescaling_named(stored):
    inputs = keras.Input(INPUT_SHAPE)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Rescaling(1 / 255)(inputs)))
    source = open_source(stored / "folder", model=model)
    assert "none: the model's own Rescaling(scale=0.003922, offset=0) scales the inputs" in source.description
    doubled = open_source(stored / "folder", model=model, preprocess="scale01")
    assert "scaled twice?" in doubled.description and doubled.to_record()["preprocess"] == "scale01"


# --- bad data: one DataError naming the file and the fix -----------------------------------------------


def check_bad(spec, *needles, **options):
    with pytest.raises(DataError) as raised:
        source = open_source(spec, **options)
        source.arrays()
    message = str(raised.value)
    assert "\n" not in message
    for needle in needles:
        assert str(needle) in message, message
    return message


def test_missing_empty_and_flat_folders(tmp_path, fashion):
    check_bad(tmp_path / "nowhere", "nowhere: no such file or folder", "sub-folder")
    check_bad(tmp_path / "nowhere.npz", "nowhere.npz: no such data file")
    (tmp_path / "empty").mkdir()
    check_bad(tmp_path / "empty", "empty: folder is empty", "CLASS")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(png_bytes(fashion[0][0]))
    check_bad(tmp_path / "flat", "flat: has images such as a.png directly in it", "sub-folder")


def test_unreadable_files_are_named(tmp_path, fashion):
    folder = write_folder(tmp_path / "f", fashion[0][:4], np.array([0, 1, 0, 1]))
    (folder / "class_1" / "notes.txt").write_text("shot on a phone")
    check_bad(folder, str(folder / "class_1" / "notes.txt"), "not an image file", "remove it")
    (folder / "class_1" / "notes.txt").unlink()
    (folder / "class_0" / "fake.png").write_text("not a png")
    check_bad(folder, str(folder / "class_0" / "fake.png"), "not a readable image")
    (folder / "class_0" / "fake.png").write_bytes(png_bytes(fashion[0][5])[:60])  # header fine, pixels cut off
    check_bad(folder, str(folder / "class_0" / "fake.png"), "cannot be decoded", "truncated or corrupt")


def test_rgb_images_for_a_grayscale_model(tmp_path, fashion):
    folder = write_folder(tmp_path / "f", fashion[0][:3], np.array([0, 1, 1]))
    rgb = np.repeat(fashion[0][3][..., None], 3, axis=-1)
    (folder / "class_1" / "colour.png").write_bytes(png_bytes(rgb))
    check_bad(folder, str(folder / "class_1" / "colour.png"), "RGB image but the model takes 1 channel",
        "Image.convert('L')", input_shape=INPUT_SHAPE)


def test_tfrecord_without_the_feature(stored):
    check_bad(stored / "a.tfrecord", "no feature 'pixels' (found: image, label)", "--tfrecord-spec",
              feature_spec="image=pixels")
    check_bad(stored / "a.tfrecord", "no label feature 'y' (found: image, label)", feature_spec="label=y")
    check_bad(stored / "raw.tfrec", "'image_raw' holds 784 raw values", "shape=HxWxC",
              feature_spec="image=image_raw")
    check_bad(stored / "a.tfrecord", "TFRecord spec 'image': expected image=KEY,label=KEY", feature_spec="image")


def test_datasets_that_cannot_be_read_whole(reference):
    endless = tf.data.Dataset.from_tensor_slices(reference).batch(8).repeat()
    check_bad(endless, "tf.data.Dataset: repeats forever", "limit")
    assert len(open_source(endless).arrays(limit=20)[0]) == 20
    check_bad(tf.data.Dataset.from_tensor_slices((reference[0], reference[0])),
              "labels must be integer class indices")
    check_bad(iter([]), "generator: yielded nothing")


def test_unknown_preprocess_lists_the_choices(stored):
    message = check_bad(stored / "folder", "unknown preprocess 'imagenet'", preprocess="imagenet")
    assert all(name in message for name in PREPROCESS)
    with pytest.raises(DataError, match="scale-1-1"):
        check_preprocess("scale")
    check_bad(stored / "folder", "imagenet-caffe needs RGB inputs (3 channels), these have 1",
              preprocess="imagenet-caffe")
