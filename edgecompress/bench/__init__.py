"""Benchmarking .tflite/.onnx files on targets (host, ssh boards, adb phones, arm64 under qemu).

    result = edgecompress.bench.run(["model.tflite", "compressed.tflite"], target="rpi4", data="test.npz")
    print(edgecompress.bench.report.markdown(result))

edgecompress/ondevice/runner.py is what runs on the target; it imports nothing from edgecompress and is
copied there as one file (lower/runtime.py shares its runtime lookup).
"""
from edgecompress.bench.api import KINDS, check_model_path, get_target, list_targets, run
from edgecompress.bench.base import Target
from edgecompress.bench.costtable import CostTable
from edgecompress.bench.result import BenchResult
from edgecompress.bench.settings import BenchSettings

__all__ = ["KINDS", "BenchResult", "BenchSettings", "CostTable", "Target", "check_model_path", "get_target",
           "list_targets", "run"]
