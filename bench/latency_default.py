"""Default settings on every shipped zoo model: is the compressed model faster on the host, never slower?

Per model: compress as `edgecompress compress` does by default (similarity, data-aware, sequential capture, no
budget: similarity >= 0.95 per layer) once with the latency guard on the host (the default) and once with
--no-latency-guard; no fine-tuning. Each model is exported to fp32 .tflite (as `edgecompress export`) and the
original and both compressed files are timed interleaved on host LiteRT, 1 thread; speedups are paired with 95% CIs.
Also latency budgets (default 0.5 and 0.7 on ResNet-20; --budget-models for more): the whole compressed model's
latency on the host as compress measured it in context (plan.json) and as this script times the exported files,
against the one asked; an unreachable budget is listed with the tool's own message.

    python bench/latency_default.py [--models lenet5,vgg] [--quick] [--out bench/results/latency_default]
    python bench/latency_default.py --models '' --budget-models resnet20,vgg,edgecnn \
        --latency-budgets latency=0.3@host,latency=0.5@host,latency=0.7@host --out bench/results/latency_budget
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from edgecompress import data, zoo  # noqa: E402
from edgecompress.bench import CostTable, run  # noqa: E402
from edgecompress.bench.settings import BenchSettings  # noqa: E402
from edgecompress.compress import CompressConfig, compress  # noqa: E402
from edgecompress.errors import BudgetError  # noqa: E402
from edgecompress.finetune import top1_pct  # noqa: E402
from edgecompress.lower import export  # noqa: E402

CALIBRATION_IMAGES = 512
TEST_IMAGES = 2000
SETTINGS = BenchSettings(threads=1, min_secs=2.0, max_secs=8.0, segments=3)
QUICK_SETTINGS = BenchSettings(threads=1, min_secs=0.3, max_secs=2.0, segments=1)
VARIANTS = {"guarded": dict(latency_guard="host"), "unguarded": dict(latency_guard=None)}


def compressed_variants(name: str, x, budget: str | None, variants: dict) -> dict:
    model = zoo.pretrained(name)
    results = {}
    for variant, options in variants.items():
        started = time.perf_counter()
        config = CompressConfig(budget=budget, cost_table=CostTable, **options)
        results[variant] = (compress(model, x, config), time.perf_counter() - started)
    return model, results


def measure_model(name: str, budget: str | None, variants: dict, settings: BenchSettings, scratch: Path) -> dict:
    dataset = data.load_fashion_mnist(view=zoo.dataset_for(name), train_limit=CALIBRATION_IMAGES,
                                      test_limit=TEST_IMAGES)
    x_test, y_test = dataset.x_test, dataset.y_test
    model, results = compressed_variants(name, dataset.x_train[:CALIBRATION_IMAGES], budget, variants)
    files = [export(model, scratch / f"{name}_original.tflite", data=dataset.x_train[:64]).path]
    for variant, (compressed, _) in results.items():
        files.append(export(compressed.model, scratch / f"{name}_{variant}.tflite", data=dataset.x_train[:64]).path)
    np.savez(scratch / "test.npz", x=x_test[:256], y=y_test[:256])
    timed = run(files, target="host", settings=settings)
    original_top1 = top1_pct(model, x_test, y_test)
    rows = []
    for index, (variant, (compressed, seconds)) in enumerate(results.items(), start=1):
        comparison = next(c for c in timed.comparisons if c and c["candidate"] == index and c["baseline"] == 0)
        totals = compressed.plan.totals()
        plan_budget = compressed.plan.budget
        rows.append({
            "model": name, "variant": variant, "budget": budget or "none (similarity >= 0.95)",
            "factorized": sum(1 for layer in compressed.plan.layers if layer.method),
            "layers": len(compressed.plan.layers),
            "params_x": round((totals["conv"]["params_before"] + totals["dense"]["params_before"])
                              / max(1, totals["conv"]["params_after"] + totals["dense"]["params_after"]), 2),
            "flops_x": round(totals["flops_before"] / max(1, totals["flops_after"]), 2),
            "drop_pt": round(original_top1 - top1_pct(compressed.model, x_test, y_test), 2),
            "original_ms": timed.models[0]["latency_ms"]["p50"],
            "compressed_ms": timed.models[index]["latency_ms"]["p50"],
            "speedup": comparison["speedup"], "ci95": comparison.get("ci95"),
            "rank_multiple": plan_budget.get("rank_multiple"), "compress_s": round(seconds, 1),
            "asked_latency": plan_budget.get("value") if plan_budget.get("kind") == "latency" else None,
            "compress_measured": plan_budget.get("achieved", {}).get("latency"),
            "measured_as": plan_budget.get("latency_measured_as"),
            "table_fraction": plan_budget.get("latency_table_fraction"),
            "plans_timed": plan_budget.get("latency_plans_timed")})
    return rows


def markdown(rows: list[dict], command: str) -> str:
    lines = ["# Default settings: host speedup per zoo model (bench/latency_default.py)", "",
             f"Command: `{command}`  ", f"Date: {time.strftime('%Y-%m-%d %H:%M')}  ",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared: small "
             "differences are noise); fp32 .tflite on host LiteRT, 1 thread, original and compressed interleaved; "
             "speedup = paired p50 ratio with its 95% CI. No fine-tuning (drop = top-1 points on "
             f"{TEST_IMAGES} test images). `guarded` = the CLI default (`--latency-guard host`), `unguarded` = "
             "`--no-latency-guard`.", "",
             "| model | variant | budget | factorized | params cut | FLOPs cut | drop (pt) | ms orig -> comp | "
             "speedup (95% CI) | tile | compress s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = f" ({r['ci95'][0]:.2f}-{r['ci95'][1]:.2f})" if r.get("ci95") else ""
        lines.append(f"| {r['model']} | {r['variant']} | {r['budget']} | {r['factorized']}/{r['layers']} | "
                     f"{r['params_x']}x | {r['flops_x']}x | {r['drop_pt']} | {r['original_ms']:.3f} -> "
                     f"{r['compressed_ms']:.3f} | {r['speedup']:.2f}x{ci} | {r['rank_multiple']} | {r['compress_s']} |")
    latency = [r for r in rows if r["asked_latency"]]
    if latency:
        lines += ["", "Latency budgets, asked vs measured. `compress` = what compress measured and recorded in "
                  "plan.json (`latency_measured_as`); `bench` = this script's own timing of the exported files "
                  "(longer, interleaved): its measured fraction is 1 / speedup. Goal: within 10% of asked.", "",
                  "| model | asked | table fraction searched | plans timed | compress | bench (95% CI) | "
                  "within 10% |", "|---|---|---|---|---|---|---|"]
        for r in latency:
            measured, (low, high) = 1 / r["speedup"], (r.get("ci95") or (r["speedup"], r["speedup"]))
            table = f"{r['table_fraction']:.3f}" if r.get("table_fraction") is not None else "-"
            lines.append(f"| {r['model']} | {r['asked_latency']:g} | {table} | {r.get('plans_timed') or '-'} | "
                         f"{r['compress_measured']:.3f} ({r.get('measured_as')}) | {measured:.3f} "
                         f"({1 / high:.3f}-{1 / low:.3f}) | "
                         f"{'yes' if abs(measured - r['asked_latency']) <= 0.1 * r['asked_latency'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(zoo.shipped()))
    parser.add_argument("--quick", action="store_true", help="short timings (a smoke run, not a measurement)")
    parser.add_argument("--latency-budgets", default="latency=0.5@host,latency=0.7@host",
                        help="latency budgets to run on ResNet-20, comma-separated")
    parser.add_argument("--no-latency-budget", action="store_true", help="skip the ResNet-20 latency budgets")
    parser.add_argument("--budget-models", default="resnet20", help="models the latency budgets run on")
    parser.add_argument("--out", type=Path, default=Path("bench/results/latency_default"))
    args = parser.parse_args(argv)
    settings = QUICK_SETTINGS if args.quick else SETTINGS
    rows, unreachable = [], []
    with tempfile.TemporaryDirectory(prefix="latency-default-") as scratch:
        for name in filter(None, args.models.split(",")):
            print(f"[{time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)
            rows += measure_model(name, None, VARIANTS, settings, Path(scratch))
        budget_runs = [] if args.no_latency_budget else [
            (name, budget) for name in filter(None, args.budget_models.split(","))
            for budget in args.latency_budgets.split(",")]
        for name, budget in budget_runs:
            print(f"[{time.strftime('%H:%M:%S')}] {name} {budget}", file=sys.stderr, flush=True)
            try:
                rows += measure_model(name, budget, {"latency-budget": {}}, settings, Path(scratch))
            except BudgetError as error:
                unreachable.append(f"{name}: {error}")
    command = "python bench/latency_default.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(rows, command.strip()) + "".join(f"\nUnreachable: {line}\n" for line in unreachable)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
