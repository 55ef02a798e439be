"""`edgecompress export MODEL --to tflite|onnx [--precision ...] [--data DATA] -o FILE`: lower, convert, audit.

Writes FILE and FILE.audit.json (both or neither) and prints the audit as a table.
"""
from __future__ import annotations

from itertools import groupby
from pathlib import Path


def register(subparsers) -> None:
    from edgecompress.lower import FORMATS, PARITY_SAMPLES, PRECISIONS
    from edgecompress.sources import PREPROCESS_HELP, TFRECORD_SPEC_HELP

    parser = subparsers.add_parser(
        "export", help="lower a Keras model to .tflite or .onnx and audit ops and runtime parity",
        description="Run the lowering passes (fold BatchNorm, fuse activations, merge factors, 2-D layouts), "
                    "convert with builtin ops only, and audit the result on the real runtime: ops per original "
                    "layer, builtin-only, Transpose/Reshape counts, size, max |diff| vs Keras, top-1 agreement.")
    parser.add_argument("model", help="a .keras/.h5 model file")
    parser.add_argument("--to", choices=FORMATS, help="output format (default: from the -o suffix)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32; fp16 weights; dynamic-range int8 weights; int8 = full integer (needs --data)")
    parser.add_argument("--data", metavar="DATA",
                        help="int8 calibration and parity/top-1 data (default: random): an .npz with x (and labels "
                             "y), a folder with one sub-folder of images per class, or TFRecord files (a .tfrecord "
                             "path, a folder of them or a quoted glob)")
    parser.add_argument("--preprocess", default="none", metavar="MODE", help=PREPROCESS_HELP)
    parser.add_argument("--tfrecord-spec", metavar="image=KEY,label=KEY", help=TFRECORD_SPEC_HELP)
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the .tflite/.onnx file to write")
    parser.add_argument("--samples", type=int, default=PARITY_SAMPLES,
                        help=f"samples of --data to check parity on (default {PARITY_SAMPLES})")
    parser.add_argument("--time-layers", nargs="?", const="host", metavar="TARGET",
                        help="also time each original layer (a factorized block's factors together) alone on "
                             "TARGET (default host) at this precision, next to its FLOPs; .tflite only")
    parser.set_defaults(func=run)


def run(args) -> int:
    from edgecompress.lower import export
    from edgecompress.progress import progress_reporter

    layer_costs = _layer_timer(args)
    with progress_reporter() as progress:
        artifact = export(args.model, args.output, to=args.to, precision=args.precision, data=args.data,
                          parity_samples=args.samples, progress=progress, preprocess=args.preprocess,
                          feature_spec=args.tfrecord_spec, layer_costs=layer_costs)
    print_audit(artifact.audit, str(artifact.path), str(artifact.audit_path))
    return 0


def _layer_timer(args):
    """For --time-layers: the timing function, its target asked for now (an unknown or unreachable one fails
    before anything is converted)."""
    if not args.time_layers:
        return None
    from edgecompress.errors import ConfigError

    if (args.to or Path(args.output).suffix.lower().lstrip(".")) == "onnx":
        raise ConfigError("--time-layers times .tflite layers on a TFLite runtime; export to .tflite to use it")
    from edgecompress.bench.costtable import CostTable
    from edgecompress.bench.layercosts import layer_costs

    table = CostTable(args.time_layers, precision=args.precision)
    table.runtime  # noqa: B018  (probes the target now)
    return lambda model: layer_costs(model, table)


def compact_ops(ops: list[str]) -> str:
    """['RESHAPE', 'CONV_2D', 'CONV_2D'] -> 'RESHAPE, CONV_2D x2' (order kept)."""
    return ", ".join(f"{op} x{count}" if (count := len(list(run))) > 1 else op for op, run in groupby(ops))


def print_audit(audit: dict, path: str, audit_path: str) -> None:
    from rich.console import Console
    from rich.table import Table

    costs = {row["layer"]: row for row in (audit.get("layer_costs") or {}).get("layers", [])}
    table = Table(title="ops per original layer")  # a title wraps at the table's width: the path goes above
    columns = ("layer", "ops (execution order)", "count") + (("MFLOPs", "ms alone") if costs else ())
    for column in columns:
        table.add_column(column, justify="left" if column in ("layer", "ops (execution order)") else "right")
    for row in audit["layers"]:
        cost = costs.get(row["layer"])
        timing = (f"{cost['flops'] / 1e6:.2f}", f"{cost['ms']:.4f}") if cost else ("", "")
        table.add_row(row["layer"], compact_ops(row["ops"]), str(len(row["ops"])), *(timing if costs else ()))
    table.add_section()
    total = (f"{sum(c['flops'] for c in costs.values()) / 1e6:.2f}", f"{sum(c['ms'] for c in costs.values()):.4f}")
    table.add_row("total", "", str(audit["op_total"]), *(total if costs else ()))
    console = Console(width=max(Console().width, 140))
    console.print(f"{path}: {audit['format']} {audit['precision']}", soft_wrap=True, highlight=False)
    console.print(table)
    console.print(summary_line(audit))
    if costs:
        timed = audit["layer_costs"]
        console.print(f"ms alone: each layer timed as a model of its own on {timed['target']} ({timed['runtime']}, "
                      f"{timed['precision']}, {timed['threads']} thread(s)), invoke overhead subtracted")
    for record in (r for r in audit["passes"] if r["changed"]):
        console.print(f"  pass {record['pass']}: {record['reason']} ({', '.join(record['where'])})")
    console.print(f"wrote {path} and {audit_path}")


def summary_line(audit: dict) -> str:
    parity = audit["parity"]
    agreement = "" if parity["top1_agreement"] is None else f", top-1 agreement {parity['top1_agreement']:.2%}"
    builtin = "builtin-only" if audit["builtin_only"] else f"NOT builtin-only: {', '.join(audit['non_builtin_ops'])}"
    runtime = audit["runtime"]
    return (f"{audit['size_bytes']:,} bytes, {audit['params_lowered']:,} params, {builtin}, "
            f"{audit['transpose_count']} transpose / {audit['reshape_count']} reshape ops; "
            f"on {runtime['name']} {runtime['version']} over {parity['samples']} {parity['data']} samples: "
            f"max |diff| {parity['max_abs_diff']:.3g} ({parity['relative_diff']:.2g} of max |y|){agreement}")
