"""Paper-style table: how far each selection compresses each zoo model within 1.0 top-1 point after one-shot
fine-tuning, and what that buys on the host (LiteRT latency, .tflite size); per-method averages beside the
seed paper's (Kokhazadeh et al., arXiv 2510.00062, Table "average parameter reduction", <1.5% accuracy loss).

For every zoo model and every selection (six single methods, hybrid, VBMF / energy / uniform baselines) the
params budget walks down a ladder (default 0.5, 0.3, 0.15, 0.08 of the layers the selection applies to);
each rung is compressed, fine-tuned once and scored on the test set, and the walk stops at the first rung that
loses more than 1.0 point. The deepest rung within 1.0 point is the row; its fine-tuned model is lowered to a
fp32 .tflite and timed against the original's, interleaved in one process on LiteRT (XNNPACK, 1 thread).
When no rung is within 1.0 point the row shows the mildest rung, marked "over".

Run (about 75 min on 2 cores; full Fashion-MNIST from the Debian package when present, else the embedded subset):
    python bench/paper_table.py [--models lenet5,vgg] [--ladder 0.5,0.3,0.15,0.08] [--train 10000]
        [--test 2000] [--epochs 1] [--learning-rate auto] [--out bench/results/paper_table]
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import compress_table  # noqa: E402  (bench/ is on sys.path when this script runs)
import lowering_latency  # noqa: E402

from edgecompress import zoo  # noqa: E402
from edgecompress.compress import CompressConfig, CompressionRun, compress  # noqa: E402
from edgecompress.errors import BudgetError  # noqa: E402
from edgecompress.finetune import top1_pct  # noqa: E402
from edgecompress.lower import lower  # noqa: E402
from edgecompress.lower import tflite as tflite_export  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MAX_DROP = 1.0
CONV_METHODS, DENSE_METHODS = ("tucker", "cp", "tt"), ("svd", "qr", "ttm")
# Average parameter reduction (%) per method in the paper, over its 14 CNNs at < 1.5% accuracy loss.
PAPER = {"tucker": ("conv", 77.8), "cp": ("conv", 71.2), "tt": ("conv", 76.0), "svd": ("fc", 79.1),
         "qr": ("fc", 79.7), "ttm": ("fc", 81.0), "hybrid": ("both", (82.5, 92.7)), "hybrid-conv": ("conv", 82.5),
         "hybrid-fc": ("fc", 92.7)}
SELECTIONS = (*CONV_METHODS, *DENSE_METHODS, "hybrid", *compress_table.SCOPED_HYBRIDS, "vbmf", "energy", "uniform",
              "fbp", "fbp+hybrid")
CONV_ONLY, FC_ONLY = (*CONV_METHODS, "hybrid-conv"), (*DENSE_METHODS, "hybrid-fc")
PRUNING_ROWS = ("fbp", "fbp+hybrid")
TIMING = dict(segments=3, min_runs=100, min_secs=0.4, max_secs=2.0)
PACKAGES = ("edgecompress", "tensorflow", "tensorflow-cpu", "keras", "tensorly", "t3f", "numpy", "ai-edge-litert", "onnxruntime")


# ----------------------------------------------------------------------------------------------- one model
def tflite_bytes(model) -> bytes:
    lowered, _ = lower(model, "tflite")
    return tflite_export.convert(lowered)


def chooser_at(run, selector, label: str, fraction: float) -> tuple:
    """(chooser, limit, fixed cost) of one selection at one params fraction."""
    return next((c, lim, fix) for _, c, lim, fix in compress_table.selections(run, selector, fraction, [label]))


def pruning_row(run, label: str, fraction: float, train, test, original, args) -> tuple[dict, object]:
    """fbp: filter pruning to the params fraction; fbp+hybrid: prune args.prune of the channels, then the
    similarity DSE to the same fraction of the original. Then one-shot fine-tuning, as for every row."""
    row = {"model": run.original.name, "selection": label, "top1_original": original, "note": ""}
    budget = f"params={fraction:g}"
    config = (CompressConfig(select="fbp", budget=budget, prune_criterion=args.prune_criterion) if label == "fbp"
              else CompressConfig(prune=args.prune, budget=budget, prune_criterion=args.prune_criterion))
    try:
        compressed = compress(run.original, (run.x, run.y), config)
    except BudgetError as error:
        return {**row, "note": str(error)[:80]}, None
    if compressed.plan.budget.get("prune_asked") == "auto":
        row["note"] = f"auto: prune {compressed.plan.budget['prune']:g}"
    return compress_table.scored_row(row, compressed.model, compressed.plan, train, test, original, args), \
        compressed.model


def ladder_row(run, selector, label, train, test, original, args) -> tuple[dict, object]:
    """Walk the budget ladder for one selection: (deepest row within MAX_DROP or the mildest row, its model)."""
    best, mildest, previous_kept = None, None, None
    for fraction in args.ladder:
        if label in PRUNING_ROWS:
            row, model = pruning_row(run, label, fraction, train, test, original, args)
        else:
            chooser, limit, fixed = chooser_at(run, selector, label, fraction)
            row, model = compress_table.finetuned_row(run, label, chooser, limit, fixed, train, test, original,
                                                      args)
        row["budget"] = fraction
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        if mildest is None:
            mildest = (row, model)
        if row.get("drop") is None or row["drop"] > MAX_DROP:
            break
        best = (row, model)
        if row["kept"] == previous_kept:  # the selection ignores the budget (VBMF): deeper rungs repeat it
            break
        previous_kept = row["kept"]
    if best is not None:
        return best
    row, model = mildest
    row["note"] = (row["note"] + " over").strip() if row.get("drop") is not None else row["note"]
    return row, model


def model_rows(name: str, args) -> list[dict]:
    model, calibration, train, test = compress_table.load(name, args.train, args.test)
    started = time.perf_counter()
    config = CompressConfig(select="similarity", reconstruct_steps=args.reconstruct)
    run = CompressionRun(model, *calibration, config, None)
    selector = run.make_selector()
    print(f"{name}: similarity search {time.perf_counter() - started:.0f} s", flush=True)
    original = top1_pct(model, *test)
    base_tflite = tflite_bytes(model)
    rows = []
    for label in (s for s in SELECTIONS if s in args.selections):
        started = time.perf_counter()
        row, compressed = ladder_row(run, selector, label, train, test, original, args)
        row.update(model=name, selection=label, size_before=len(base_tflite))
        if compressed is not None:
            content = tflite_bytes(compressed)
            before_ms, after_ms = lowering_latency.time_interleaved([base_tflite, content], ".tflite", TIMING)
            row.update(size_after=len(content), latency_before_ms=before_ms, latency_after_ms=after_ms,
                       speedup=before_ms / after_ms)
            flops_cut = 1.0 / max(1e-9, 1.0 - row["flops_cut"] / 100.0)
            row["speedup_per_flops_cut"] = row["speedup"] / flops_cut
        row["seconds"] = time.perf_counter() - started
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


# ----------------------------------------------------------------------------------------------- formatting
ROW_HEADER = ("| model | selection | budget | conv cut % | FC cut % | params cut % | FLOPs cut % | top-1 orig | "
              "top-1 FT | Δtop-1 | LiteRT speedup | speedup ÷ FLOPs cut | .tflite KB | note |")


def fmt(value, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def format_row(row: dict) -> str:
    size = row.get("size_after")
    cells = [row["model"], row["selection"], fmt(row.get("budget"), "g"), fmt(row.get("conv_cut")),
             fmt(row.get("fc_cut")), fmt(None if row.get("kept") is None else 100 * (1 - row["kept"])),
             fmt(row.get("flops_cut")), fmt(row.get("top1_original")), fmt(row.get("top1_finetuned")),
             fmt(None if row.get("drop") is None else -row["drop"], "+.1f"), fmt(row.get("speedup"), ".2f"),
             fmt(row.get("speedup_per_flops_cut"), ".2f"), fmt(None if size is None else size / 1024, ".0f"),
             row.get("note", "")]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def within(row: dict) -> bool:
    return row.get("drop") is not None and row["drop"] <= MAX_DROP


def averages(rows: list[dict]) -> list[str]:
    """Per selection: mean conv / FC cut over the models where it stays within MAX_DROP, beside the paper."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    lines = ["", f"## Per-method averages (rows within {MAX_DROP} point; failures counted as 0 in brackets)", "",
             "| selection | models within 1 pt | conv cut % | FC cut % | FLOPs cut % | LiteRT speedup | "
             "paper (conv / FC) |", "|---|---|---|---|---|---|---|"]
    for selection in dict.fromkeys(r["selection"] for r in rows):
        mine = [r for r in rows if r["selection"] == selection]
        good = [r for r in mine if within(r)]
        lines.append(f"| {selection} | {len(good)}/{len(models)} | {_mean(good, mine, 'conv_cut')} | "
                     f"{_mean(good, mine, 'fc_cut')} | {_mean(good, mine, 'flops_cut')} | "
                     f"{_mean(good, good, 'speedup', '.2f', zero_failures=False)} | {_paper(selection)} |")
    return lines


