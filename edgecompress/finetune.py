"""One-shot fine-tuning of a whole compressed model: on labels, or distilled from the original model's
outputs (no labels needed); early stopping on a held-out validation split; cosine or plateau LR schedule."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import keras
import numpy as np
from keras import ops

from edgecompress.errors import ConfigError, DataError
from edgecompress.progress import Progress

# learning_rate="auto" tries each on a short run and keeps the one with the lowest validation loss. Measured
# (bench/compress_table.py, 1 epoch): ResNet-20 at 30% of params, a CP-heavy hybrid plan reached 70.6% top-1 at
# 5e-4 and 85.3% at 1e-4, while a Tucker plan reached 84.1% at 5e-4 and 80.8% at 1e-4: no single rate suits both.
LEARNING_RATE_CANDIDATES = (1e-3, 5e-4, 2e-4, 1e-4)
PROBE_SAMPLES = 2048  # per candidate, at most a quarter of the training split
RECOVERY_RATES = (5e-4, 1e-4)  # brief_recovery_accuracy: the better of a fast and a gentle short run
RECOVERY_SAMPLES = 2048  # one pass over at most this many fine-tuning samples per rate


@dataclass
class FinetuneConfig:
    epochs: int = 2
    batch_size: int = 64
    learning_rate: float | str = "auto"  # a peak rate, or "auto": probe LEARNING_RATE_CANDIDATES first
    schedule: str = "cosine"  # "cosine" (decay to 0 over all steps) or "plateau" (halve when val loss stalls)
    distill: bool = False
    distill_loss: str = "kl"  # "kl" on temperature-softened outputs, or "mse" on the outputs
    temperature: float = 2.0
    validation_fraction: float = 0.1
    patience: int = 2
    seed: int = 0


@dataclass
class FinetuneResult:
    model: keras.Model
    history: dict = field(default_factory=dict)
    epochs_run: int = 0
    learning_rate: float = 0.0
    probe_losses: dict = field(default_factory=dict)  # validation loss after each candidate's probe


def outputs_probabilities(model: keras.Model) -> bool:
    """True when the model ends in a softmax (outputs probabilities, not logits)."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return isinstance(last, keras.layers.Softmax) or activation is keras.activations.softmax


