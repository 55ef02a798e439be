"""`edgecompress compress MODEL --data CALIB.npz -o OUT/`: choose (method, rank) per layer under a budget, replace
the layers, optionally fine-tune once; writes OUT/model.keras and OUT/plan.json together or not at all."""
from __future__ import annotations

import argparse
import contextlib
import functools
from pathlib import Path

from edgecompress.errors import ConfigError, DataError
from edgecompress.progress import progress_reporter

BUDGET_HELP = "params=F | flops=F (fraction of the conv/dense layers' original) | accuracy-drop=D (top-1 points " \
              "on the labelled --data, judged after a brief fine-tune when --finetune-data has labels) " \
              "| latency=F@TARGET (the whole model at most F of the original's latency on TARGET, timed there)"
DEFAULT_LATENCY_GUARD = "host"
PREPROCESS_HELP_SHORT = ("how stored images become model inputs: none (default), scale01, scale-1-1, "
                         "imagenet-caffe, imagenet-torch; declared once, recorded in plan.json")
MIRRORED_CPU_REPLICAS = 2  # logical CPU devices for --distribute mirrored on a host without GPUs


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compress", help="factorize layers under a budget (similarity DSE or a baseline), optionally fine-tune",
        description="Choose a factorization method and rank per layer by feature-map similarity on calibration "
                    "data (or a baseline), meet a global budget, replace the layers, and optionally fine-tune "
                    "the whole model once. Writes OUT/model.keras and OUT/plan.json.")
    parser.add_argument("model", help="a .keras/.h5 file, or zoo:NAME for a built-in model")
    parser.add_argument("--data", required=True,
                        help="calibration data: an .npz with x (and y for accuracy-drop), a folder with one "
                             "sub-folder of images per class, or TFRecord files (see --preprocess, --tfrecord-spec)")
    parser.add_argument("-o", "--out", required=True, help="output directory (created if missing)")
    # Method and selection names come from their registries when the run starts (an unknown one is one line,
    # exit 2, listing them), so building this parser does not import TensorFlow.
    parser.add_argument("--methods", default="hybrid", help="hybrid (choose per layer among all registered "
                                                             "methods) or a comma-separated list, e.g. tucker,svd")
    parser.add_argument("--select", default="similarity",
                        help="rank selection: similarity (ours) or a baseline: vbmf, energy, uniform; or fbp: "
                             "filter pruning instead of factorization, under the same budgets")
    parser.add_argument("--prune", type=_prune_value, metavar="F",
                        help="first remove this fraction (0 < F < 1) of the prunable filters (channels tied by "
                             "residual adds, concatenations and depthwise convs go together), then factorize what "
                             "remains; --budget stays relative to the original model. auto: try 0, 0.1 and 0.2 "
                             "and keep the one whose compressed model judges best on --data")
    parser.add_argument("--prune-criterion", default="energy", metavar="NAME",
                        help="which filters go first: energy (the energy each channel puts into the layers that "
                             "read it, on --data; default) or l1 / l2 (filter norm, the classic FBP); the layers "
                             "reading pruned channels are then refitted by least squares on --data")
    parser.add_argument("--no-prune-refit", dest="prune_refit", action="store_false",
                        help="drop pruned channels without refitting the layers that read them (classic FBP)")
    parser.add_argument("--budget", help=BUDGET_HELP + "; default: keep each layer's similarity >= --threshold")
    parser.add_argument("--finetune-data", help="training data for one-shot fine-tuning, in any --data form "
                                                 "(labels needed unless --distill)")
    parser.add_argument("--preprocess", default="none", help=PREPROCESS_HELP_SHORT)
    parser.add_argument("--tfrecord-spec", metavar="SPEC", help="TFRecord feature names, image=KEY,label=KEY")
    parser.add_argument("--epochs", type=int, help="fine-tuning epochs (default 2)")
    parser.add_argument("--distill", action="store_true", help="fine-tune on the original model's outputs "
                        "(no labels needed; uses --data when no --finetune-data is given)")
    _add_tuning_arguments(parser)
    parser.set_defaults(func=run)


