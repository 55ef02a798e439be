"""Which similarity metric predicts accuracy? Random per-layer (method, rank) configurations of two zoo models:
each configuration's layer similarities (every metric) against its top-1 after one-shot fine-tuning; Spearman
correlation per metric and aggregation. Prints a Markdown table and saves it under bench/results/.

Run: python bench/similarity_vs_accuracy.py [--models lenet5,vgg --configs 16 --train 10000 --epochs 1]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from edgecompress import data, zoo  # noqa: E402
from edgecompress.compress import CompressConfig, CompressionRun  # noqa: E402
from edgecompress.factorize import get  # noqa: E402
from edgecompress.finetune import FinetuneConfig, finetune, top1_pct  # noqa: E402
from edgecompress.graph.rebuild import rebuild  # noqa: E402
from edgecompress.select.capture import capture  # noqa: E402
from edgecompress.select.score import apply_activation, effective_kernel  # noqa: E402
from edgecompress.select.selectors import make_scorers  # noqa: E402
from edgecompress.select.similarity import metrics  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
AGGREGATES = {"mean": lambda s: float(np.mean(s)), "sum_log": lambda s: float(np.sum(np.log(np.clip(s, 1e-3, 1))))}
KEEP_PROBABILITY = 0.25


def all_metrics(scorer, method: str, rank) -> dict[str, float]:
    """Every metric's similarity of one candidate (search factors), from one block output."""
    factors = scorer.cache.search(method, rank)
    weights, bias = effective_kernel(method, scorer.patch_info, factors)
    predicted = apply_activation(scorer.samples.activation, scorer.samples.patches @ weights + bias)
    return {name: float(metric(scorer.samples.outputs, predicted)) for name, metric in metrics().items()}


def random_configuration(run, rng) -> dict[str, tuple[str, tuple]]:
    """Per searchable layer: kept (KEEP_PROBABILITY) or a random method at a uniformly drawn candidate rank."""
    choices = {}
    for name, task in run.tasks.items():
        if not task.searched or rng.random() < KEEP_PROBABILITY:
            continue
        method = task.methods[rng.integers(len(task.methods))]
        ranks = get(method).ranks(task.info)
        choices[name] = (method, ranks[int(rng.integers(len(ranks)))])
    return choices


def evaluate_model(name: str, configs: int, train: int, epochs: int, seed: int) -> list[dict]:
    model = zoo.pretrained(name)
    ds = data.load_fashion_mnist(view=zoo.dataset_for(name), train_limit=train, test_limit=2000)
    x_calib = ds.x_train[-512:]
    run = CompressionRun(model, x_calib, None, CompressConfig(samples_per_layer=2048), None)
    samples = capture(run.folded, x_calib, [t.info for t in run.tasks.values() if t.searched])
    scorers = make_scorers(run.folded, {n: t for n, t in run.tasks.items() if t.searched}, samples,
                           next(iter(metrics().values())), 12)
    original = top1_pct(model, ds.x_test, ds.y_test)
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(configs):
        started = time.perf_counter()
        choices = random_configuration(run, rng)
        similarity = {n: all_metrics(scorers[n], m, r) for n, (m, r) in choices.items()}
        kept = [n for n, t in run.tasks.items() if t.searched and n not in choices]
        substitutes = {n: get(m).build(run.tasks[n].info, scorers[n].cache.search(m, r)) for n, (m, r) in choices.items()}
        compressed = rebuild(run.folded, substitutes)
        before = top1_pct(compressed, ds.x_test, ds.y_test)
        finetune(compressed, ds.x_train, ds.y_train, FinetuneConfig(epochs=epochs, seed=seed))
        after = top1_pct(compressed, ds.x_test, ds.y_test)
        row = {"model": name, "config": index, "original": original, "compressed": before, "finetuned": after,
               "layers": {n: [m, list(r)] for n, (m, r) in choices.items()}}
        for metric in metrics():
            values = [similarity[n][metric] for n in choices] + [1.0] * len(kept)
            for aggregate, reduce in AGGREGATES.items():
                row[f"{metric}:{aggregate}"] = reduce(values)
        rows.append(row)
        print(f"{name} #{index}: top-1 {before:.1f} -> {after:.1f} ({time.perf_counter() - started:.0f}s)", flush=True)
    return rows


def correlations(rows: list[dict]) -> list[dict]:
    """Spearman rho of each metric:aggregate vs accuracy drop after (and before) fine-tuning, per model and pooled."""
    keys = [k for k in rows[0] if ":" in k]
    groups = {"pooled": rows, **{m: [r for r in rows if r["model"] == m] for m in sorted({r["model"] for r in rows})}}
    table = []
    for key in keys:
        entry = {"score": key}
        for group, members in groups.items():
            score = [r[key] for r in members]
            entry[f"{group} (fine-tuned)"] = spearmanr(score, [r["finetuned"] - r["original"] for r in members])[0]
            entry[f"{group} (compressed)"] = spearmanr(score, [r["compressed"] - r["original"] for r in members])[0]
        table.append(entry)
    return sorted(table, key=lambda e: -e["pooled (fine-tuned)"])


def markdown(table: list[dict], rows: list[dict], args) -> str:
    columns = list(table[0])
    lines = ["# Similarity metric vs accuracy (bench/similarity_vs_accuracy.py)", "",
             f"{len(rows)} random configurations ({args.configs} per model: {args.models}); each layer kept with "
             f"probability {KEEP_PROBABILITY} or given a random applicable method at a uniformly drawn candidate "
             f"rank; fine-tuned {args.epochs} epoch(s) on {args.train} training images; top-1 on 2000 test images. "
             f"Spearman rho between the configuration's score (metric:aggregate over its layers, kept layers = 1) "
             f"and its top-1 change from the original; higher is better.", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for entry in table:
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in entry.values()) + " |")
    best = table[0]["score"]
    lines += ["", f"Best by pooled rho after fine-tuning: **{best}**.", "",
              f"Command: `python bench/similarity_vs_accuracy.py --models {args.models} --configs {args.configs} "
              f"--train {args.train} --epochs {args.epochs} --seed {args.seed}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet5,vgg")
    parser.add_argument("--configs", type=int, default=16, help="random configurations per model")
    parser.add_argument("--train", type=int, default=10000, help="training images for fine-tuning")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = [row for name in args.models.split(",") for row in
            evaluate_model(name, args.configs, args.train, args.epochs, args.seed)]
    text = markdown(correlations(rows), rows, args)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "similarity_vs_accuracy.md").write_text(text)
    (RESULTS / "similarity_vs_accuracy.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
