"""The demo's human report (report.md) from its summary dict; the dict itself is report.json."""
from __future__ import annotations


def _pct(value) -> str:
    return "-" if value is None else f"{100 * float(value):.2f}%"


def _summary_table(summary: dict) -> list[str]:
    accuracy, params = summary["accuracy"], summary["params"]
    flops_cut = 1 - params["flops_after"] / max(params["flops_before"], 1)
    return ["| | original | compressed |", "|---|---|---|",
            f"| top-1 (Keras, test set) | {_pct(accuracy['original_top1'])} | {_pct(accuracy['compressed_top1'])} "
            f"(drop {accuracy['drop_points']:.2f} pt) |",
            f"| params in candidate layers | {params['candidate_before']:,} | {params['candidate_after']:,} "
            f"({params['candidate_reduction_x']}x fewer) |",
            f"| params, whole model | {params['model_before']:,} | {params['model_after']:,} |",
            f"| FLOPs (2 x MACs) | {params['flops_before']:,} | {params['flops_after']:,} ({100 * flops_cut:.1f}% cut) |",
            f"| conv / dense param cut | | {params['conv_cut_pct']}% / {params['dense_cut_pct']}% |"]


def _plan_table(layers: list[dict]) -> list[str]:
    rows = ["| layer | kind | method | rank | similarity | params before -> after |", "|---|---|---|---|---|---|"]
    for layer in layers:
        method = layer.get("method") or (layer.get("reason") or "kept")
        similarity = layer.get("similarity")
        rows.append(f"| {layer['name']} | {layer['kind']} | {method} | {layer.get('rank') or '-'} | "
                    f"{'-' if similarity is None else f'{similarity:.4f}'} | "
                    f"{layer['params_before']:,} -> {layer['params_after']:,} |")
    return rows


def _exports_table(exports: dict) -> list[str]:
    rows = ["| file | size | builtin ops only | max abs diff vs Keras | top-1 agreement |", "|---|---|---|---|---|"]
    for audit in exports.values():
        rows.append(f"| {audit['file']} | {audit['size_bytes']:,} B | {audit['builtin_only']} | "
                    f"{audit['max_abs_diff']:.2g} | {_pct(audit['top1_agreement'])} |")
    return rows


def _bench_table(bench: dict) -> list[str]:
    rows = [f"Target `{bench['target']}` ({bench['timing']} timing), LiteRT, 1 thread:", "",
            "| model | p50 ms | p90 ms | top-1 | size |", "|---|---|---|---|---|"]
    for model in bench["models"]:
        rows.append(f"| {model['name']} | {model['p50_ms']:.4f} | {model['p90_ms']:.4f} | {_pct(model['top1'])} | "
                    f"{model['size_bytes']:,} B |")
    for comparison in bench["comparisons"]:
        if comparison:
            ci = comparison.get("ci95")
            interval = f", 95% CI {ci[0]:.3f}-{ci[1]:.3f}" if ci else ""
            names = [m["name"] for m in bench["models"]]
            rows.append(f"\nSpeedup of {names[comparison['candidate']]} over {names[comparison['baseline']]}: "
                        f"{comparison['speedup']:.3f}x{interval} (paired, interleaved runs)")
    return rows


def _selection_lines(summary: dict) -> list[str]:
    """How the budget was judged and which fine-tuning rate the probe kept, when the run recorded them."""
    stats, lines = summary.get("compress_stats", {}), []
    if "accuracy_judged" in stats:
        lines.append(f"The accuracy budget was judged {stats['accuracy_judged']} on the calibration images: "
                     f"{stats['accuracy_before']:.2f}% -> {stats['accuracy_compressed']:.2f}% at "
                     f"{stats['params_fraction']:.3f} of the candidate params.")
    if "finetune_learning_rate" in stats:
        lines.append(f"Fine-tuning learning rate: {stats['finetune_learning_rate']:g} (probed among 1e-3, 5e-4, "
                     f"2e-4, 1e-4 on short runs; lowest validation loss kept).")
    return ["", *lines] if lines else []


def _methods_text(config: dict) -> str:
    if config.get("int8_faithful") == "True":
        return "hybrid methods without the int8-fragile ones (CP; `--all-methods` keeps them)"
    return "hybrid methods"


def markdown_report(summary: dict) -> str:
    data = summary["data"]
    lines = ["# edgecompress demo report", "",
             f"Model `{summary['config']['model']}` on Fashion-MNIST from **{data['source']}** ({data['train']} train / "
             f"{data['test']} test images, {data['calibration']} for calibration); budget "
             f"`{summary['config']['budget']}`, {_methods_text(summary['config'])}, rank selection by feature-map "
             "similarity, one-shot "
             f"fine-tuning for {summary['config']['epochs']} epoch(s).", *_selection_lines(summary), "",
             "## Summary", ""]
    lines += _summary_table(summary)
    lines += ["", "## Plan (per layer)", ""] + _plan_table(summary["plan_layers"])
    lines += ["", "## Deployable files (each audited on its real runtime)", ""] + _exports_table(summary["exports"])
    lines += ["", "## Host benchmark", ""] + _bench_table(summary["benchmark"])
    lines += ["", "![latency](bench_latency.png)", "", "![pareto](bench_pareto.png)", "",
              "## Time per step (s)", "", " | ".join(f"{k} {v}" for k, v in summary["timings_s"].items()), "",
              "Re-run: `edgecompress demo -o DIR` (add `--quick` for the reduced smoke run)."]
    return "\n".join(lines) + "\n"
