"""`edgecompress demo [-o DIR]`: the main job end to end on the built-in model and data."""
from __future__ import annotations

from pathlib import Path

from edgecompress.commands.compress import add_latency_guard_arguments

# The demo's defaults (edgecompress.demo.DemoConfig holds the same; kept here so --help needs no TensorFlow).
DEMO_BUDGET = "latency=0.3@host"
DEMO_EPOCHS = 2


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="the main job end to end on the built-in model and data",
        description="Compress the shipped edge CNN (Fashion-MNIST, 65 M MACs) by hybrid LRF to at most 0.3 of "
                    "its latency measured on this machine's runtime (blocks priced, whole model checked), fine-tune "
                    "once, export .tflite fp32/int8 and .onnx with audits, benchmark original vs compressed on the "
                    "host, and write DIR/report.md, report.json, plots, plan.json and the deployable files.")
    parser.add_argument("-o", "--out", default="demo-out", help="output directory (default: demo-out)")
    add_latency_guard_arguments(parser)
    parser.add_argument("--model", default="edgecnn",
                        help="zoo model with shipped weights (default: edgecnn; lenet5, vgg, ... also ship)")
    parser.add_argument("--budget", default=DEMO_BUDGET,
                        help="compression budget (see compress --help); default: %(default)s, the compressed "
                             "model at most that fraction of the original's latency measured on this machine")
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS,
                        help="one-shot fine-tuning epochs (default: %(default)s)")
    parser.add_argument("--all-methods", action="store_true",
                        help="hybrid over every method, CP included (by default the demo, which ships an int8 file, "
                             "leaves out methods whose blocks lose int8 fidelity: compress --int8-faithful)")
    parser.add_argument("--data-source", default="auto", choices=["auto", "full", "embedded"],
                        help="Fashion-MNIST: full set where found (auto), required (full), or the embedded subset")
    parser.add_argument("--quick", action="store_true",
                        help="reduced smoke run: embedded data, 1 epoch, short bench, flops=0.3 with nothing timed "
                             "(unless another --budget or --target is given)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console

    from edgecompress.demo import DemoConfig, DemoRun
    from edgecompress.errors import DataError
    from edgecompress.zoo import available, shipped

    if args.model not in available() or args.model not in shipped():
        raise DataError(f"--model {args.model}: no shipped weights; choose one of {', '.join(shipped())}")
    console = Console(stderr=False)
    config = DemoConfig(out_dir=Path(args.out), model=args.model, budget=args.budget, epochs=args.epochs,
                        int8_faithful=not args.all_methods,
                        data_source=args.data_source, quick=args.quick,
                        latency_guard=args.latency_guard)
    from edgecompress.progress import progress_reporter

    with progress_reporter() as report:
        result = DemoRun(config, console.print, progress=report).run()
    _print_summary(console, result)
    return 0


def _print_summary(console, result) -> None:
    from rich.table import Table

    summary = result.summary
    table = Table(title=f"edgecompress demo -> {result.out_dir}")
    table.add_column("what")
    table.add_column("value")
    accuracy, params = summary["accuracy"], summary["params"]
    table.add_row("data", summary["data"]["source"])
    table.add_row("top-1 original -> compressed", f"{100 * accuracy['original_top1']:.2f}% -> "
                  f"{100 * accuracy['compressed_top1']:.2f}% ({accuracy['drop_points']:.2f} pt)")
    table.add_row("candidate-layer params", f"{params['candidate_before']:,} -> {params['candidate_after']:,} "
                  f"({params['candidate_reduction_x']}x fewer)")
    names = [m["name"] for m in summary["benchmark"]["models"]]
    for comparison in summary["benchmark"]["comparisons"]:
        if comparison:
            ci = comparison.get("ci95")
            interval = f" (95% CI {ci[0]:.2f}-{ci[1]:.2f})" if ci else ""
            table.add_row(f"host speedup {names[comparison['candidate']]}",
                          f"{comparison['speedup']:.2f}x over {names[comparison['baseline']]}{interval}")
    table.add_row("files", ", ".join(sorted(Path(p).name for p in result.files.values())))
    table.add_row("time (s)", f"{sum(result.timings_s.values()):.0f}")
    console.print(table)