def _applies(row: dict, key: str) -> bool:
    """A single conv method has no FC cut to average (and vice versa); count only the layers it applies to."""
    method = row["selection"]
    return not ((method in CONV_ONLY and key == "fc_cut") or (method in FC_ONLY and key == "conv_cut"))


def _mean(good, mine, key, spec=".1f", zero_failures=True) -> str:
    values = [r[key] for r in good if r.get(key) is not None and _applies(r, key)]
    if not values:
        return "-"
    text = format(sum(values) / len(values), spec)
    if zero_failures:
        counted = [r for r in mine if _applies(r, key) and r.get("note") != "applies to no layer"]
        text += f" ({format(sum(values) / max(1, len(counted)), spec)})"
    return text


def _paper(selection: str) -> str:
    if selection not in PAPER:
        return "-"
    group, value = PAPER[selection]
    if group == "both":
        return f"{value[0]} / {value[1]}"
    return f"{value} / -" if group == "conv" else f"- / {value}"


def goals(rows: list[dict]) -> list[str]:
    """Our goals, per model: met or by how much missed."""
    lines = ["", "## Against our goals", ""]
    for model in dict.fromkeys(r["model"] for r in rows):
        by = {r["selection"]: r for r in rows if r["model"] == model}
        if "hybrid" not in by:
            continue
        hybrid = by["hybrid"]
        total = {s: (100 * (1 - r["kept"]) if within(r) and r.get("kept") is not None else 0.0) for s, r in by.items()}
        singles = [s for s in (*CONV_METHODS, *DENSE_METHODS) if s in total]
        baselines = [s for s in ("vbmf", "energy", "uniform") if s in total]
        beaten_by = [s for s in singles if total[s] > total["hybrid"] + 0.05]
        baselines_ahead = [s for s in baselines if total[s] > total["hybrid"] + 0.05]
        single_text = (f"≥ {'every single method' if len(singles) == 6 else ', '.join(singles)}" if not beaten_by
                       else "beaten by " + ", ".join(f"{s} ({total[s]:.1f}%)" for s in beaten_by))
        baseline_text = ("no baseline run" if not baselines else
                         "≥ every baseline" if not baselines_ahead else "behind " + ", ".join(baselines_ahead))
        ratio = hybrid.get("speedup_per_flops_cut")
        lines.append(
            f"- **{model}** hybrid: conv cut {fmt(hybrid.get('conv_cut'))}% (goal ≥ 88), FC cut "
            f"{fmt(hybrid.get('fc_cut'))}% (goal ≥ 95), Δtop-1 {fmt(None if hybrid.get('drop') is None else -hybrid['drop'], '+.1f')}"
            f"{'' if within(hybrid) else ' (over 1 pt)'}; params cut {total['hybrid']:.1f}% — "
            f"{single_text}; {baseline_text}; "
            f"speedup ÷ FLOPs cut {fmt(ratio, '.2f')} (goal ≥ 0.9).")
    return lines


