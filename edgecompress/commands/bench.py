"""`edgecompress bench FILE [FILE...]`: latency percentiles, peak RSS, size and top-1 accuracy on a target.
Two or more files run interleaved and are compared (speedup, 95% CI); prints Markdown, --json/--report-dir write."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from edgecompress.sources import PREPROCESS_HELP, TFRECORD_SPEC_HELP

    parser = subparsers.add_parser("bench", help="benchmark .tflite/.onnx files on a target",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", metavar="FILE", help=".tflite or .onnx models; the first is the baseline")
    parser.add_argument("--target", default="host",
                        help="target name (edgecompress target list) or a target .toml path (default: host)")
    parser.add_argument("--data", metavar="DATA",
                        help="inputs and labels for top-1 accuracy: an .npz with x and y, or a folder with one "
                             "sub-folder of images per class or TFRecord files, of which the first --max-samples "
                             "(default 500) are sent to the target as an .npz")
    parser.add_argument("--preprocess", default="none", metavar="MODE", help=PREPROCESS_HELP)
    parser.add_argument("--tfrecord-spec", metavar="image=KEY,label=KEY", help=TFRECORD_SPEC_HELP)
    parser.add_argument("--threads", type=_positive_int, default=1, help="interpreter threads (default 1)")
    parser.add_argument("--json", metavar="OUT.json", help="write the complete result as JSON")
    parser.add_argument("--report-dir", metavar="DIR", help="write report.json, report.md, latency.png, pareto.png")
    timing = parser.add_argument_group("timing (as TFLite benchmark_model)")
    timing.add_argument("--min-runs", type=_positive_int, default=50, help="at least this many timed runs")
    timing.add_argument("--min-secs", type=_non_negative, default=1.0, help="and at least this many seconds")
    timing.add_argument("--max-secs", type=_positive, default=60.0, help="but stop after this many seconds")
    timing.add_argument("--warmup-runs", type=int, default=1, help="untimed runs first (default 1)")
    timing.add_argument("--warmup-secs", type=_non_negative, default=0.5, help="and untimed seconds (default 0.5)")
    timing.add_argument("--segments", type=_positive_int, default=6,
                        help="with several files: reload them this many times in alternating order (default 6)")
    timing.add_argument("--max-samples", type=_positive_int, help="accuracy over at most N data samples")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from edgecompress import bench
    from edgecompress.bench import report

    settings = bench.BenchSettings(threads=args.threads, min_runs=args.min_runs, min_secs=args.min_secs,
                                   max_secs=args.max_secs, warmup_runs=args.warmup_runs,
                                   warmup_secs=args.warmup_secs, segments=args.segments,
                                   max_samples=args.max_samples)
    from edgecompress.progress import one_step, progress_reporter

    with progress_reporter() as progress, one_step(progress, f"bench on {args.target}"):
        result = bench.run(args.files, target=args.target, data=args.data, settings=settings,
                           preprocess=args.preprocess, feature_spec=args.tfrecord_spec)
    if args.report_dir:
        report.write_report(result, args.report_dir)
    if args.json:
        report.write_json(result, args.json)
    print(report.markdown(result), end="")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value
