"""Does the search pay for scoring refitted blocks (issue 12, Deliver 4)? No fine-tuning: top-1 drop on the test
set per zoo model, selection and params fraction, with the DSE scoring each candidate as decomposed ("bare") or
after the least-squares refit of its output factor that the deployed block gets ("refit"), both data-aware with
sequential capture; and the search time of each.

Run (about 15 min on 2 cores):
    python bench/search_refit.py [--models lenet5,vgg,resnet20,mobilenet] [--fractions 0.5,0.3,0.2]
        [--selections hybrid,tucker,cp,svd] [--out bench/results/search_refit]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import compress_table  # noqa: E402  (bench/ is on sys.path when this script runs)
import data_aware  # noqa: E402

from edgecompress.finetune import top1_pct  # noqa: E402
from edgecompress.select import score  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {"bare": False, "refit": True}


def markdown(result: dict) -> str:
    lines = ["# Search scoring bare vs refitted blocks, no fine-tuning (bench/search_refit.py)", "",
             f"Command: `{result['command']}`  ", f"Date: {result['date']}  ",
             f"Machine: {result['machine']}; test images per model: {result['test']}; calibration: 512 training "
             "images; data-aware decomposition, sequential capture.", "",
             "Top-1 drop in points against the original (lower is better); search time per model in the last "
             "table.", "", "| model | selection | params fraction | bare | refit | gain (pt) |",
             "|---|---|---:|---:|---:|---:|"]
    gains = []
    for row in result["paired"]:
        bare, refit = row.get("bare"), row.get("refit")
        gain = None if bare is None or refit is None else bare - refit
        gains += [] if gain is None else [gain]
        lines.append(f"| {row['model']} | {row['selection']} | {row['fraction']:g} | {data_aware._fmt(bare)} | "
                     f"{data_aware._fmt(refit)} | {data_aware._fmt(gain)} |")
    if gains:
        lines += ["", f"Rows: {len(gains)}; refit better (> 0.1 pt) {sum(g > 0.1 for g in gains)}, equal "
                  f"{sum(abs(g) <= 0.1 for g in gains)}, worse {sum(g < -0.1 for g in gains)}; mean gain "
                  f"{sum(gains) / len(gains):+.2f} pt."]
    lines += ["", "| model | search s, bare | search s, refit |", "|---|---:|---:|"]
    for model, times in result["search_s"].items():
        lines.append(f"| {model} | {times.get('bare', 0):.1f} | {times.get('refit', 0):.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet5,vgg,resnet20,mobilenet")
    parser.add_argument("--fractions", default="0.5,0.3,0.2")
    parser.add_argument("--selections", default="hybrid,tucker,cp,svd")
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--out", default=str(RESULTS / "search_refit"))
    args = parser.parse_args()
    fractions, selections = [float(f) for f in args.fractions.split(",")], args.selections.split(",")
    rows, search_s = [], {}
    for name in args.models.split(","):
        model, calibration, _, test = compress_table.load(name, 0, args.test)
        original = top1_pct(model, *test)
        for variant, refit in VARIANTS.items():
            score.SEARCH_REFIT = refit
            found = data_aware.mode_rows(name, "data-aware/sequential", model, calibration, test, original,
                                         fractions, selections)
            rows += [{**row, "mode": variant} for row in found]
            search_s.setdefault(name, {})[variant] = next((r["search_s"] for r in found if "search_s" in r), 0.0)
    result = dict(command="python " + " ".join(sys.argv), date=datetime.date.today().isoformat(),
                  machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", test=args.test,
                  rows=rows, paired=data_aware.paired(rows), search_s=search_s)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