def pruning_comparison(rows: list[dict]) -> list[str]:
    """Issue 14's goals: hybrid >= fbp in params cut within MAX_DROP on every model; fbp+hybrid >= hybrid on
    at least 4 of 6; and which is faster."""
    models = [m for m in dict.fromkeys(r["model"] for r in rows)
              if {"hybrid", "fbp"} <= {r["selection"] for r in rows if r["model"] == m}]
    if not models:
        return []
    lines = ["", f"## Pruning against factorization (params cut % within {MAX_DROP} pt; LiteRT speedup)", "",
             "| model | hybrid | fbp | fbp+hybrid | hybrid ≥ fbp | fbp+hybrid ≥ hybrid |", "|---|---|---|---|---|---|"]
    wins = 0
    for model in models:
        by = {r["selection"]: r for r in rows if r["model"] == model}
        cut = {s: (100 * (1 - r["kept"]) if within(r) and r.get("kept") is not None else 0.0) for s, r in by.items()}
        cells = [f"{cut[s]:.1f} ({fmt(by[s].get('speedup'), '.2f')}x)" if s in by else "-"
                 for s in ("hybrid", "fbp", "fbp+hybrid")]
        combined_wins = "fbp+hybrid" in cut and cut["fbp+hybrid"] >= cut["hybrid"] - 0.05
        wins += combined_wins
        lines.append(f"| {model} | {' | '.join(cells)} | {'yes' if cut['hybrid'] >= cut['fbp'] - 0.05 else 'no'} | "
                     f"{'yes' if combined_wins else 'no'} |")
    lines.append(f"\nfbp+hybrid ≥ hybrid on {wins} of {len(models)} models (goal: at least 4 of 6).")
    return lines


