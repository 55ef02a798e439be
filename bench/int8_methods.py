"""Which plan survives full int8 (issue 13, Deliver 4): the same latency budget met with different method sets and
pricing precisions, each plan exported to fp32 and int8 .tflite and compared on the test images.

Per variant: compress a zoo model (no fine-tuning) to `--budget`, export fp32 and int8 (calibrated on training
images, as `edgecompress export --precision int8 --data` does), then on host LiteRT: int8 top-1 agreement with
the fp32 export, max |logit diff|, int8 top-1 drop against fp32, and the int8 and fp32 files' speedups over the
original fp32 (paired, interleaved, 1 thread).

Run (about 4 min on 2 cores):
    python bench/int8_methods.py [--model edgecnn] [--budget latency=0.35@host] [--test 2000]
"""
from __future__ import annotations

import argparse
import functools
import os
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
from edgecompress.demo import reachable_latency_budget  # noqa: E402
from edgecompress.errors import BudgetError  # noqa: E402
from edgecompress.lower import export  # noqa: E402
from edgecompress.lower.runtime import run_tflite  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CALIBRATION_IMAGES = 512
# (label, methods, precision the blocks and plans are priced at, CompressConfig.int8_faithful)
VARIANTS = (("hybrid, fp32-priced", "hybrid", "fp32", False),
            ("hybrid --int8-faithful, fp32-priced", "hybrid", "fp32", True),
            ("hybrid, int8-priced (--target-precision int8, int8-faithful)", "hybrid", "int8", True),
            ("tucker+svd", "tucker,svd", "fp32", False), ("cp+svd", "cp,svd", "fp32", False),
            ("tt+svd", "tt,svd", "fp32", False))
TIMING = BenchSettings(threads=1, min_secs=1.0, max_secs=6.0, segments=3, alone_memory=False)


def variant_row(model, dataset, budget: str, label: str, methods: str, precision: str, faithful: bool,
                scratch: Path) -> dict:
    calibration = dataset.x_train[:CALIBRATION_IMAGES]
    started = time.perf_counter()
    table = functools.partial(CostTable, precision=precision)
    options = dict(methods=methods, cost_table=table, int8_faithful=faithful)
    try:
        compressed = compress(model, calibration, CompressConfig(budget=budget, **options))
    except BudgetError as error:  # as the demo does: the cheapest reachable budget, said in the row
        budget = reachable_latency_budget(budget, error)
        compressed = compress(model, calibration, CompressConfig(budget=budget, **options))
    compress_s = time.perf_counter() - started
    stem = f"v{len(list(scratch.glob('*.tflite')))}"
    files = {p: export(compressed.model, scratch / f"{stem}_{p}.tflite", precision=p, data=calibration).path
             for p in ("fp32", "int8")}
    fp32_logits, int8_logits = (run_tflite(files[p].read_bytes(), dataset.x_test) for p in ("fp32", "int8"))
    y = dataset.y_test
    layers = [f"{layer.name}:{layer.method}{','.join(map(str, layer.rank))}" for layer in compressed.plan.layers
              if layer.method]
    return {"variant": label, "budget": budget, "compress_s": round(compress_s, 1), "plan": " ".join(layers),
            "measured_latency": compressed.plan.budget["achieved"].get("latency"),
            "agreement_pct": 100 * float(np.mean(fp32_logits.argmax(1) == int8_logits.argmax(1))),
            "max_abs_diff": float(np.abs(fp32_logits - int8_logits).max()),
            "fp32_top1": 100 * float(np.mean(fp32_logits.argmax(1) == y)),
            "int8_top1": 100 * float(np.mean(int8_logits.argmax(1) == y)),
            "files": files}


def timed(original: Path, rows: list[dict]) -> None:
    """Speedups of every variant's fp32 and int8 files over the original fp32, in one interleaved runner call."""
    paths = [original] + [row["files"][p] for row in rows for p in ("fp32", "int8")]
    result = run(paths, settings=TIMING)
    speedups = [(c["speedup"], c["ci95"]) for c in result.comparisons]
    for index, row in enumerate(rows):
        row["fp32_speedup"], row["int8_speedup"] = speedups[2 * index], speedups[2 * index + 1]


def markdown(rows: list[dict], command: str, model: str, budget: str, test: int) -> str:
    lines = ["# int8 fidelity by method set (bench/int8_methods.py)", "", f"Command: `{command}`", "",
             f"{model} compressed to `{budget}` (no fine-tuning), exported fp32 and full int8 (calibrated on "
             f"{CALIBRATION_IMAGES} training images, channel equalization on), run on host LiteRT over {test} test "
             "images. Agreement = int8 top-1 equal to the fp32 export's; speedups over the original fp32 file, "
             "paired and interleaved, 1 thread.", "",
             "A latency budget the variant cannot reach is replaced by its cheapest reachable one (as the demo does; "
             "an int8-priced budget is a fraction of the original's int8 latency).", "",
             "| variant | budget | measured latency (compress) | int8 agreement | max abs logit diff "
             "| top-1 fp32 -> int8 | fp32 speedup (95% CI) | int8 speedup (95% CI) | compress s | plan |",
             "|---" * 10 + "|"]
    for r in rows:
        (fs, (fl, fh)), (isp, (il, ih)) = r["fp32_speedup"], r["int8_speedup"]
        lines.append(f"| {r['variant']} | {r['budget']} | {r['measured_latency']} | {r['agreement_pct']:.2f}% | "
                     f"{r['max_abs_diff']:.2f} | {r['fp32_top1']:.2f} -> {r['int8_top1']:.2f} | "
                     f"{fs:.2f}x ({fl:.2f}-{fh:.2f}) | {isp:.2f}x ({il:.2f}-{ih:.2f}) | {r['compress_s']} | "
                     f"{r['plan']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="edgecnn")
    parser.add_argument("--budget", default="latency=0.35@host")
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--out", default=str(RESULTS / "int8_methods"))
    args = parser.parse_args()
    model = zoo.pretrained(args.model)
    dataset = data.load_fashion_mnist(view=zoo.dataset_for(args.model), train_limit=CALIBRATION_IMAGES,
                                      test_limit=args.test)
    rows = []
    with tempfile.TemporaryDirectory(prefix="int8-methods-") as scratch:
        original = export(model, Path(scratch) / "original.tflite", data=dataset.x_train[:64]).path
        for label, methods, precision, faithful in VARIANTS:
            print(f"[{time.strftime('%H:%M:%S')}] {label}", file=sys.stderr, flush=True)
            rows.append(variant_row(model, dataset, args.budget, label, methods, precision, faithful,
                                    Path(scratch)))
        timed(original, rows)
    text = markdown(rows, "python bench/int8_methods.py " + " ".join(sys.argv[1:]), args.model, args.budget,
                    args.test)
    print(text)
    Path(args.out).with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
