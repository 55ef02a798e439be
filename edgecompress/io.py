"""Loading models and data with errors that name the file and the fix; writing outputs atomically."""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

from edgecompress.errors import DataError, ModelLoadError


def load_model(path: str | os.PathLike):
    """Load a Keras 3 model file (.keras or .h5) as saved, or say exactly why not (edgecompress.models.load adds
    zoo:NAME and normalizes the graph)."""
    import keras

    import edgecompress  # noqa: F401  (registers our layers before deserializing)

    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file; give the path of a .keras or .h5 model")
    if path.is_dir():
        raise ModelLoadError(f"{path}: is a directory (SavedModel?); Keras 3 cannot rebuild layers from a "
                             f"SavedModel: load it in the framework that wrote it and save it as .keras")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path}: file is empty; re-save the model with model.save('model.keras')")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path}: not a valid .keras archive (truncated or corrupt); re-save the model")
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise ModelLoadError(f"{path}: unsupported model file type {path.suffix!r}; use .keras (or .h5)")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 - any loader failure is a bad file to the user
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelLoadError(f"{path}: cannot load as a Keras model ({first_line[:200]}); "
                             f"re-save it with Keras 3 as .keras") from error


def load_npz(path: str | os.PathLike, need_labels: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an .npz with `x` (and optionally integer `y`), checking what the public surface promises."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file; give an .npz with an array 'x' (and optional labels 'y')")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as error:  # noqa: BLE001
        raise DataError(f"{path}: not a readable .npz ({type(error).__name__}); save it with numpy.savez") from error
    if "x" not in arrays:
        raise DataError(f"{path}: has no array 'x' (found: {', '.join(arrays) or 'nothing'}); "
                        f"save inputs as numpy.savez(path, x=inputs, y=labels)")
    x, y = arrays["x"], arrays.get("y")
    if x.dtype not in (np.float32, np.float64, np.uint8, np.int8, np.float16) or x.ndim < 2 or len(x) == 0:
        raise DataError(f"{path}: 'x' must be a non-empty float32 or uint8 array with a batch axis, "
                        f"got {x.dtype} {x.shape}")
    if y is not None:
        y = _check_labels(path, x, y)
    elif need_labels:
        raise DataError(f"{path}: has no labels 'y', which this step needs; add y=integer labels to the .npz")
    return x, y


def _check_labels(path: Path, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) != len(x):
        raise DataError(f"{path}: 'y' must be {len(x)} integer labels, got {y.dtype} {y.shape}")
    if len(y) and y.min() < 0:
        raise DataError(f"{path}: labels in 'y' must be >= 0, found {int(y.min())}")
    return y


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `final_path`; rename it into place only if the block succeeds.

    SIGTERM during the block is turned into an exception, so the temporary file is removed too.
    """
    final_path = Path(final_path)
    directory = final_path.parent if str(final_path.parent) else Path(".")
    suffix = suffix if suffix is not None else "".join(final_path.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final_path.stem}.", suffix=f".tmp{suffix}", dir=directory)
    os.close(fd)
    tmp_path = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs should get the usual permissions
    try:
        with terminate_as_interrupt():
            yield tmp_path
        os.replace(tmp_path, final_path)
    finally:
        if tmp_path.exists():
            if tmp_path.is_dir():
                import shutil

                shutil.rmtree(tmp_path, ignore_errors=True)
            else:
                tmp_path.unlink()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt so cleanup code runs (main thread only)."""
    def _raise(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, _raise)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