def top1_pct(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy in percent."""
    predictions = [np.argmax(model.predict_on_batch(_float(x[i:i + batch_size])), axis=-1)
                   for i in range(0, len(x), batch_size)]
    return float(100.0 * np.mean(np.concatenate(predictions) == np.asarray(y)))


def distill_loss(probabilities: bool, kind: str = "kl", temperature: float = 2.0) -> Callable:
    """Loss between the teacher's outputs (y_true) and the student's (y_pred)."""
    if kind == "mse":
        return keras.losses.MeanSquaredError()
    if probabilities:  # no logits to soften: KL between the two output distributions
        return keras.losses.KLDivergence()

    def softened_kl(teacher_logits, student_logits):
        teacher = ops.softmax(teacher_logits / temperature, axis=-1)
        log_student = ops.log_softmax(student_logits / temperature, axis=-1)
        log_teacher = ops.log_softmax(teacher_logits / temperature, axis=-1)
        return temperature ** 2 * ops.sum(teacher * (log_teacher - log_student), axis=-1)

    return softened_kl


def _float(x: np.ndarray) -> np.ndarray:
    return x if x.dtype == np.float32 else x.astype(np.float32)


def _targets(model, x, y, config: FinetuneConfig, teacher) -> tuple[np.ndarray, Callable, list]:
    probabilities = outputs_probabilities(model)
    if config.distill:
        if teacher is None:
            raise DataError("distillation needs the original model as teacher")
        soft = np.concatenate([teacher.predict_on_batch(_float(x[i:i + 512])) for i in range(0, len(x), 512)])
        return soft, distill_loss(probabilities, config.distill_loss, config.temperature), []
    if y is None:
        raise DataError("fine-tuning data has no labels 'y'; add y=integer labels to the .npz, or use --distill "
                        "to learn from the original model's outputs instead")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)
    return np.asarray(y), loss, ["accuracy"]


def _split(x, targets, fraction: float, seed: int):
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(len(x) * fraction)) if len(x) >= 10 else 0
    val, train = order[:n_val], order[n_val:]
    validation = (_float(x[val]), targets[val]) if n_val else None
    return _float(x[train]), targets[train], validation


class _ProgressCallback(keras.callbacks.Callback):
    def __init__(self, progress: Progress, epochs: int):
        super().__init__()
        self.report, self.epochs = progress, epochs

    def on_epoch_end(self, epoch, logs=None):
        self.report("finetune", epoch + 1, self.epochs)


def check_learning_rate(value) -> float | str:
    """A positive finite rate or "auto"; ConfigError otherwise."""
    if value == "auto":
        return value
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = float("nan")
    if not np.isfinite(rate) or rate <= 0:
        raise ConfigError(f"learning rate {value!r} is not a positive number; use e.g. 5e-4, or 'auto'")
    return rate


def _short_runs(model: keras.Model, x, targets, loss, rates, count: int, seed: int, batch_size: int):
    """For each rate, one pass over the same `count` random samples from the same start; yields the rate while
    the model holds that run's weights, and restores the starting weights afterwards."""
    start = model.get_weights()
    picked = np.random.default_rng(seed).permutation(len(x))[:count]
    x_picked, targets_picked = _float(x[picked]), np.asarray(targets)[picked]
    for rate in rates:
        keras.utils.set_random_seed(seed)
        model.compile(optimizer=keras.optimizers.Adam(rate), loss=loss)
        model.fit(x_picked, targets_picked, batch_size=batch_size, epochs=1, verbose=0, shuffle=True)
        yield rate
        model.set_weights(start)


def probe_learning_rate(model: keras.Model, x, targets, validation, loss, config: FinetuneConfig) -> tuple[float, dict]:
    """The candidate rate whose short run (same start, same samples) ends at the lowest validation loss.

    The model's weights are restored after every probe. Without a validation split (fewer than 10 samples)
    5e-4 is used unprobed.
    """
    if validation is None:
        return 5e-4, {}
    count = max(min(len(x), config.batch_size), min(len(x) // 4, PROBE_SAMPLES))
    losses = {}
    for rate in _short_runs(model, x, targets, loss, LEARNING_RATE_CANDIDATES, count, config.seed, config.batch_size):
        value = float(model.evaluate(*validation, batch_size=256, verbose=0))
        losses[rate] = value if np.isfinite(value) else float("inf")
    return min(losses, key=losses.get), losses


def brief_recovery_accuracy(model: keras.Model, x, y, x_eval, y_eval, seed: int = 0, batch_size: int = 64) -> float:
    """Top-1 (%) on (x_eval, y_eval) after the better of short label fine-tunes (one pass over at most
    RECOVERY_SAMPLES of (x, y) at each of RECOVERY_RATES, from the same start): a floor for what one-shot
    fine-tuning recovers, used to judge an accuracy-drop budget. The model's weights are restored.

    The accuracy before any of them counts too: on a plan close to a converged original, a short run at these
    rates can lose a point the one-shot fine-tune (best weights kept) would not (measured on the demo's edge
    CNN: the uncompressed model itself judged at -1.2 pt, so no plan met accuracy-drop=1.0)."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model))
    before_pct = top1_pct(model, x_eval, y_eval)
    runs = _short_runs(model, x, y, loss, RECOVERY_RATES, min(len(x), RECOVERY_SAMPLES), seed, batch_size)
    return max([before_pct, *(top1_pct(model, x_eval, y_eval) for _ in runs)])


def _optimizer_and_callbacks(config: FinetuneConfig, rate: float, steps: int, validation) -> tuple:
    monitor = "val_loss" if validation is not None else "loss"
    callbacks = [keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience, restore_best_weights=True)]
    if config.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(rate, max(1, steps * config.epochs))
    elif config.schedule == "plateau":
        learning_rate = rate
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=1))
    else:
        raise ConfigError(f"unknown learning-rate schedule {config.schedule!r}; use 'cosine' or 'plateau'")
    return keras.optimizers.Adam(learning_rate), callbacks


def finetune(model: keras.Model, x: np.ndarray, y: np.ndarray | None = None, config: FinetuneConfig | None = None,
             teacher: keras.Model | None = None, progress: Progress | None = None) -> FinetuneResult:
    """Train the whole model once (in place) and return it with its history.

    Raises:
        DataError: no labels and no distillation, or no teacher to distill from.
    """
    config = config or FinetuneConfig()
    rate = check_learning_rate(config.learning_rate)
    targets, loss, metrics = _targets(model, x, y, config, teacher)
    x_train, y_train, validation = _split(x, targets, config.validation_fraction, config.seed)
    probe_losses = {}
    if rate == "auto":
        rate, probe_losses = probe_learning_rate(model, x_train, y_train, validation, loss, config)
    steps = int(np.ceil(len(x_train) / config.batch_size))
    optimizer, callbacks = _optimizer_and_callbacks(config, rate, steps, validation)
    if progress:
        callbacks.append(_ProgressCallback(progress, config.epochs))
    keras.utils.set_random_seed(config.seed)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    history = model.fit(x_train, y_train, batch_size=config.batch_size, epochs=config.epochs,
                        validation_data=validation, callbacks=callbacks, verbose=0, shuffle=True)
    return FinetuneResult(model, dict(history.history), len(history.epoch), rate, probe_losses)
