"""Fashion-MNIST loading: sources and their fallback order, the IDX reader, the views, the embedded subset, .npz."""
from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from edgecompress import data
from edgecompress.errors import DataError
from edgecompress.io import load_npz

REPO = Path(__file__).resolve().parents[1]


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array as a gzipped IDX file (the reference for the reader)."""
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    with gzip.open(path, "wb") as stream:
        stream.write(header + array.astype(np.uint8).tobytes())
    return path


def write_fake_source(directory: Path, n_train: int = 30, n_test: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 28, 28)), "y_train": np.arange(n_train) % 10,
              "x_test": rng.integers(0, 256, (n_test, 28, 28)), "y_test": np.arange(n_test) % 10}
    directory.mkdir(parents=True, exist_ok=True)
    for key, file_name in data.IDX_FILES.items():
        write_idx(directory / file_name, arrays[key])
    return arrays


@pytest.fixture
def only(monkeypatch, tmp_path):
    """Point every source somewhere controlled; returns the three locations (all empty at first)."""
    keras_home, debian = tmp_path / "keras_home", tmp_path / "debian"
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setattr(data, "DEBIAN_DIR", debian)
    return {"keras-cache": keras_home / "datasets" / "fashion-mnist", "debian": debian,
            "embedded": data.EMBEDDED_PATH}


# --- the embedded subset ------------------------------------------------------------------------------------


def test_embedded_subset_is_small_and_stratified():
    assert data.EMBEDDED_PATH.is_file()
    assert data.EMBEDDED_PATH.stat().st_size < 4_000_000
    raw = data.load_raw("embedded")
    assert raw.source == "embedded" and raw.x_train.dtype == np.uint8
    assert raw.x_train.shape == (6000, 28, 28) and raw.x_test.shape == (2000, 28, 28)
    assert np.bincount(raw.y_train, minlength=10).tolist() == [600] * 10
    assert np.bincount(raw.y_test, minlength=10).tolist() == [200] * 10
    assert len(set(raw.y_train[:50].tolist())) > 5  # shuffled, not sorted by class


def test_embedded_subset_has_attribution():
    note = (data.EMBEDDED_PATH.parent / "ATTRIBUTION.md").read_text()
    assert "Zalando" in note and "MIT" in note and "1708.07747" in note


@pytest.mark.skipif("debian" not in data.available_sources(), reason="Debian dataset-fashion-mnist not installed")
def test_embedded_subset_is_reproducible_from_debian_files():
    spec = importlib.util.spec_from_file_location("make_subset", REPO / "bench" / "make_embedded_subset.py")
    make_subset = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_subset)
    with np.load(data.EMBEDDED_PATH) as shipped:
        rebuilt = make_subset.build_subset(data.load_raw("debian"), 600, 200, int(shipped["seed"]))
        for key in ("x_train", "y_train", "x_test", "y_test", "train_index", "test_index"):
            np.testing.assert_array_equal(rebuilt[key], shipped[key], err_msg=key)


# --- sources and fallback -----------------------------------------------------------------------------------


@pytest.mark.parametrize("source", data.available_sources())
@pytest.mark.parametrize("view, sample_shape", list(data.VIEW_SHAPES.items()))
def test_views_have_right_shape_dtype_and_range(source, view, sample_shape):
    dataset = data.load_fashion_mnist(source, view, train_limit=64, test_limit=32)
    assert dataset.source == source and dataset.view == view
    assert dataset.x_train.shape == (64, *sample_shape) and dataset.x_test.shape == (32, *sample_shape)
    assert dataset.x_train.dtype == np.float32 and dataset.y_train.dtype == np.int64
    assert 0.0 <= dataset.x_train.min() and dataset.x_train.max() <= 1.0 and dataset.x_train.max() > 0.5
    assert set(np.unique(dataset.y_train)) <= set(range(10)) and len(dataset.y_test) == 32


def test_auto_prefers_keras_cache_then_debian_then_embedded(only):
    assert data.resolve_source("auto") == "embedded"
    write_fake_source(only["debian"], seed=1)
    assert data.resolve_source("auto") == "debian"
    cached = write_fake_source(only["keras-cache"], seed=2)
    raw = data.load_raw("auto")
    assert raw.source == "keras-cache"
    np.testing.assert_array_equal(raw.x_train, cached["x_train"])  # the IDX reader against its reference


def test_incomplete_keras_cache_is_skipped(only):
    write_fake_source(only["keras-cache"])
    (only["keras-cache"] / data.IDX_FILES["x_test"]).unlink()
    write_fake_source(only["debian"])
    assert data.load_raw("auto").source == "debian"


def test_full_without_full_source_names_the_fix(only):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        data.load_raw("full")
    with pytest.raises(DataError, match="'debian' not found"):
        data.load_raw("debian")


def test_nothing_at_all_is_a_clear_error(only, monkeypatch, tmp_path):
    monkeypatch.setattr(data, "EMBEDDED_PATH", tmp_path / "missing.npz")
    with pytest.raises(DataError, match="not found"):
        data.load_fashion_mnist()


@pytest.mark.parametrize("bad_name", ["imagenet", ""])
def test_unknown_source_or_view(bad_name):
    with pytest.raises(DataError, match="unknown Fashion-MNIST source"):
        data.load_raw(bad_name)
    with pytest.raises(DataError, match="unknown Fashion-MNIST view"):
        data.load_fashion_mnist("embedded", bad_name)


# --- corrupt files ------------------------------------------------------------------------------------------


def _corrupt(path: Path, how: str) -> None:
    payload = gzip.decompress(path.read_bytes())
    if how == "header":
        path.write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + payload[4:]))
    elif how == "truncated":
        path.write_bytes(gzip.compress(payload[:-100]))
    else:
        path.write_bytes(b"this is not gzip")


@pytest.mark.parametrize("how, message", [("header", "bad header"), ("truncated", "truncated"),
                                          ("not-gzip", "not a readable gzip")])
@pytest.mark.parametrize("source, fix", [("debian", "apt-get install --reinstall"), ("keras-cache", "delete it")])
def test_corrupt_idx_names_file_and_fix(only, how, message, source, fix):
    write_fake_source(only[source])
    broken = only[source] / data.IDX_FILES["x_train"]
    _corrupt(broken, how)
    with pytest.raises(DataError) as caught:
        data.load_raw(source)
    assert str(broken) in str(caught.value) and message in str(caught.value) and fix in str(caught.value)


def test_mismatched_images_and_labels(only):
    write_fake_source(only["debian"])
    write_idx(only["debian"] / data.IDX_FILES["y_test"], np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="do not match labels"):
        data.load_raw("debian")


# --- views --------------------------------------------------------------------------------------------------


def test_seq1d_is_rows_of_the_image():
    raw = data.load_raw("embedded")
    image, sequence = data.to_image(raw.x_test[:5]), data.to_seq1d(raw.x_test[:5])
    np.testing.assert_array_equal(sequence, image[..., 0])
    np.testing.assert_allclose(image[..., 0] * 255.0, raw.x_test[:5], atol=1e-4)


def test_clip3d_frames_are_shifted_copies_without_wraparound():
    images = data.load_raw("embedded").x_test[:8]
    clips, reference = data.to_clip3d(images), data.to_image(images)[..., 0]
    assert clips.shape == (8, data.CLIP_FRAMES, 28, 28, 1)
    np.testing.assert_array_equal(clips[:, 0, ..., 0], reference)
    for sample in range(8):
        d_row, d_col = data.CLIP_DIRECTIONS[sample % 4]
        for frame in range(1, data.CLIP_FRAMES):
            expected = np.roll(reference[sample], (d_row * frame, d_col * frame), axis=(0, 1))
            if d_col:
                expected[:, slice(0, frame) if d_col > 0 else slice(28 - frame, 28)] = 0
            if d_row:
                expected[slice(0, frame) if d_row > 0 else slice(28 - frame, 28), :] = 0
            np.testing.assert_array_equal(clips[sample, frame, ..., 0], expected)


# --- .npz writing -------------------------------------------------------------------------------------------


def test_save_npz_round_trips_through_load_npz(tmp_path):
    dataset = data.load_fashion_mnist("embedded", train_limit=16, test_limit=16)
    path = data.save_npz(tmp_path / "calib", dataset.x_test, dataset.y_test)  # no suffix: written as given
    x, y = load_npz(path, need_labels=True)
    np.testing.assert_array_equal(x, dataset.x_test)
    np.testing.assert_array_equal(y, dataset.y_test)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib"]  # no temporary file left behind


def test_save_npz_rejects_mismatched_labels(tmp_path):
    with pytest.raises(DataError, match="3 inputs but 2 labels"):
        data.save_npz(tmp_path / "bad.npz", np.zeros((3, 28, 28, 1), np.float32), np.zeros(2, np.int64))
    assert not list(tmp_path.iterdir())
