"""Per factorized block: its FLOPs and its measured latency next to the layer it replaced (issue 13, Deliver 3).

LiteRT's Python interpreter has no op profiler, so each block and each original layer is timed as a model of its
own on the target's runtime (the cost table: fp32 .tflite, batch 1, the runner's fixed cost around one invoke
subtracted), which is what the latency guard and latency budgets price plans with. Each zoo model is compressed
as `edgecompress compress` does by default (similarity threshold, blocks guarded on the host) or to --budget.

Run (about 3 min on 2 cores; cached timings are reused):
    python bench/block_timing.py [--models edgecnn,vgg,resnet20] [--budget params=0.3] [--target host]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edgecompress import data, zoo  # noqa: E402
from edgecompress.bench.costtable import CostTable  # noqa: E402
from edgecompress.bench.layercosts import layer_groups  # noqa: E402
from edgecompress.compress import CompressConfig, compress  # noqa: E402
from edgecompress.graph.batchnorm import fold_batchnorm  # noqa: E402
from edgecompress.graph.rebuild import normalize  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
HEADER = ("| model | layer | method | rank | FLOPs before | FLOPs cut | ms before | ms after | speedup | "
          "speedup ÷ FLOPs cut |")


def block_rows(name: str, budget: str | None, target: str) -> list[dict]:
    model = zoo.pretrained(name)
    dataset = data.load_fashion_mnist(view=zoo.dataset_for(name), train_limit=512, test_limit=1)
    config = CompressConfig(budget=budget, latency_guard=target, cost_table=CostTable)
    compressed = compress(model, (dataset.x_train, dataset.y_train), config)
    folded, _ = fold_batchnorm(normalize(model))
    replaced = [layer for layer in compressed.plan.layers if layer.method]
    blocks = layer_groups(compressed.model)
    pairs = []
    for layer in replaced:
        shape = tuple(folded.get_layer(layer.name).input.shape[1:])
        pairs += [([folded.get_layer(layer.name)], shape), (blocks[layer.name], shape)]
    timed = CostTable(target).latency_many(pairs)
    rows = []
    for index, layer in enumerate(replaced):
        before_ms, after_ms = timed[2 * index], timed[2 * index + 1]
        flops_cut = layer.flops_before / max(1, layer.flops_after)
        rows.append(dict(model=name, layer=layer.name, method=layer.method, rank=layer.rank,
                         flops_before=layer.flops_before, flops_cut=flops_cut, before_ms=before_ms,
                         after_ms=after_ms, speedup=before_ms / after_ms,
                         ratio=before_ms / after_ms / flops_cut))
    return rows


def markdown(rows: list[dict], command: str) -> str:
    lines = ["# Per-block latency next to FLOPs (bench/block_timing.py)", "", f"Command: `{command}`", "",
             "Each block and the layer it replaced timed alone (fp32 .tflite, batch 1, LiteRT, 1 thread, the "
             "runner's fixed cost subtracted).", "", HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['layer']} | {r['method']} | {','.join(map(str, r['rank']))} | "
                     f"{r['flops_before'] / 1e6:.2f} M | {r['flops_cut']:.2f}x | {r['before_ms']:.4f} | "
                     f"{r['after_ms']:.4f} | {r['speedup']:.2f}x | {r['ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="edgecnn,vgg,resnet20")
    parser.add_argument("--budget", default=None, help="e.g. params=0.3 (default: the similarity threshold)")
    parser.add_argument("--target", default="host")
    parser.add_argument("--out", default=str(RESULTS / "block_timing"))
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        rows += block_rows(name, args.budget, args.target)
        print(f"{name}: {sum(r['model'] == name for r in rows)} blocks timed", flush=True)
    text = markdown(rows, "python bench/block_timing.py " + " ".join(sys.argv[1:]))
    out = Path(args.out).with_suffix(".md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
