"""Real architectures end to end: keras.applications models (random weights) through inspect, compress, export
(fp32 and int8 .tflite, .onnx, with parity) and a paired bench, each stage a CLI call in its own process.

Prints per stage wall time and peak RSS (the stage's own process, from wait4) and what was factorized; writes
bench/results/real_architectures.{md,json}. Goals (issue 11, 2 cores, 256 calibration images at 224x224):
compress MobileNetV2 <= 3 min, ResNet-50 <= 10 min, peak RSS <= 4 GB.

Run: python bench/real_architectures.py [--archs mobilenet_v2,resnet50] [--size 224] [--images 256]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


RESULTS = Path(__file__).resolve().parent / "results"
STAGE_TIMEOUT_S = 3600
BENCH_TIMING = ["--min-runs", "20", "--min-secs", "2", "--max-secs", "20", "--segments", "4"]


def run_stage(argv: list[str], log: Path) -> dict:
    """Run one command; wall time, peak RSS of that process (MB) and exit code."""
    started = time.perf_counter()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": round(time.perf_counter() - started, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "rc": process.returncode}


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "edgecompress.cli", *map(str, args)]


def make_inputs(arch: str, size: int, images: int, work: Path) -> list[str]:
    """A python -c command that saves the model and the calibration/test data (its own stage)."""
    script = (
        "import sys, numpy as np; from edgecompress.zoo.applications import build_application; "
        f"m = build_application({arch!r}, {size}); m.save(sys.argv[1]); "
        "rng = np.random.default_rng(0); "
        f"np.savez(sys.argv[2], x=rng.random(({images}, {size}, {size}, 3), dtype=np.float32)); "
        f"np.savez(sys.argv[3], x=rng.random((64, {size}, {size}, 3), dtype=np.float32), y=rng.integers(0, 10, 64))"
    )
    return [sys.executable, "-c", script, str(work / "model.keras"), str(work / "calib.npz"), str(work / "test.npz")]


def stages(work: Path, budget: str) -> list[tuple[str, list[str]]]:
    model, calib, out = work / "model.keras", work / "calib.npz", work / "out"
    return [
        ("inspect", cli("inspect", model, "--json")),
        ("compress", cli("compress", model, "--data", calib, "-o", out, "--budget", budget)),
        ("export original fp32", cli("export", model, "--data", work / "test.npz", "-o", work / "original.tflite")),
        ("export fp32", cli("export", out / "model.keras", "--data", work / "test.npz", "-o", work / "fp32.tflite")),
        ("export int8", cli("export", out / "model.keras", "--precision", "int8", "--data", calib,
                            "-o", work / "int8.tflite")),
        ("export onnx", cli("export", out / "model.keras", "--data", work / "test.npz", "-o", work / "model.onnx")),
        ("bench", cli("bench", work / "original.tflite", work / "fp32.tflite", "--data", work / "test.npz",
                      "--json", work / "bench.json", *BENCH_TIMING)),
    ]


def summary(work: Path) -> dict:
    """What the stages produced: candidates, factorized layers, params, parity, speedup."""
    found: dict = {}
    inspect_log = work / "inspect.log"
    if inspect_log.exists():
        try:
            rows = json.loads(inspect_log.read_text())["layers"]
            found["candidates"] = sum(1 for r in rows if r["kind"] and r["reason"] is None)
        except (json.JSONDecodeError, KeyError):
            pass
    plan_path = work / "out" / "plan.json"
    if plan_path.exists():
        plan = json.loads(plan_path.read_text())
        methods = [layer["method"] for layer in plan["layers"] if layer["method"]]
        found["factorized"] = {m: methods.count(m) for m in sorted(set(methods))}
        found["params_kept"] = plan["budget"]["achieved"]["params"]
        found["flops_kept"] = plan["budget"]["achieved"]["flops"]
    for name in ("fp32.tflite", "int8.tflite", "model.onnx"):
        audit_path = work / f"{name}.audit.json"
        if audit_path.exists():
            audit = json.loads(audit_path.read_text())
            parity = audit.get("parity", {})
            found[name] = {"builtin_only": audit.get("builtin_only"), "max_abs_diff": parity.get("max_abs_diff"),
                           "max_abs_reference": parity.get("max_abs_reference"),
                           "top1_agreement": parity.get("top1_agreement"), "size_bytes": audit.get("size_bytes")}
    bench_path = work / "bench.json"
    if bench_path.exists():
        comparisons = json.loads(bench_path.read_text()).get("comparisons", [])
        if comparisons:
            low, high = comparisons[0].get("ci95") or (None, None)
            found["speedup"] = {"speedup": comparisons[0].get("speedup"), "ci_low": low, "ci_high": high}
    return found


def measure(arch: str, size: int, images: int, budget: str, root: Path) -> dict:
    work = root / arch
    work.mkdir(parents=True, exist_ok=True)
    record = {"arch": arch, "size": size, "images": images, "budget": budget, "stages": {}}
    steps = [("build", make_inputs(arch, size, images, work))] + stages(work, budget)
    for name, argv in steps:
        result = run_stage(argv, work / f"{name.replace(' ', '_')}.log")
        record["stages"][name] = result
        print(f"{arch:<20} {name:<22} {result['wall_s']:>8.1f} s {result['peak_rss_mb']:>7} MB  rc={result['rc']}",
              flush=True)
        if result["rc"] != 0:
            record["failed"] = name
            break
    record.update(summary(work))
    return record


def markdown(records: list[dict], command: str) -> str:
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    names = [name for name in records[0]["stages"]] if records else []
    lines = ["# Real architectures end to end (bench/real_architectures.py)\n",
             f"Command: `{command}`. Machine: {machine}, TF_ENABLE_ONEDNN_OPTS="
             f"{os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')}. Each stage is one CLI call in its own process: "
             f"wall seconds / peak RSS MB of that process. Random weights (nothing downloaded), random inputs.\n",
             "| arch | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for r in records:
        cells = [f"{r['stages'][n]['wall_s']:.0f} s / {r['stages'][n]['peak_rss_mb']} MB"
                 + ("" if r["stages"][n]["rc"] == 0 else " FAILED") if n in r["stages"] else "-" for n in names]
        lines.append(f"| {r['arch']} | " + " | ".join(cells) + " |")
    lines += ["", "| arch | candidates | factorized | params kept | FLOPs kept | fp32 max diff / max ref | "
              "onnx max diff | int8 top-1 agreement | speedup fp32 (95% CI) |", "|---|" + "---|" * 8]
    for r in records:
        def parity(name):
            audit = r.get(name) or {}
            if audit.get("max_abs_diff") is None:
                return "-"
            return f"{audit['max_abs_diff']:.1e} / {audit['max_abs_reference']:.1e}"
        speed = r.get("speedup") or {}
        speedup = f"{speed['speedup']:.2f}x" if speed.get("speedup") else "-"
        if speed.get("ci_low") is not None:
            speedup += f" ({speed['ci_low']:.2f}-{speed['ci_high']:.2f})"
        agreement = (r.get("int8.tflite") or {}).get("top1_agreement")
        lines.append(f"| {r['arch']} | {r.get('candidates', '-')} | {r.get('factorized', '-')} | "
                     f"{r.get('params_kept', '-')} | {r.get('flops_kept', '-')} | {parity('fp32.tflite')} | "
                     f"{parity('model.onnx')} | {agreement if agreement is not None else '-'} | {speedup} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    from edgecompress.zoo.applications import APPLICATIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default=",".join(APPLICATIONS))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--budget", default="params=0.5")
    parser.add_argument("--work", default="/tmp/edgecompress-real-architectures")
    parser.add_argument("--out", default=str(RESULTS / "real_architectures"))
    args = parser.parse_args()
    command = "python bench/real_architectures.py " + " ".join(sys.argv[1:])
    records = []
    for arch in args.archs.split(","):  # results are rewritten after every architecture: a long run keeps its rows
        records.append(measure(arch, args.size, args.images, args.budget, Path(args.work)))
        Path(args.out + ".md").write_text(markdown(records, command))
        Path(args.out + ".json").write_text(json.dumps(records, indent=2, default=str))
    print(markdown(records, command))


if __name__ == "__main__":
    main()