def environment(source: str) -> list[str]:
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip() or "?"
    return [f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Commit: {commit}.",
            f"Machine: {cpu}, {os.cpu_count()} CPU cores, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}.", "Packages: " + ", ".join(versions) + ".",
            f"Data: Fashion-MNIST from `{source}`" + (" (full set)." if source != "embedded" else
                                                     " (embedded subset, not the full set).")]


def markdown(rows: list[dict], args, header: list[str], minutes: float) -> str:
    """`header`: the run's date, commit, machine, packages and data lines (environment())."""
    ladder = ",".join(f"{v:g}" for v in args.ladder)
    lines = ["# Paper-style table (bench/paper_table.py)", "", *header, "",
             f"Each row: the deepest params budget on the ladder {ladder} whose fine-tuned top-1 is within "
             f"{MAX_DROP} point of the original (budget = fraction of the layers the selection applies to; single "
             f"methods touch only their own layers). Calibration: 512 training images; one-shot fine-tuning: "
             f"{args.epochs} epoch(s) on {args.train} training images, Adam {args.learning_rate} cosine; top-1 (%) on "
             f"{args.test} test images. Cuts are % removed after BN folding. Latency: fp32 .tflite, LiteRT XNNPACK, "
             f"1 thread, original and compressed interleaved in one process, median of {TIMING['segments']} "
             f"segments' p50. `over`: no rung within {MAX_DROP} point; the mildest rung is shown.", "",
             ROW_HEADER, "|" + "---|" * ROW_HEADER.count(" | ") + "---|"]
    lines += [format_row(r) for r in rows]
    lines += averages(rows) + goals(rows) + pruning_comparison(rows)
    lines += ["", f"Run time: {minutes:.0f} min. Command: `python bench/paper_table.py --models {args.models} "
                  f"--ladder {ladder} --train {args.train} --test {args.test} --epochs {args.epochs} "
                  f"--learning-rate {args.learning_rate}"
                  + ("" if list(args.selections) == list(SELECTIONS) else f" --selections {','.join(args.selections)}")
                  + (f" --prune {args.prune} --prune-criterion {args.prune_criterion}"
                     if set(args.selections) & set(PRUNING_ROWS) else "")
                  + (f" --reconstruct {args.reconstruct}" if getattr(args, "reconstruct", 0) else "")
                  + (f" --out {args.out}" if args.out != RESULTS / "paper_table" else "") + "`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = sorted(set(args.selections) - set(SELECTIONS))
    if unknown:
        parser.error(f"unknown selection(s) {', '.join(unknown)}; choose from {', '.join(SELECTIONS)}")
    return run(args, argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(zoo.available()))
    parser.add_argument("--ladder", type=lambda t: [float(v) for v in t.split(",")], default=[0.5, 0.3, 0.15, 0.08],
                        help="params fractions kept, mildest first")
    parser.add_argument("--selections", type=lambda t: t.split(","), default=list(SELECTIONS),
                        help="rows to run, e.g. tucker,svd,hybrid (default: all)")
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=lambda t: t if t == "auto" else float(t), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prune", type=lambda t: t if t == "auto" else float(t), default=0.2,
                        help="fbp+hybrid: fraction of channels pruned first, or auto (the DSE picks 0, 0.1 or 0.2)")
    parser.add_argument("--prune-criterion", default="energy", help="fbp rows: energy, l1 or l2")
    parser.add_argument("--reconstruct", type=int, default=0, metavar="STEPS",
                        help="similarity rows: local reconstruction steps per block (0: off, the default)")
    parser.add_argument("--out", type=Path, default=RESULTS / "paper_table")
    parser.add_argument("--render", type=Path, metavar="RUN.json", help="only rewrite RUN.md from a saved RUN.json")
    return parser


def run(args, argv) -> int:
    if args.render:
        return render(args)
    started = time.perf_counter()
    source = compress_table.data.load_fashion_mnist(test_limit=1).source
    rows = [row for name in args.models.split(",") for row in model_rows(name, args)]
    minutes = (time.perf_counter() - started) / 60
    header = environment(source)
    text = markdown(rows, args, header, minutes)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    saved = {"source": source, "header": header, "minutes": minutes,
             "argv": argv if argv is not None else sys.argv[1:], "rows": rows}
    args.out.with_suffix(".json").write_text(json.dumps(saved, indent=1))
    return 0


def render(args) -> int:
    """Rewrite the Markdown of a saved run from its JSON (the run's own arguments, no re-measuring)."""
    saved = json.loads(args.render.read_text())
    run_args = build_parser().parse_args(saved["argv"])
    text = markdown(saved["rows"], run_args, saved["header"], saved["minutes"])
    args.render.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
