"""Run exported models on the real runtimes (LiteRT and its fallbacks for .tflite, onnxruntime for .onnx), batch 1."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator

import numpy as np

from edgecompress.errors import ExportError


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Silence what TF/LiteRT C++ code prints on fd 2 ("fully_quantize: 0 ...", "Created XNNPACK delegate") and
    absl warnings; failures still arrive as exceptions, which the callers turn into one-line errors."""
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    sys.stderr.flush()
    saved_fd = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        absl_logger.setLevel(level)


def tflite_runtime() -> tuple[str, str, type]:
    """(name, version, Interpreter class): ai_edge_litert, else tflite_runtime, else tf.lite (shared with bench)."""
    from edgecompress.ondevice.runner import RunnerError, find_tflite_runtime

    try:
        return find_tflite_runtime()
    except RunnerError as error:
        raise ExportError(str(error)) from None


def onnx_runtime() -> tuple[str, str]:
    """(name, version) of onnxruntime (the same lookup as the runner's)."""
    from edgecompress.ondevice.runner import RunnerError, find_onnx_runtime

    try:
        return find_onnx_runtime()[:2]
    except RunnerError as error:
        raise ExportError(str(error)) from None


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if detail["dtype"] in (np.float32, np.float16) or not scale:
        return x.astype(detail["dtype"])
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(detail["dtype"])


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if np.issubdtype(y.dtype, np.floating) or not scale:
        return y.astype(np.float32)
    return (y.astype(np.float32) - zero_point) * scale


def run_tflite(content: bytes, x: np.ndarray, threads: int | None = 1) -> np.ndarray:
    """First output for every sample of x, one invoke per sample (the model has a static batch of 1)."""
    _, _, interpreter_class = tflite_runtime()
    with quiet_native_logs():
        interpreter = interpreter_class(model_content=content, num_threads=threads)
        interpreter.allocate_tensors()
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    outputs = []
    for sample in x:
        interpreter.set_tensor(input_detail["index"], _quantize(sample[None], input_detail))
        interpreter.invoke()
        outputs.append(_dequantize(interpreter.get_tensor(output_detail["index"]), output_detail)[0])
    return np.stack(outputs)


def run_onnx(content: bytes, x: np.ndarray, threads: int | None = 1) -> np.ndarray:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(content, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.stack([session.run(None, {name: sample[None].astype(np.float32)})[0][0] for sample in x])


RUNNERS = {"tflite": run_tflite, "onnx": run_onnx}
RUNTIMES = {"tflite": lambda: tflite_runtime()[:2], "onnx": onnx_runtime}
