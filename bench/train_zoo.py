"""Train the zoo models on Fashion-MNIST, save them, print and record a table; `--ship` puts small ones in the package.

Full data set where installed (Keras cache or Debian), else the embedded subset; every row says which. Not run in CI.
Results accumulate in OUT/results.json (one row per model, the latest run wins) and are rendered to --report.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from edgecompress import data, zoo  # noqa: E402
from edgecompress.io import atomic_path  # noqa: E402

SHIP_LIMIT_BYTES = 2 * 1024 * 1024
SHIP_MIN_TOP1 = 80.0  # a model below this on Fashion-MNIST is broken (e.g. BatchNorm statistics), not "small"
# Epochs of the shipped weights (bench/results/train_zoo.md), each a few minutes on 2 CPU cores; resnet20 and
# mobilenet were trained on the first 10k / 20k images (--train-limit) to fit that budget. Override with --epochs.
DEFAULT_EPOCHS = {"lenet5": 8, "vgg": 6, "edgecnn": 6, "resnet20": 3, "mobilenet": 5, "conv1d": 6, "conv3d": 4}
FULL_TRAIN_SAMPLES = 60000
COLUMNS = ("model", "params", "epochs", "train_samples", "train_s", "test_top1", "source", "size_bytes")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(zoo.available()), help="comma-separated zoo names")
    parser.add_argument("--epochs", type=int, help="epochs for every model (default: per model, see DEFAULT_EPOCHS)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="peak of the cosine-decayed Adam rate")
    parser.add_argument("--source", default="auto", help="auto | full | keras-cache | debian | embedded")
    parser.add_argument("--train-limit", type=int, help="train on the first N training images only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/zoo"))
    parser.add_argument("--report", type=Path, default=Path("bench/results/train_zoo.md"))
    parser.add_argument("--render-only", action="store_true", help="only rewrite --report from OUT/results.json")
    parser.add_argument("--ship", action="store_true",
                        help=f"copy models <= {SHIP_LIMIT_BYTES} bytes with >= {SHIP_MIN_TOP1}%% test top-1 into "
                             f"{zoo.WEIGHTS_DIR}")
    return parser.parse_args(argv)


def train_one(name: str, raw: data.Dataset, args: argparse.Namespace) -> tuple[dict, keras.Model]:
    """Train one model from a fixed seed; return its result row and the trained model."""
    keras.utils.set_random_seed(args.seed)
    dataset = data.make_view(raw, zoo.dataset_for(name), train_limit=args.train_limit)
    model = zoo.build(name, dataset.input_shape)
    epochs = args.epochs or DEFAULT_EPOCHS.get(name, 5)
    steps = epochs * int(np.ceil(len(dataset.x_train) / args.batch_size))
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(args.learning_rate, steps)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start_s = time.perf_counter()
    model.fit(dataset.x_train, dataset.y_train, batch_size=args.batch_size, epochs=epochs, verbose=2)
    train_s = time.perf_counter() - start_s
    _, test_top1 = model.evaluate(dataset.x_test, dataset.y_test, batch_size=512, verbose=0)
    row = {"model": name, "params": int(model.count_params()), "epochs": epochs,
           "train_samples": len(dataset.x_train), "train_s": round(train_s, 1), "test_top1": round(100 * test_top1, 2),
           "test_samples": len(dataset.x_test), "source": dataset.source, "view": dataset.view, "seed": args.seed,
           "batch_size": args.batch_size, "learning_rate": args.learning_rate}
    return row, model


def save_clean(name: str, trained: keras.Model, out_dir: Path) -> Path:
    """Save the weights in a fresh, uncompiled copy: no optimizer state, so the file is a third of the size."""
    clean = zoo.build(name, trained.input_shape[1:])
    clean.set_weights(trained.get_weights())
    path = out_dir / f"{name}.keras"
    with atomic_path(path) as tmp_path:
        clean.save(tmp_path)
    return path


def ship(name: str, path: Path, test_top1: float) -> str:
    """Copy a saved model into the package's weights folder if small and accurate enough; say what happened."""
    size_bytes = path.stat().st_size
    if size_bytes > SHIP_LIMIT_BYTES:
        return f"not shipped: {size_bytes} bytes > {SHIP_LIMIT_BYTES}"
    if test_top1 < SHIP_MIN_TOP1:
        return f"not shipped: test top-1 {test_top1}% < {SHIP_MIN_TOP1}%"
    target = zoo.weights_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp_path:
        shutil.copyfile(path, tmp_path)
    return f"shipped to {target} ({size_bytes} bytes)"


def merge_results(results_path: Path, rows: list[dict]) -> list[dict]:
    """Rows already in results.json, with this run's rows replacing those of the same model."""
    previous = json.loads(results_path.read_text()) if results_path.is_file() else []
    merged = {row["model"]: row for row in previous}
    merged.update({row["model"]: row for row in rows})
    order = {name: index for index, name in enumerate(zoo.available())}
    return sorted(merged.values(), key=lambda row: order.get(row["model"], len(order)))


def reproduce_command(row: dict) -> str:
    limit = f" --train-limit {row['train_samples']}" if row["train_samples"] < FULL_TRAIN_SAMPLES else ""
    return (f"python bench/train_zoo.py --models {row['model']} --epochs {row['epochs']}{limit} --seed {row['seed']} "
            f"--source {row['source']} --batch-size {row['batch_size']} --learning-rate {row['learning_rate']} --ship")


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(row.get(column, "")) for column in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def machine_line() -> str:
    import tensorflow as tf

    return (f"{cpu_model()}, {os.cpu_count()} CPU cores, Python "
            f"{platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}")


def write_report(path: Path, rows: list[dict]) -> None:
    text = (f"# Zoo training results (bench/train_zoo.py)\n\nMachine: {machine_line()}.\n"
            f"Each row is the latest run of that model; `train_s` is the wall time of `fit` alone; `test_top1` is "
            f"top-1 accuracy (%) on the test split of the same source; `size_bytes` is the saved, uncompiled "
            f".keras file; `train_samples` < 60000 means a run with --train-limit. Times come from a machine shared "
            f"with other jobs: read them as indicative.\n\n{markdown_table(rows)}\n\nReproduce (same seed; "
            f"multi-threaded CPU float sums may differ in the last bits):\n\n```\n"
            + "\n".join(reproduce_command(row) for row in rows) + "\n```\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp_path:
        tmp_path.write_text(text)


def record(args: argparse.Namespace, rows: list[dict]) -> None:
    """Merge rows into OUT/results.json and re-render the report (after every model, so a stopped run keeps them)."""
    results_path = args.out / "results.json"
    all_rows = merge_results(results_path, rows)
    with atomic_path(results_path) as tmp_path:
        tmp_path.write_text(json.dumps(all_rows, indent=1))
    write_report(args.report, all_rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(names) - set(zoo.available()))
    if unknown:
        print(f"train_zoo: unknown model(s) {', '.join(unknown)}; available: {', '.join(zoo.available())}",
              file=sys.stderr)
        return 2
    if args.render_only:
        record(args, [])
        return 0
    raw = data.load_raw(args.source)
    print(f"Fashion-MNIST source: {raw.source} ({len(raw.x_train)} train, {len(raw.x_test)} test)")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        row, model = train_one(name, raw, args)
        path = save_clean(name, model, args.out)
        rows.append({**row, "size_bytes": path.stat().st_size})
        print(f"{name}: top-1 {row['test_top1']}% in {row['train_s']} s, saved {path}"
              + (f"; {ship(name, path, row['test_top1'])}" if args.ship else ""))
        record(args, rows)
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
