"""Data-aware vs plain decomposition, independent vs sequential capture, before any fine-tuning: top-1 drop on
the test set per zoo model, selection and params budget.

Four modes: plain/independent fits each block to the layer's weights; data-aware/independent whitens the
kernel's input channels by the calibration inputs' second moment, then refits the last factor and bias by least
squares on the captured patches; */sequential refits each final block on the inputs the already compressed
layers before it produce (plain/sequential: refit only there, no whitening). Per model and decomposition one
capture and similarity search serve every row: hybrid, each single method (the search restricted to it) and
the VBMF / energy / uniform baselines, each at every params fraction of the layers it applies to. Each plan is
built with its final factors and scored on the test set. No fine-tuning anywhere.

Run (about 30 min on 2 cores):
    python bench/data_aware.py [--models lenet5,vgg,resnet20,mobilenet,conv1d,conv3d]
        [--fractions 0.5,0.3,0.2,0.1] [--test 2000] [--out bench/results/data_aware]
        [--modes plain/independent,...,data-aware/sequential+reconstruct] [--selections hybrid,ttm,...]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import compress_table  # noqa: E402  (bench/ is on sys.path when this script runs)

from edgecompress.compress import CompressConfig, CompressionRun  # noqa: E402
from edgecompress.errors import BudgetError  # noqa: E402
from edgecompress.finetune import top1_pct  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("plain/independent", "data-aware/independent", "plain/sequential", "data-aware/sequential")
RECONSTRUCT_STEPS = 300  # a mode ending in "+reconstruct" adds local reconstruction (select/reconstruct.py)
SELECTIONS = ("hybrid", *compress_table.METHODS, *compress_table.BASELINES)


def mode_rows(name: str, mode: str, model, calibration, test, original: float, fractions,
              selections=SELECTIONS) -> list[dict]:
    """Every (selection, fraction) row of one model under one decomposition."""
    started = time.perf_counter()
    decompose, capture = mode.split("+")[0].split("/")
    steps = RECONSTRUCT_STEPS if mode.endswith("+reconstruct") else 0
    config = CompressConfig(decompose=decompose, capture=capture, reconstruct_steps=steps)
    run = CompressionRun(model, *calibration, config, None)
    selector = run.make_selector()
    print(f"{name} {mode}: capture and search {time.perf_counter() - started:.0f} s", flush=True)
    rows = []
    for fraction in fractions:
        for label, chooser, limit, fixed in compress_table.selections(run, selector, fraction, selections):
            try:
                choices = chooser.choose("params", limit, fixed)
            except BudgetError:
                rows.append(dict(model=name, mode=mode, selection=label, fraction=fraction, drop=None))
                continue
            compressed, _ = run.build(chooser, choices)
            kept = sum(p.params for p in choices.values()) + fixed
            rows.append(dict(model=name, mode=mode, selection=label, fraction=fraction,
                             kept=kept / run.total("params"), drop=original - top1_pct(compressed, *test),
                             search_s=run.stats.get("search_s")))
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}),
                  flush=True)
    return rows


def paired(rows: list[dict]) -> list[dict]:
    """One row per (model, selection, fraction) with the drop of every mode side by side."""
    by_key: dict[tuple, dict] = {}
    for row in rows:
        key = (row["model"], row["selection"], row["fraction"])
        by_key.setdefault(key, dict(model=key[0], selection=key[1], fraction=key[2]))[row["mode"]] = row["drop"]
    return list(by_key.values())


def markdown(result: dict) -> str:
    modes = result["modes"]
    lines = ["# Data-aware vs plain decomposition, no fine-tuning (bench/data_aware.py)", "",
             f"Command: `{result['command']}`  ", f"Date: {result['date']}  ",
             f"Machine: {result['machine']}; test images per model: {result['test']}; calibration: 512 training "
             f"images.", "",
             "Top-1 drop in points against the original on the test set (lower is better), at each params "
             "fraction of the layers the selection applies to.", "",
             "| model | selection | params fraction | " + " | ".join(modes) + " |",
             "|---|---|---:|" + "---:|" * len(modes)]
    for row in result["paired"]:
        lines.append(f"| {row['model']} | {row['selection']} | {row['fraction']:g} | "
                     + " | ".join(_fmt(row.get(mode)) for mode in modes) + " |")
    lines += ["", f"## Summary: each mode against {modes[0]}", "",
              "| selection | mode | rows | better (>0.1 pt) | equal | worse | mean gain (pt) |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for (selection, mode), stats in result["summary"].items():
        lines.append(f"| {selection} | {mode} | {stats['rows']} | {stats['better']} | {stats['equal']} | "
                     f"{stats['worse']} | {stats['mean_gain']:+.2f} |")
    return "\n".join(lines) + "\n"


def summary(rows: list[dict], modes, selections) -> dict:
    """{(selection, mode): counts of rows where the mode loses less / as much / more than the first mode}."""
    result = {}
    for selection in selections:
        for mode in modes[1:]:
            gains = [r[modes[0]] - r[mode] for r in rows if r["selection"] == selection
                     and r.get(modes[0]) is not None and r.get(mode) is not None]
            if gains:
                result[(selection, mode)] = dict(rows=len(gains), better=sum(g > 0.1 for g in gains),
                                                 equal=sum(abs(g) <= 0.1 for g in gains),
                                                 worse=sum(g < -0.1 for g in gains), mean_gain=sum(gains) / len(gains))
    return result


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet5,vgg,resnet20,mobilenet,conv1d,conv3d")
    parser.add_argument("--fractions", default="0.5,0.3,0.2,0.1")
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--modes", default=",".join(MODES),
                        help=f"decompose/capture, optionally +reconstruct ({RECONSTRUCT_STEPS} steps per block); "
                             "the first is the one the others are compared with")
    parser.add_argument("--selections", default=",".join(SELECTIONS))
    parser.add_argument("--out", default=str(RESULTS / "data_aware"))
    args = parser.parse_args()
    modes, selections = args.modes.split(","), args.selections.split(",")
    fractions = [float(f) for f in args.fractions.split(",")]
    rows = []
    for name in args.models.split(","):
        model, calibration, _, test = compress_table.load(name, 0, args.test)
        original = top1_pct(model, *test)
        for mode in modes:
            rows += mode_rows(name, mode, model, calibration, test, original, fractions, selections)
    pairs = paired(rows)
    result = dict(command="python " + " ".join(sys.argv), date=datetime.date.today().isoformat(),
                  machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", test=args.test,
                  modes=modes, rows=rows, paired=pairs, summary=summary(pairs, modes, selections))
    result_json = {**result, "summary": [{"selection": s, "mode": m, **v} for (s, m), v in result["summary"].items()]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result_json, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
