"""Reports of a BenchResult: complete JSON, a Markdown table, and PNG plots (latency distributions; Pareto
fronts of accuracy vs size and vs latency). Emulated times say "emulated" wherever a time is shown."""
from __future__ import annotations

import os
from pathlib import Path

from edgecompress.bench.result import BenchResult
from edgecompress.io import atomic_path

MIB = 1024 * 1024


def write_json(result: BenchResult, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(result.to_json() + "\n")
    return Path(path)


def markdown(result: BenchResult) -> str:
    """A human summary: one header line about where it ran, a table with a row per model, the speedups."""
    tag = " (emulated)" if result.emulated else ""
    lines = [_header(result), "",
             f"| model | size KiB | init ms{tag} | p50 ms{tag} | p90 ms{tag} | p99 ms{tag} | mean ± std ms{tag} "
             f"| runs | peak RSS MiB | top-1 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [_row(model, result.peak_rss_bytes if len(result.models) == 1 else None) for model in result.models]
    lines += [""] + [_speedup_line(result, c) for c in result.comparisons if c]
    if result.peak_rss_bytes and len(result.models) > 1:
        lines.append(f"Peak RSS of the process that ran them all: {result.peak_rss_bytes / MIB:.1f} MiB.")
    lines += [f"> {note}" for note in result.notes]
    return "\n".join(lines).rstrip() + "\n"


def _header(result: BenchResult) -> str:
    runtimes = sorted({f"{m['runtime']['name']} {m['runtime']['version']}" for m in result.models})
    threads = result.threads if result.threads is not None else "runtime default"
    return (f"### {result.target['name']} ({result.target['kind']}, {result.timing_label} timing): "
            f"{result.system.get('cpu_model', '?')}, {result.system.get('machine', '?')}, "
            f"{', '.join(runtimes)}, threads {threads}, batch 1")


def _row(model: dict, process_peak_bytes: int | None) -> str:
    """One model; its peak RSS is that of a process running it alone (the runner measures it so when
    several models share a run), else the run's own peak."""
    latency = model["latency_ms"]
    accuracy = (model.get("accuracy") or {}).get("top1_accuracy")
    rss = model.get("peak_rss_alone_bytes") or process_peak_bytes
    return "| " + " | ".join([
        model["name"], f"{model['size_bytes'] / 1024:.1f}", _num(model.get("init_ms")), _num(latency.get("p50")),
        _num(latency.get("p90")), _num(latency.get("p99")), f"{_num(latency['mean'])} ± {_num(latency['std'])}",
        str(model["runs"]), "–" if rss is None else f"{rss / MIB:.1f}",
        "–" if accuracy is None else f"{accuracy:.2%}"]) + " |"


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def _speedup_line(result: BenchResult, comparison: dict) -> str:
    base = result.models[comparison["baseline"]]["name"]
    other = result.models[comparison["candidate"]]["name"]
    ci = comparison.get("ci95")
    interval = f" (95% CI {ci[0]:.3f}–{ci[1]:.3f}, paired interleaved runs)" if ci else " (no CI: not interleaved)"
    tag = ", emulated" if result.emulated else ""
    return f"Speedup of {other} over {base}: {comparison['speedup']:.3f}×{interval}{tag}."


def plot_latency(result: BenchResult, path: str | os.PathLike) -> Path:
    """Box plots of each model's latency samples (a mean ± std bar where only a summary exists)."""
    figure = _figure(6.4, 1.2 + 0.6 * len(result.models))
    axes = figure.add_subplot()
    for row, model in enumerate(result.models):
        samples = model.get("samples_ms") or []
        if samples:
            axes.boxplot([samples], positions=[row], vert=False, widths=0.5, showfliers=True,
                         flierprops={"markersize": 2, "alpha": 0.4})
        else:
            axes.errorbar([model["latency_ms"]["mean"]], [row], xerr=[model["latency_ms"]["std"]], fmt="o")
    axes.set_yticks(range(len(result.models)), [m["name"] for m in result.models])
    lows = [m["latency_ms"]["min"] for m in result.models if m["latency_ms"].get("min")]
    if lows and max(m["latency_ms"]["max"] for m in result.models) > 10 * min(lows):
        axes.set_xscale("log")  # a few slow outliers, or models of very different cost, stay readable
    axes.set_xlabel(f"latency per inference, ms ({result.timing_label})")
    axes.set_title(f"Latency on {result.target['name']}" + (" — EMULATED" if result.emulated else ""))
    return _save(figure, path)


def plot_pareto(result: BenchResult, path: str | os.PathLike) -> Path:
    """Accuracy vs size and vs p50 latency, one point per model, Pareto-optimal points joined."""
    points = [(m["name"], m["size_bytes"] / 1024, m["latency_ms"]["p50"] or m["latency_ms"]["mean"],
               m["accuracy"]["top1_accuracy"]) for m in result.models
              if (m.get("accuracy") or {}).get("top1_accuracy") is not None]
    if not points:
        raise ValueError("no model has a top-1 accuracy (give --data with labels y): nothing to plot")
    figure = _figure(10, 4.2)
    for column, (label, index) in enumerate([("size, KiB", 1), (f"p50 latency, ms ({result.timing_label})", 2)]):
        axes = figure.add_subplot(1, 2, column + 1)
        xs, ys = [p[index] for p in points], [p[3] for p in points]
        axes.scatter(xs, ys)
        for point in points:
            axes.annotate(point[0], (point[index], point[3]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        front = pareto_front(list(zip(xs, ys)))
        axes.plot([xs[i] for i in front], [ys[i] for i in front], drawstyle="steps-post", color="tab:red",
                  marker="o", markersize=11, markerfacecolor="none", label="Pareto front")
        axes.set_xlabel(label)
        axes.set_ylabel("top-1 accuracy")
        axes.margins(0.2)  # room for the labels of points at the edges
        axes.locator_params(nbins=5)
        axes.legend(loc="best", fontsize=7)
    figure.suptitle(f"Accuracy trade-offs on {result.target['name']}" + (" — EMULATED" if result.emulated else ""))
    return _save(figure, path)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats (lower or equal x with higher y), sorted by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_y = [], float("-inf")
    for i in order:
        if points[i][1] > best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def write_report(result: BenchResult, directory: str | os.PathLike) -> dict[str, Path]:
    """report.json, report.md, latency.png and (with accuracies) pareto.png in `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {"json": write_json(result, directory / "report.json"),
               "latency_png": plot_latency(result, directory / "latency.png")}
    try:
        written["pareto_png"] = plot_pareto(result, directory / "pareto.png")
    except ValueError as reason:
        result.notes.append(f"no Pareto plot: {reason}")
    with atomic_path(directory / "report.md") as tmp:
        tmp.write_text(markdown(result))
    written["markdown"] = directory / "report.md"
    return written


def _figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure  # the object API draws with Agg and touches no global pyplot state

    return Figure(figsize=(width_in, height_in), layout="constrained")


def _save(figure, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    return Path(path)
