"""DSE speed: capture + similarity search + allocation on a zoo model (default ResNet-20, 512 calibration images,
every applicable method); prints wall times and peak RSS and saves a Markdown row under bench/results/.

Goal (issue 4): <= 120 s wall and <= 2 GB peak RSS on 2 cores. Run: python bench/dse_speed.py [--model resnet20]
Issue 16: `--jobs 1,2` runs the DSE once per value, each in a fresh process (its own peak RSS), searching that
many layers at once, and checks the plans are the same.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import platform
import resource
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


from edgecompress import data, zoo  # noqa: E402
from edgecompress.compress import CompressConfig, CompressionRun  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "dse_speed.md"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(model_name: str, images: int, budget: str, methods: str, jobs: int | None = None) -> dict:
    model = zoo.pretrained(model_name)
    dataset = data.load_fashion_mnist(view=zoo.dataset_for(model_name), train_limit=images, test_limit=1)
    x = dataset.x_train[:images]
    rss_before_mb = peak_rss_mb()
    started = time.perf_counter()
    run = CompressionRun(model, x, None, CompressConfig(methods=methods, budget=budget, jobs=jobs), None)
    selector = run.make_selector()
    choose_started = time.perf_counter()
    choices = run.choose(selector)
    choose_s = time.perf_counter() - choose_started
    total_s = time.perf_counter() - started
    build_started = time.perf_counter()
    run.build(selector, choices)
    build_s = time.perf_counter() - build_started
    searched = [t for t in run.tasks.values() if t.searched]
    return {"model": model_name, "images": images, "methods": methods, "budget": budget, "jobs": jobs,
            "layers": len(searched), "plan": sorted((n, p.method, p.rank) for n, p in choices.items()),
            "evaluations": sum(s.evaluations for s in selector.scorers.values()),
            "capture_s": run.stats["capture_s"], "search_s": run.stats["search_s"], "choose_s": choose_s,
            "dse_s": total_s, "final_build_s": build_s, "capture_mb": run.stats["capture_bytes"] / 2 ** 20,
            "rss_before_mb": rss_before_mb, "peak_rss_mb": peak_rss_mb()}


def markdown(rows: list[dict]) -> str:
    shown = [{k: v for k, v in row.items() if k != "plan"} for row in rows]
    head = "| " + " | ".join(shown[0]) + " |\n|" + "---|" * len(shown[0]) + "\n"
    lines = ["| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()) + " |"
             for row in shown]
    same = all(row["plan"] == rows[0]["plan"] for row in rows)
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    return (f"# DSE speed (bench/dse_speed.py)\n\nMachine: {machine} (shared with other jobs: times are indicative)."
            f" `dse_s` = capture + search + allocation (the goal's number); `final_build_s` = final decompositions "
            f"of the chosen layers and the model rebuild; `peak_rss_mb` = whole process incl. TensorFlow "
            f"(`rss_before_mb` = after import and model/data load).\n\n" + head + "\n".join(lines) + "\n"
            + (f"\nSame plan for every --jobs value: {'yes' if same else 'NO'}.\n" if len(rows) > 1 else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--budget", default="params=0.2")
    parser.add_argument("--methods", default="hybrid")
    parser.add_argument("--jobs", help="comma-separated --jobs values, each measured in a fresh process")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child: measure one --jobs value, print JSON
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.model, args.images, args.budget, args.methods, args.one)))
        return 0
    if args.jobs:
        rows = [_child(args, int(jobs)) for jobs in args.jobs.split(",")]
    else:
        rows = [measure(args.model, args.images, args.budget, args.methods)]
    text = markdown(rows)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


def _child(args, jobs: int) -> dict:
    command = [sys.executable, __file__, "--model", args.model, "--images", str(args.images), "--budget",
               args.budget, "--methods", args.methods, "--one", str(jobs)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


if __name__ == "__main__":
    raise SystemExit(main())