def _add_tuning_arguments(parser) -> None:
    group = parser.add_argument_group("tuning")
    group.add_argument("--metric", help="similarity metric: nmse, cosine or cka (default: the measured best)")
    group.add_argument("--decompose", default="data-aware",
                       help="data-aware (default): fit each block to the layer's outputs on --data (whitened "
                            "decomposition, then a least-squares refit of its last factor); plain: to its weights")
    group.add_argument("--capture", default="sequential",
                       help="sequential (default): refit each final block on the inputs the already compressed "
                            "layers before it produce; independent: on the original model's inputs")
    group.add_argument("--reconstruct", type=int, default=0, metavar="STEPS",
                       help="after the closed-form fit, train each chosen block alone for STEPS Adam steps to "
                            "match the layer's outputs on --data (labels not needed; kept only where it scores "
                            "higher on held-out samples). Default 0: off")
    group.add_argument("--rule", default="allocate", choices=("allocate", "threshold"),
                       help="meet the budget by greedy allocation on the fronts or one similarity threshold")
    group.add_argument("--threshold", type=float, default=0.95, help="per-layer similarity without --budget")
    group.add_argument("--layer", action="append", default=[], metavar="NAME=SPEC",
                       help="per-layer override, repeatable: NAME or re:PATTERN = skip | tucker,cp | tucker:0.25")
    add_latency_guard_arguments(group)
    group.add_argument("--target-precision", choices=("fp32", "fp16", "int8"), default="fp32",
                       help="precision blocks and plans are timed at on --target (match the export you will ship: "
                            "int8 kernels prefer other ranks and may not pay where fp32 does; int8 implies "
                            "--int8-faithful); default: %(default)s")
    group.add_argument("--int8-faithful", action="store_true",
                       help="for plans you will ship as full int8: hybrid leaves out methods whose blocks lose int8 "
                            "fidelity (CP: 96.5%% int8 top-1 agreement against Tucker's 99.4%% on edgecnn)")
    group.add_argument("--memory-cap-mb", type=float, default=1024, help="memory for captured samples (MB)")
    group.add_argument("--jobs", type=int, default=None,
                       help="layers searched at once, in threads sharing the captured samples (default: the cores "
                            "this process may use); the plan is the same for any value")
    group.add_argument("--distribute", default="auto", metavar="STRATEGY",
                       help="fine-tuning under tf.distribute: auto (multiworker when TF_CONFIG names several "
                            "workers, mirrored on several local GPUs, else none), none, mirrored (all local GPUs, "
                            f"or {MIRRORED_CPU_REPLICAS} logical CPUs), multiworker (TF_CONFIG; start one process "
                            "per worker, each with the same arguments; the first worker writes OUT). --batch-size "
                            "is per replica; the learning rate scales with the replicas")
    group.add_argument("--distribute-timeout", type=float, default=60.0, metavar="S",
                       help="seconds a multiworker run waits for its peers before failing (default 60)")
    group.add_argument("--learning-rate", default="auto",
                       help="fine-tuning peak learning rate, or 'auto' (default): probe 1e-3, 5e-4, 2e-4, 1e-4 on "
                            "short runs and keep the one with the lowest validation loss")
    group.add_argument("--batch-size", type=int, default=64, help="fine-tuning batch size")
    group.add_argument("--seed", type=int, default=0)


def add_latency_guard_arguments(group) -> None:
    """--latency-guard TARGET (default host) and --no-latency-guard, shared by compress and demo."""
    group.add_argument("--target", "--latency-guard", dest="latency_guard", metavar="TARGET",
                       default=DEFAULT_LATENCY_GUARD,
                       help="price blocks in measured latency on TARGET (a name from `edgecompress target list`): "
                            "time each candidate block and its layer there, offer only blocks no slower, on ranks "
                            "aligned to the runtime's channel tile (default: %(default)s; similarity selection)")
    group.add_argument("--no-latency-guard", dest="latency_guard", action="store_const", const=None,
                       help="offer every block, timed or not (FLOPs and params only, as before the guard)")


