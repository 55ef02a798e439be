"""Fine-tuning on one worker vs two MultiWorkerMirroredStrategy workers on 127.0.0.1 (issue 16).

A zoo model is compressed once (no fine-tune), then fine-tuned from the same weights, same data and same
global batch and peak learning rate: one process (`--distribute none`, Keras fit), and two processes whose
TF_CONFIG names two loopback ports (per-replica batch halved, so the global batch and rate are the same).
Prints top-1 on the test split and seconds per epoch side by side; writes bench/results/multiworker.md.

Goal: two workers reach the one-worker top-1 within 0.3 pt. Both workers share this machine's cores, so the
time per epoch says what the collective costs, not what two machines would gain.
Run: python bench/multiworker.py [--model lenet5 --train 10000 --epochs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "multiworker.md"

# One fine-tune in a fresh process: the multi-worker strategy must exist before TensorFlow runs anything.
WORKER = """
import json, sys, time
model_path, train, test, epochs, batch, rate, strategy = sys.argv[1:8]
from edgecompress import distribute
if strategy == "multiworker":
    distribute.strategy_for("multiworker", timeout_s=120)
import keras
from edgecompress import data, models
from edgecompress.finetune import FinetuneConfig, finetune, top1_pct
view = data.load_fashion_mnist(source="auto", train_limit=int(train), test_limit=int(test))
model = models.load(model_path)
before = top1_pct(model, view.x_test, view.y_test)
started = time.perf_counter()
result = finetune(model, view.x_train, view.y_train, FinetuneConfig(
    epochs=int(epochs), batch_size=int(batch), learning_rate=float(rate), distribute=strategy, patience=99))
seconds = time.perf_counter() - started
print("RESULT " + json.dumps(dict(top1=top1_pct(model, view.x_test, view.y_test), seconds=seconds,
                                  top1_before=before, source=view.source, history=result.history,
                                  epochs=result.epochs_run, replicas=result.replicas,
                                  global_batch=result.global_batch_size, rate=result.learning_rate)))
"""


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def environment(**extra) -> dict:
    env = {name: value for name, value in os.environ.items() if name != "TF_CONFIG"}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def compress_once(model: str, budget: str, out: Path) -> Path:
    from edgecompress import data

    view = data.load_fashion_mnist(source="auto", train_limit=512, test_limit=1)
    calibration = out / "calibration.npz"
    import numpy as np

    np.savez(calibration, x=view.x_train, y=view.y_train)
    argv = [sys.executable, "-m", "edgecompress.cli", "compress", f"zoo:{model}", "--data", str(calibration),
            "--budget", budget, "--no-latency-guard", "-o", str(out / "compressed")]
    subprocess.run(argv, check=True, env=environment())
    return out / "compressed" / "model.keras"


def run_workers(args, model_path: Path, strategy: str, workers: int) -> list[dict]:
    per_replica_batch = args.batch // workers
    rate = args.rate / workers  # finetune scales the peak rate by the replicas: the same peak as one worker
    ports = free_ports(workers)
    processes = []
    for index in range(workers):
        extra = {}
        if strategy == "multiworker":
            extra["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                             "task": {"type": "worker", "index": index}})
        argv = [sys.executable, "-c", WORKER, str(model_path), str(args.train), str(args.test), str(args.epochs),
                str(per_replica_batch), str(rate), strategy]
        processes.append(subprocess.Popen(argv, env=environment(**extra), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=3600)
        lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
        if not lines:
            sys.exit(f"{strategy} worker failed:\n{stderr[-3000:]}")
        results.append(json.loads(lines[-1][len("RESULT "):]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--budget", default="params=0.1", help="compress's budget, no fine-tune (default params=0.1)")
    parser.add_argument("--batch", type=int, default=64, help="global batch")
    parser.add_argument("--rate", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model_path = compress_once(args.model, args.budget, Path(scratch))
        started = time.perf_counter()
        one = run_workers(args, model_path, "none", 1)
        print(f"one worker: {one[0]} ({time.perf_counter() - started:.0f} s)", flush=True)
        two = run_workers(args, model_path, "multiworker", 2)
        print(f"two workers: {two}", flush=True)
    rows = [("1 worker (none, Keras fit)", one[0]), ("2 workers (multiworker, loopback)", two[0])]
    lines = [f"# Multi-worker fine-tuning: {args.model}, {args.train} training / {args.test} test images, "
             f"{args.epochs} epochs, compressed to {args.budget}, "
             f"global batch {args.batch}, peak rate {args.rate:g}",
             "", f"Host: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (both workers share "
             "them). Command: `python bench/multiworker.py " + " ".join(sys.argv[1:]) + "`", "",
             "| run | replicas | global batch | top-1 % before | top-1 % after | s / epoch |",
             "|---|---|---|---|---|---|"]
    for label, result in rows:
        lines.append(f"| {label} | {result['replicas']} | {result['global_batch']} | {result['top1_before']:.2f} | "
                     f"{result['top1']:.2f} | "
                     f"{result['seconds'] / max(result['epochs'], 1):.1f} |")
    gap = abs(two[0]["top1"] - one[0]["top1"])
    same = all(abs(other["top1"] - two[0]["top1"]) < 1e-9 for other in two)
    lines += ["", f"Data: Fashion-MNIST ({one[0]['source']}). Top-1 gap: {gap:.2f} pt (goal <= 0.3). Both workers "
              f"report the same top-1: {same}.", "", "Training loss per epoch: one worker "
              + ", ".join(f"{v:.4f}" for v in one[0]["history"]["loss"]) + "; two workers "
              + ", ".join(f"{v:.4f}" for v in two[0]["history"]["loss"]) + "."]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
