"""Check that compressed models give the same answers on arm64 (Debian bookworm under qemu-user) as on the host.

    python bench/arm64_check.py [--samples 200] [--quick] [--models A.tflite B.tflite ...]

Sets up the arm64-qemu target if needed (root, debootstrap, network once), compresses the shipped LeNet-5
(zoo) to half its parameters, exports it as fp32 and full-int8 .tflite, and runs both on the host and under
qemu on Fashion-MNIST test images. Passes when fp32 top-1 predictions are identical and int8 outputs differ
by at most one quantization step. Prints a table and saves bench/results/arm64_check.{json,md}.
Times under qemu are emulated: shown for completeness, never comparable with a device's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="test images compared (default 200)")
    parser.add_argument("--quick", action="store_true", help="50 images, shorter timing (for the slow test)")
    parser.add_argument("--models", nargs="+", type=Path, help="check these .tflite files instead (with --data)")
    parser.add_argument("--data", type=Path, help=".npz test data for --models")
    parser.add_argument("--budget", default="params=0.5", help="compression budget (default params=0.5)")
    parser.add_argument("--target", default="arm64-qemu", help="emulated target to compare with (default arm64-qemu)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where to save the results")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples = min(args.samples, 50)
    return args


def make_models(workdir: Path, samples: int, budget: str) -> tuple[list[Path], Path]:
    """LeNet-5 compressed to `budget`, exported as fp32 and int8, and an .npz of `samples` test images."""
    from edgecompress.compress import CompressConfig, compress
    from edgecompress.data import load_fashion_mnist, save_npz
    from edgecompress.lower import export
    from edgecompress.zoo.registry import pretrained

    data = load_fashion_mnist(train_limit=512, test_limit=samples)
    calibration = (data.x_train, data.y_train)
    compressed = compress(pretrained("lenet5"), calibration, CompressConfig(budget=budget)).model
    paths = []
    for precision in ("fp32", "int8"):
        path = workdir / f"lenet5_{budget.replace('=', '')}_{precision}.tflite"
        export(compressed, path, to="tflite", precision=precision, data=calibration, parity_samples=64)
        paths.append(path)
    return paths, save_npz(workdir / "test.npz", data.x_test, data.y_test)


def output_step(path: Path) -> float | None:
    """The quantization step of the model's output: its own scale for an integer output, the scale of the
    tensor a final DEQUANTIZE reads for an int8 model with float outputs; None for a float model."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    output = interpreter.get_output_details()[0]
    if output["quantization"][0] > 0:
        return float(output["quantization"][0])
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    for op in interpreter._get_ops_details():  # noqa: SLF001 - the public API has no op list
        if output["index"] in op["outputs"] and op["op_name"] == "DEQUANTIZE":
            return float(tensors[op["inputs"][0]]["quantization"][0]) or None
    return None


def compare(path: Path, host: dict, emulated: dict) -> dict:
    """Top-1 agreement and output differences (in quantization steps for quantized models)."""
    diff = np.abs(np.asarray(host["accuracy"]["outputs"]) - np.asarray(emulated["accuracy"]["outputs"]))
    step = output_step(path)
    # float outputs of an int8 model are step * integer: round away float32 noise before counting steps
    max_diff = float(np.round(diff.max() / step, 3)) if step else float(diff.max())
    identical = host["accuracy"]["top1"] == emulated["accuracy"]["top1"]
    passed = max_diff <= 1 if step else identical
    quant = host["accuracy"]["output_quantization"]
    return {"model": path.name, "output_dtype": quant["dtype"], "quantized": step is not None,
            "output_step": step, "samples": host["accuracy"]["n"],
            "host_top1_accuracy": host["accuracy"].get("top1_accuracy"),
            "emulated_top1_accuracy": emulated["accuracy"].get("top1_accuracy"),
            "top1_identical": identical,
            "top1_agreement": float(np.mean(np.equal(host["accuracy"]["top1"], emulated["accuracy"]["top1"]))),
            "max_abs_output_diff": max_diff, "diff_unit": "quantization steps" if step else "float",
            "rule": "int8 outputs within 1 step" if step else "fp32 top-1 identical", "passed": bool(passed),
            "host_p50_ms": host["latency_ms"]["p50"], "emulated_p50_ms": emulated["latency_ms"]["p50"]}


def table(rows: list[dict], host_cpu: str, emulated_on: str) -> str:
    lines = [f"host: {host_cpu}; emulated: {emulated_on}", "",
             "| model | out dtype | n | host top-1 | arm64 top-1 | top-1 identical | max |Δ output| | rule | pass "
             "| host p50 ms (device) | arm64 p50 ms (EMULATED) |",
             "|---|---|---:|---:|---:|---|---:|---|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['output_dtype']} | {r['samples']} | {_pct(r['host_top1_accuracy'])} | "
                     f"{_pct(r['emulated_top1_accuracy'])} | {'yes' if r['top1_identical'] else 'no'} | "
                     f"{r['max_abs_output_diff']:.3g} {r['diff_unit']} | {r['rule']} | "
                     f"{'PASS' if r['passed'] else 'FAIL'} | {r['host_p50_ms']:.3f} | {r['emulated_p50_ms']:.3f} |")
    return "\n".join(lines) + "\n"


def slim(result: dict) -> dict:
    """A result without per-sample data (latency samples, raw outputs), to keep the saved file small."""
    for model in result["models"]:
        model.pop("samples_ms", None)
        (model.get("accuracy") or {}).pop("outputs", None)
    return result


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def main(argv: list[str] | None = None) -> int:
    from edgecompress import bench
    from edgecompress.io import atomic_path

    args = parse_args(argv)
    emulated_target = bench.get_target(args.target)
    emulated_target.setup(progress=lambda line: print(line, flush=True))
    settings = bench.BenchSettings(min_runs=10, min_secs=0.2 if args.quick else 1.0, warmup_secs=0.1,
                                   max_samples=args.samples, outputs=True)
    with tempfile.TemporaryDirectory(prefix="arm64-check-") as scratch:
        models, data = (args.models, args.data) if args.models else make_models(Path(scratch), args.samples,
                                                                                 args.budget)
        host = bench.run(models, target="host", data=data, settings=settings)
        emulated = bench.run(models, target=emulated_target, data=data, settings=settings)
        rows = [compare(path, h, e) for path, h, e in zip(models, host.models, emulated.models)]
    text = table(rows, host.system["cpu_model"], f"{emulated.system['machine']} under qemu-user (EMULATED timing)")
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "arm64_check.json") as tmp:
        tmp.write_text(json.dumps({"rows": rows, "host": slim(host.to_dict()), "emulated": slim(emulated.to_dict())},
                                  indent=1))
    with atomic_path(args.out / "arm64_check.md") as tmp:
        tmp.write_text(text)
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