def _prune_value(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction: give 0 < F < 1, e.g. 0.2, or auto") from None


def _overrides(specs: list[str]) -> dict[str, str]:
    overrides = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name or not value:
            raise ConfigError(f"--layer {spec!r}: expected NAME=SPEC, e.g. conv1=skip, re:conv.*=tucker,cp or "
                            f"dense=svd:0.25")
        overrides[name] = value
    return overrides


def build_config(args):
    from edgecompress.compress import CompressConfig, check_prune
    from edgecompress.finetune import FinetuneConfig, check_learning_rate
    from edgecompress.prune.criteria import get_criterion
    from edgecompress.select.budgets import parse_budget
    from edgecompress.select.similarity import DEFAULT_METRIC

    if args.epochs is not None and not (args.finetune_data or args.distill):
        raise ConfigError("--epochs needs --finetune-data TRAIN.npz (or --distill to fine-tune on --data)")
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
    if args.prune is not None:
        check_prune(args.prune)
    get_criterion(args.prune_criterion)
    if args.distribute not in ("auto", "none") and not (args.finetune_data or args.distill):
        raise ConfigError(f"--distribute {args.distribute} distributes fine-tuning: give --finetune-data TRAIN "
                          "(or --distill)")
    if args.distribute_timeout <= 0:
        raise ConfigError(f"--distribute-timeout must be > 0 seconds, got {args.distribute_timeout:g}")
    finetune = FinetuneConfig(epochs=args.epochs or 2, distill=args.distill,
                              learning_rate=check_learning_rate(args.learning_rate),
                              batch_size=args.batch_size, seed=args.seed,
                              distribute=args.distribute, distribute_timeout_s=args.distribute_timeout)
    budget = parse_budget(args.budget)
    return CompressConfig(methods=args.methods, select=args.select, budget=budget,
                          metric=args.metric or DEFAULT_METRIC, decompose=args.decompose,
                          capture=args.capture, reconstruct_steps=args.reconstruct, rule=args.rule,
                          threshold=args.threshold,
                          layers=_overrides(args.layer), memory_cap_bytes=int(args.memory_cap_mb * 2 ** 20),
                          latency_guard=args.latency_guard, cost_table=_cost_table_if_needed(args, budget),
                          int8_faithful=args.int8_faithful or args.target_precision == "int8",
                          finetune=finetune, calibration_name=str(args.data), seed=args.seed,
                          prune=args.prune, prune_criterion=args.prune_criterion, prune_refit=args.prune_refit,
                          jobs=_jobs(args.jobs))


def _jobs(asked: int | None) -> int | None:
    if asked is not None and asked < 1:
        raise ConfigError(f"--jobs must be >= 1, got {asked}")
    return asked


def _cost_table_if_needed(args, budget):
    """edgecompress.bench.CostTable when the run times blocks on a target (imported only then)."""
    if not (args.latency_guard or (budget and budget.kind == "latency")):
        return None
    from edgecompress.bench import CostTable

    if args.target_precision == "fp32":
        return CostTable
    return functools.partial(CostTable, precision=args.target_precision)


def _load_inputs(args, config):
    """The model, calibration (x, y) and fine-tuning (x, y) arrays, and plan.json's record of where they came from."""
    from edgecompress import models
    from edgecompress.compress import calibration_limit
    from edgecompress.sources import check_preprocess, open_source

    check_preprocess(args.preprocess)
    model = models.load(args.model)
    options = dict(model=model, preprocess=args.preprocess, feature_spec=args.tfrecord_spec)
    calibration_source = open_source(args.data, **options)
    calibration = calibration_source.arrays(None if calibration_source.in_memory else calibration_limit(model))
    records = {"calibration": {**calibration_source.to_record(), "samples_used": len(calibration[0])}}
    finetune_data, finetune_source = None, None
    if args.finetune_data:
        finetune_source = open_source(args.finetune_data, need_labels=not args.distill, **options)
        if finetune_source.in_memory:
            finetune_data = finetune_source.arrays()
            records["finetune"] = {**finetune_source.to_record(), "samples_used": len(finetune_data[0])}
        else:  # streamed batch by batch through the fine-tune, never read whole
            finetune_data = finetune_source.batches(args.batch_size)
            records["finetune"] = {**finetune_source.to_record(), "samples_used": finetune_source.count,
                                   "streamed": True}
    elif args.distill:
        finetune_data = calibration
    return model, calibration, finetune_data, records, finetune_source


def _start_distribution(args) -> bool:
    """Set up what --distribute needs before TensorFlow runs anything: the multi-worker cluster (waiting at most
    --distribute-timeout for the peers) or logical CPUs for mirrored without GPUs. Whether this process writes
    the outputs: every process but the first worker of a multi-worker run does."""
    if not (args.finetune_data or args.distill):
        return True
    from edgecompress import distribute

    name = distribute.resolve(distribute.check_name(args.distribute))
    if name == "multiworker":
        distribute.strategy_for(name, args.distribute_timeout)
        return distribute.is_leader()
    if name == "mirrored" and not distribute.local_gpus():
        distribute.split_cpu(MIRRORED_CPU_REPLICAS)
    return True


@contextlib.contextmanager
def _output_dir(path: Path):
    """Create the output directory if needed; remove it again if this run created it and leaves it empty."""
    created = not path.exists()
    if path.exists() and not path.is_dir():
        raise DataError(f"-o {path}: exists and is not a directory; give a directory for model.keras and plan.json")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"-o {path}: cannot create the output directory ({error.strerror}); "
                        f"give a writable directory") from error
    try:
        yield path
    finally:
        if created and path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def write_outputs(out_dir: Path, compressed) -> None:
    """model.keras and plan.json, each through a temporary file renamed into place only when both are written."""
    from edgecompress.io import atomic_path

    with atomic_path(out_dir / "model.keras") as model_tmp, atomic_path(out_dir / "plan.json") as plan_tmp:
        compressed.model.save(model_tmp)
        plan_tmp.write_text(compressed.plan.dumps() + "\n")


