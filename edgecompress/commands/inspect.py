"""`edgecompress inspect MODEL [--json]`: per layer kind, shapes, params, FLOPs, applicable methods or why none."""
from __future__ import annotations

import json
import sys

from edgecompress.graph.layers import LayerInfo


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect", help="list layers: kind, shapes, params, FLOPs, applicable methods or why none",
        description="Per layer: kind, kernel shape, input/output shapes, params, FLOPs (2 x MACs; bias and "
                    "activations not counted) and the factorization methods that apply, or the reason none does.")
    parser.add_argument("model", help="a .keras/.h5 file, or zoo:NAME for a built-in model")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--all", action="store_true", help="also list layers without weights")
    parser.set_defaults(func=run)


def inspect_model(model) -> list[dict]:
    """Rows for every layer: LayerInfo fields plus `methods` (applicable) and `not_applicable` reasons."""
    from edgecompress.factorize import applicable
    from edgecompress.graph.layers import describe

    rows = []
    for info in describe(model):
        verdicts = applicable(info) if info.kind else {}
        row = info.to_json()
        row["methods"] = [name for name, reason in verdicts.items() if reason is None]
        row["not_applicable"] = {name: reason for name, reason in verdicts.items() if reason is not None}
        if info.kind and not row["methods"] and not info.reason:
            row["reason"] = "; ".join(f"{name}: {reason}" for name, reason in verdicts.items())
        rows.append(row)
    return rows


def run(args) -> int:
    from edgecompress import models

    model = models.load(args.model)
    rows = inspect_model(model)
    if args.json:
        json.dump({"model": model.name, "layers": rows}, sys.stdout, indent=2)
        print()
        return 0
    _print_table(model.name, [r for r in rows if args.all or r["params"] or r["kind"]])
    return 0


def _shape(shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape) if shape else "-"


def _print_table(model_name: str, rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{model_name}: layers (FLOPs = 2 x MACs)")
    for column in ("layer", "class", "kind", "kernel", "input", "output", "params", "FLOPs", "methods / reason"):
        table.add_column(column, justify="right" if column in ("params", "FLOPs") else "left")
    for row in rows:
        verdict = ", ".join(row["methods"]) if row["methods"] else f"[dim]{row['reason'] or '-'}[/dim]"
        table.add_row(row["name"], row["class_name"], row["kind"] or "-", _shape(row["kernel_shape"]),
                      _shape(row["input_shape"]), _shape(row["output_shape"]), f"{row['params']:,}",
                      f"{row['flops']:,}", verdict)
    total_params = sum(r["params"] for r in rows)
    total_flops = sum(r["flops"] for r in rows)
    table.add_section()
    table.add_row("total", "", "", "", "", "", f"{total_params:,}", f"{total_flops:,}", "")
    Console(width=max(Console().width, 160)).print(table)


__all__ = ["LayerInfo", "inspect_model", "register", "run"]
