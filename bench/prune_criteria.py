"""Which pruning criterion, and does the least-squares refit pay? Top-1 with no fine-tuning after filter pruning
each zoo model to a params fraction of its Conv/Dense layers, for every criterion with and without the refit.

Run (about 3 min on 2 cores):
    python bench/prune_criteria.py [--models resnet20,vgg,lenet5,edgecnn] [--fractions 0.8,0.6] [--test 2000]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edgecompress import data, models  # noqa: E402
from edgecompress.finetune import top1_pct  # noqa: E402
from edgecompress.graph.batchnorm import fold_batchnorm  # noqa: E402
from edgecompress.graph.rebuild import normalize  # noqa: E402
from edgecompress.prune import CRITERIA, Pruner  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CALIBRATION_IMAGES = 512


def rows_for(name: str, dataset, fractions: list[float]) -> list[dict]:
    model = fold_batchnorm(normalize(models.load(f"zoo:{name}")))[0]
    x_test, y_test = dataset.x_test, dataset.y_test
    original_pct = top1_pct(model, x_test, y_test)
    rows = []
    for criterion in CRITERIA:
        for refit in (False, True):
            pruner = Pruner(model, criterion, dataset.x_train[:CALIBRATION_IMAGES], refit=refit)
            for fraction in fractions:
                started = time.perf_counter()
                pruned = pruner.by_fraction("params", fraction)
                rows.append({"model": name, "criterion": criterion, "refit": refit, "params": fraction,
                             "top1_original": original_pct, "top1": top1_pct(pruned.model, x_test, y_test),
                             "seconds": time.perf_counter() - started})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(rows: list[dict], command: str, source: str) -> str:
    fractions = sorted({r["params"] for r in rows}, reverse=True)
    lines = ["# Filter-pruning criteria, no fine-tuning (bench/prune_criteria.py)", "",
             f"Top-1 (%) on {source} Fashion-MNIST test images after pruning the Conv/Dense layers to the params "
             f"fraction shown (calibration: {CALIBRATION_IMAGES} training images; BatchNorm folded first; no "
             f"fine-tuning). `refit`: the layers reading pruned channels refitted by least squares.", "",
             "| model | original | criterion | refit | " + " | ".join(f"params={f:g}" for f in fractions) + " |",
             "|---|---|---|---|" + "---|" * len(fractions)]
    for key in dict.fromkeys((r["model"], r["criterion"], r["refit"]) for r in rows):
        mine = {r["params"]: r for r in rows if (r["model"], r["criterion"], r["refit"]) == key}
        first = next(iter(mine.values()))
        lines.append(f"| {key[0]} | {first['top1_original']:.1f} | {key[1]} | {'yes' if key[2] else 'no'} | "
                     + " | ".join(f"{mine[f]['top1']:.1f}" for f in fractions) + " |")
    lines += ["", f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20,vgg,lenet5,edgecnn")
    parser.add_argument("--fractions", type=lambda t: [float(v) for v in t.split(",")], default=[0.8, 0.6])
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=RESULTS / "prune_criteria")
    args = parser.parse_args()
    dataset = data.load_fashion_mnist(train_limit=CALIBRATION_IMAGES, test_limit=args.test)
    rows = [row for name in args.models.split(",") for row in rows_for(name, dataset, args.fractions)]
    command = (f"python bench/prune_criteria.py --models {args.models} "
               f"--fractions {','.join(f'{f:g}' for f in args.fractions)} --test {args.test}")
    text = markdown(rows, command, f"{args.test} {dataset.source}")
    print(text)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