def _summary(compressed, out_dir: Path) -> str:
    plan, stats = compressed.plan, compressed.stats
    totals = plan.totals()
    flops_cut = 1 - totals["flops_after"] / totals["flops_before"] if totals["flops_before"] else 0.0
    replaced = sum(1 for layer in plan.layers if layer.method)
    pruned = sum(1 for layer in plan.layers if layer.channels and layer.channels[1] < layer.channels[0])
    pruned_text = f", {pruned} pruned" if plan.pruning is not None else ""
    if plan.budget.get("prune_asked") == "auto":
        pruned_text += f" (--prune auto chose {plan.budget['prune']:g})"
    return (f"{out_dir}: {replaced}/{len(plan.layers)} layers factorized{pruned_text}; "
            f"conv params cut {100 * plan.cut('conv'):.1f}%, "
            f"dense {100 * plan.cut('dense'):.1f}%, FLOPs {100 * flops_cut:.1f}%; "
            + (f"pruning {stats['prune_s']:.1f}s" if plan.budget.get("select") == "fbp" else
               f"capture {stats.get('capture_s', 0):.1f}s, search {stats.get('search_s', 0):.1f}s")
            + _reconstruct_text(stats) + _finetune_text(stats) + _latency_line(plan))


def _reconstruct_text(stats: dict) -> str:
    if "reconstruct_s" not in stats:
        return ""
    return f", reconstruction {stats['reconstruct_s']:.1f}s ({stats['reconstructions_kept']} blocks kept it)"


def _finetune_text(stats: dict) -> str:
    if "finetune_s" not in stats:
        return ""
    replicas = stats.get("finetune_replicas", 1)
    where = f" on {replicas} replicas ({stats['finetune_strategy']})" if replicas > 1 else ""
    return f", fine-tuning {stats['finetune_s']:.1f}s{where}"


def _latency_line(plan) -> str:
    """Asked vs measured on the target: the whole model timed in context where it was, else the searched
    layers, each block timed alone on the cost table."""
    budget = plan.budget
    runtime = f"{budget.get('latency_runtime')} {budget.get('latency_precision', 'fp32')}"
    if budget.get("kind") == "latency" and "latency_model_before_ms" in budget:
        before, after = budget["latency_model_before_ms"], budget["latency_model_after_ms"]
        return (f"\nlatency on {budget['target']} ({runtime}, whole models interleaved, "
                f"{budget.get('latency_plans_timed')} plans timed): asked <= {budget['value']:g}, measured "
                f"{budget['achieved']['latency']:.2f} ({before:.3f} -> {after:.3f} ms); the searched layers timed "
                f"alone: {budget['latency_after_ms'] / budget['latency_before_ms']:.2f}")
    if budget.get("kind") == "latency":
        before, after = budget["latency_before_ms"], budget["latency_after_ms"]
        skipped = f"; not timed whole: {budget['latency_in_context_skipped']}" \
            if "latency_in_context_skipped" in budget else ""
        return (f"\nlatency on {budget['target']} ({runtime}, layers timed alone): asked "
                f"<= {budget['value']:g}, measured {after / before:.2f} ({before:.3f} -> {after:.3f} ms){skipped}")
    if "latency_guard_before_ms" in budget:
        before, after = budget["latency_guard_before_ms"], budget["latency_guard_after_ms"]
        return (f"\nguarded on {budget['latency_guard']} ({runtime}, layers timed alone, "
                f"ranks on multiples of {budget.get('rank_multiple', 1)}): {before:.3f} -> {after:.3f} ms "
                f"({before / after if after else 1:.2f}x)")
    return ""


def run(args) -> int:
    from edgecompress.compress import compress
    from edgecompress.io import terminate_as_interrupt

    config = build_config(args)
    writes_outputs = _start_distribution(args)
    with terminate_as_interrupt():
        model, calibration, finetune_data, records, finetune_source = _load_inputs(args, config)
        if not writes_outputs:
            with progress_reporter() as progress, _reading(finetune_source):
                compress(model, calibration, config, finetune_data=finetune_data, progress=progress)
            print(f"{args.out}: fine-tuned as a multiworker peer; the first worker writes model.keras and plan.json")
            return 0
        with _output_dir(Path(args.out)) as out_dir:
            with progress_reporter() as progress, _reading(finetune_source):
                compressed = compress(model, calibration, config, finetune_data=finetune_data, progress=progress)
            compressed.plan.data = records
            write_outputs(out_dir, compressed)
    print(_summary(compressed, out_dir))
    return 0


@contextlib.contextmanager
def _reading(source):
    """A TensorFlow read error while streaming `source` becomes the DataError naming the file."""
    if source is None or source.in_memory:
        yield
        return
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError as error:
        raise source.diagnose(error) from None
