"""The README's Python example runs as written, on a small saved model and calibration file."""
import re
from pathlib import Path

import keras
import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_python_example_runs(tmp_path, monkeypatch):
    (block,) = readme_python_blocks()
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    keras.Model(inputs, keras.layers.Dense(4, name="head")(x)).save(tmp_path / "model.keras")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).random((32, 12, 12, 3), dtype=np.float32))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert (tmp_path / "small.keras").is_file() and (tmp_path / "small.tflite").is_file()
    assert namespace["result"].plan.budget["achieved"]["params"] <= 0.5
    assert namespace["timing"].models
