"""One-shot fine-tuning of a whole compressed model: on labels, or distilled from the original model's
outputs (no labels needed); early stopping on a held-out validation split; cosine or plateau LR schedule.
Arrays or a streamed tf.data.Dataset, on one device or under a tf.distribute strategy (edgecompress.distribute)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from edgecompress import distribute
from edgecompress.errors import ConfigError, DataError
from edgecompress.progress import Progress

# learning_rate="auto" tries each on a short run and keeps the one with the lowest validation loss. Measured
# (bench/compress_table.py, 1 epoch): ResNet-20 at 30% of params, a CP-heavy hybrid plan reached 70.6% top-1 at
# 5e-4 and 85.3% at 1e-4, while a Tucker plan reached 84.1% at 5e-4 and 80.8% at 1e-4: no single rate suits both.
LEARNING_RATE_CANDIDATES = (1e-3, 5e-4, 2e-4, 1e-4)
PROBE_SAMPLES = 2048  # per candidate, at most a quarter of the training split
RECOVERY_RATES = (5e-4, 1e-4)  # brief_recovery_accuracy: the better of a fast and a gentle short run
RECOVERY_SAMPLES = 2048  # one pass over at most this many fine-tuning samples per rate
VALIDATION_BATCHES_UNKNOWN = 8  # validation batches taken from a dataset whose length tf.data cannot tell
SHUFFLE_BUFFER_SAMPLES = 10_000  # a dataset's samples are shuffled through a buffer this big, never materialised


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
    distribute: str = "none"  # "auto", "none", "mirrored" or "multiworker": see edgecompress.distribute
    distribute_timeout_s: float = 60.0  # how long a multi-worker job waits for its peers to come up


@dataclass
class FinetuneResult:
    model: keras.Model
    history: dict = field(default_factory=dict)
    epochs_run: int = 0
    learning_rate: float = 0.0  # the peak rate used: the given or probed rate x replicas
    probe_losses: dict = field(default_factory=dict)  # validation loss after each candidate's probe
    strategy: str = "none"
    replicas: int = 1
    global_batch_size: int = 0  # batch_size x replicas


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


def _loss(model, config: FinetuneConfig, teacher, labelled: bool) -> tuple[Callable, list]:
    """The loss (and metrics) to train on: distillation from `teacher`, else cross-entropy on the labels."""
    probabilities = outputs_probabilities(model)
    if config.distill:
        if teacher is None:
            raise DataError("distillation needs the original model as teacher")
        return distill_loss(probabilities, config.distill_loss, config.temperature), []
    if not labelled:
        raise DataError("fine-tuning data has no labels 'y'; add y=integer labels to the .npz, or use --distill "
                        "to learn from the original model's outputs instead")
    return keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities), ["accuracy"]


def _targets(model, x, y, config: FinetuneConfig, teacher) -> tuple[np.ndarray, Callable, list]:
    loss, metrics = _loss(model, config, teacher, y is not None)
    if config.distill:
        soft = np.concatenate([teacher.predict_on_batch(_float(x[i:i + 512])) for i in range(0, len(x), 512)])
        return soft, loss, metrics
    return np.asarray(y), loss, metrics


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


def finetune(model: keras.Model, x: np.ndarray | tf.data.Dataset, y: np.ndarray | None = None,
             config: FinetuneConfig | None = None, teacher: keras.Model | None = None,
             progress: Progress | None = None) -> FinetuneResult:
    """Train the whole model once (its weights end trained) and return it with its history.

    `x` is an array (with labels `y`), or a tf.data.Dataset of (x, y) batches (of x batches when distilling),
    streamed: its first ceil(validation_fraction x batches) batches validate (VALIDATION_BATCHES_UNKNOWN when
    tf.data cannot tell its length), the rest train, rebatched to `batch_size`.

    Under a strategy (`config.distribute`, see edgecompress.distribute) `batch_size` is per replica: the global
    batch is batch_size x replicas and the peak learning rate scales linearly with the replicas (the given rate,
    or the probed one: "auto" probes on one device, on the original model, before the distributed run; workers
    agree on the rate through their averaged probe losses). The model is copied into the strategy's scope,
    trained there and its weights copied back. Arrays with "none" train exactly as before (Keras fit).

    Raises:
        DataError: no labels and no distillation, or no teacher to distill from.
        ConfigError: a bad learning rate, schedule, strategy name or TF_CONFIG.
    """
    config = config or FinetuneConfig()
    rate = check_learning_rate(config.learning_rate)
    strategy_name = distribute.resolve(config.distribute)
    if strategy_name == "none" and not isinstance(x, tf.data.Dataset):
        return _finetune_arrays(model, x, y, config, teacher, progress, rate)
    strategy = distribute.strategy_for(strategy_name, config.distribute_timeout_s)
    stream = _stream(x, y, config)
    loss, _ = _loss(model, config, teacher, stream.labelled)
    run = _StreamedRun(strategy_name, strategy, loss, teacher if config.distill else None, config)
    return run.finetune(model, stream, rate, progress)


def _finetune_arrays(model, x, y, config: FinetuneConfig, teacher, progress, rate) -> FinetuneResult:
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
    return FinetuneResult(model, dict(history.history), len(history.epoch), rate, probe_losses,
                          global_batch_size=config.batch_size)


# --- streamed and distributed fine-tuning ------------------------------------------------------------------


@dataclass
class _Stream:
    """Samples as unbatched datasets of (x,) or (x, y); train is unshuffled (shuffling is per run)."""

    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    train_samples: int
    labelled: bool
    shuffle_samples: int


def _stream(x, y, config: FinetuneConfig) -> _Stream:
    if isinstance(x, tf.data.Dataset):
        return _stream_from_dataset(x, y, config)
    labels = None if config.distill or y is None else np.asarray(y)
    x_train, y_train, validation = _split(x, np.zeros(len(x)) if labels is None else labels,
                                          config.validation_fraction, config.seed)
    columns = (x_train,) if labels is None else (x_train, y_train)
    val_columns = None if validation is None else validation[:len(columns)]
    return _Stream(tf.data.Dataset.from_tensor_slices(columns),
                   None if val_columns is None else tf.data.Dataset.from_tensor_slices(val_columns),
                   len(x_train), labels is not None, len(x_train))


def _stream_from_dataset(dataset: tf.data.Dataset, y, config: FinetuneConfig) -> _Stream:
    if y is not None:
        raise DataError("a tf.data.Dataset carries its own labels: give (x, y) batches and no separate y")
    batches = int(dataset.cardinality())
    if batches == tf.data.INFINITE_CARDINALITY:
        raise DataError("the fine-tuning dataset repeats forever; give it one pass over the data (no .repeat())")
    labelled = not config.distill and isinstance(dataset.element_spec, tuple) and len(dataset.element_spec) >= 2
    columns = dataset.map(lambda *batch: tuple(batch[:2]) if labelled else (batch[0],))
    n_val = _validation_batches(batches, config.validation_fraction)
    train = columns.skip(n_val)
    samples = int(train.reduce(np.int64(0), lambda count, batch: count + tf.shape(batch[0], out_type=tf.int64)[0]))
    return _Stream(train.unbatch(), columns.take(n_val).unbatch() if n_val else None, samples, labelled,
                   SHUFFLE_BUFFER_SAMPLES)


def _validation_batches(batches: int, fraction: float) -> int:
    if batches == tf.data.UNKNOWN_CARDINALITY:
        return VALIDATION_BATCHES_UNKNOWN
    return min(math.ceil(fraction * batches), batches - 1) if batches >= 2 else 0


def _per_sample_loss(loss: Callable, targets, predictions):
    return loss.call(targets, predictions) if isinstance(loss, keras.losses.Loss) else loss(targets, predictions)


def _batch_sums(per_sample_loss, predictions, labels) -> dict:
    """Sums over one replica's batch; every strategy adds them up over replicas, so workers see the same logs."""
    sums = {"loss": tf.reduce_sum(per_sample_loss), "count": tf.cast(tf.shape(per_sample_loss)[0], tf.float32)}
    if labels is not None:
        hits = tf.equal(tf.argmax(predictions, axis=-1), tf.cast(tf.reshape(labels, [-1]), tf.int64))
        sums["correct"] = tf.reduce_sum(tf.cast(hits, tf.float32))
    return sums


def _epoch_logs(step: Callable, batches) -> dict:
    totals: dict[str, float] = {}
    for batch in batches:
        for name, value in step(batch).items():
            totals[name] = totals.get(name, 0.0) + float(value)
    count = max(totals.get("count", 0.0), 1.0)
    logs = {"loss": totals.get("loss", 0.0) / count}
    if "correct" in totals:
        logs["accuracy"] = totals["correct"] / count
    return logs


def _uncompiled_clone(model: keras.Model) -> keras.Model:
    """A copy of `model`'s graph without its compile state: clone_model would rebuild the loss it was compiled
    with (a probe's distillation loss, a user's custom loss), which Keras cannot deserialize by name."""
    compiled = model.compiled
    model.compiled = False
    try:
        return keras.models.clone_model(model)
    finally:
        model.compiled = compiled


class _StreamedRun:
    """Fine-tuning on datasets with a training loop of our own, under any strategy ("none" included).

    Not Keras fit: under a multi-worker MultiWorkerMirroredStrategy Keras 3.15's fit fails twice (its symbolic
    build reduces a nested batch, which collective strategies reject, keras-team/keras#20585; its logs are
    reduced with axis=0, which fails on scalars). The Keras callbacks (early stopping, plateau, progress) are
    reused as they are; losses and accuracy are summed over all replicas, so every worker decides alike.
    """

    def __init__(self, name: str, strategy: tf.distribute.Strategy, loss: Callable, teacher, config: FinetuneConfig):
        self.name, self.strategy, self.loss, self.teacher, self.config = name, strategy, loss, teacher, config
        self.replicas = distribute.replicas(strategy)
        self.global_batch = config.batch_size * self.replicas

    def finetune(self, model: keras.Model, stream: _Stream, rate, progress) -> FinetuneResult:
        self.check_same_model(model)
        probe_losses = {}
        if rate == "auto":
            rate, probe_losses = self.probe(model, stream)
        peak_rate = rate * self.replicas
        steps = math.ceil(stream.train_samples / self.global_batch)
        with self.strategy.scope():
            optimizer, callbacks = _optimizer_and_callbacks(self.config, peak_rate, steps, stream.validation)
        if progress:
            callbacks.append(_ProgressCallback(progress, self.config.epochs))
        keras.utils.set_random_seed(self.config.seed)
        student = self.replica_model(model, optimizer)
        history = self.train(student, stream, callbacks)
        if student is not model:
            model.set_weights(student.get_weights())
        return FinetuneResult(model, history, len(history.get("loss", [])), peak_rate, probe_losses, self.name,
                              self.replicas, self.global_batch)

    def replica_model(self, model: keras.Model, optimizer) -> keras.Model:
        """`model` itself on one device; else a copy whose variables the strategy mirrors. Compiled so the
        callbacks find the optimizer; the optimizer is built here, not lazily inside a replica."""
        with self.strategy.scope():
            student = model if self.name == "none" else _uncompiled_clone(model)
            if student is not model:
                student.set_weights(model.get_weights())
            student.compile(optimizer=optimizer, loss=self.loss, jit_compile=False)
            optimizer.build(student.trainable_variables)
        return student

    def train(self, student: keras.Model, stream: _Stream, callbacks: list) -> dict:
        train_batches = self.distributed(stream.train.shuffle(stream.shuffle_samples, seed=self.config.seed))
        val_batches = None if stream.validation is None else self.distributed(stream.validation)
        train_step, val_step = self.step(student, self.strategy, True), self.step(student, self.strategy, False)
        callback_list = keras.callbacks.CallbackList(callbacks, model=student)
        student.stop_training, history = False, {}
        callback_list.on_train_begin()
        average_statistics = self.statistics_averager(student)
        for epoch in range(self.config.epochs):
            logs = _epoch_logs(train_step, train_batches)
            average_statistics()
            if val_batches is not None:
                logs.update({f"val_{name}": value for name, value in _epoch_logs(val_step, val_batches).items()})
            for name, value in logs.items():
                history.setdefault(name, []).append(value)
            callback_list.on_epoch_end(epoch, logs)
            if student.stop_training:
                break
        callback_list.on_train_end()
        return history

    def statistics_averager(self, student: keras.Model) -> Callable:
        """A function that averages the float non-trainable variables over replicas. Keras 3 gives BatchNorm's
        moving statistics no aggregation, so every replica (and worker) updates its own copy from its own share
        of the batch: without this the workers end with different weights."""
        statistics = [v for v in student.non_trainable_variables if "float" in str(v.dtype)]
        if self.name == "none" or not statistics:
            return lambda: None

        def average():
            local = self.strategy.run(lambda: [tf.identity(v.value) for v in statistics])
            for variable, value in zip(statistics, local):
                variable.assign(self.strategy.reduce("MEAN", value, axis=None))

        return tf.function(average)

    def distributed(self, samples: tf.data.Dataset):
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        batches = samples.batch(self.global_batch).with_options(options).prefetch(tf.data.AUTOTUNE)
        return self.strategy.experimental_distribute_dataset(batches)

    def step(self, student: keras.Model, strategy: tf.distribute.Strategy, training: bool) -> Callable:
        """One global step: every replica runs its share of the batch; returns the sums over all replicas."""
        def replica_step(batch):
            x = tf.cast(batch[0], tf.float32)
            labels = batch[1] if len(batch) > 1 else None
            targets = labels if self.teacher is None else self.teacher(x, training=False)
            with tf.GradientTape() as tape:
                predictions = student(x, training=training)
                per_sample_loss = _per_sample_loss(self.loss, targets, predictions)
                scaled_loss = tf.nn.compute_average_loss(per_sample_loss)
                if student.losses:
                    scaled_loss += tf.nn.scale_regularization_loss(tf.add_n(student.losses))
            if training:
                gradients = tape.gradient(scaled_loss, student.trainable_variables)
                student.optimizer.apply_gradients(zip(gradients, student.trainable_variables))
            return _batch_sums(per_sample_loss, predictions, labels)

        def global_step(batch):
            per_replica = strategy.run(replica_step, args=(batch,))
            return {name: strategy.reduce("SUM", value, axis=None) for name, value in per_replica.items()}

        return tf.function(global_step, reduce_retracing=True)

    def probe(self, model: keras.Model, stream: _Stream) -> tuple[float, dict]:
        """probe_learning_rate on one device (the original model, the default strategy), every candidate from the
        same weights on the same first samples of the shuffled training split; workers average their losses."""
        if stream.validation is None:
            return 5e-4, {}
        count = max(min(stream.train_samples, self.config.batch_size),
                    min(stream.train_samples // 4, PROBE_SAMPLES))
        shuffled = stream.train.shuffle(stream.shuffle_samples, seed=self.config.seed, reshuffle_each_iteration=False)
        one_device = _StreamedRun("none", tf.distribute.get_strategy(), self.loss, self.teacher, self.config)
        picked, validation = one_device.distributed(shuffled.take(count)), one_device.distributed(stream.validation)
        start, losses = model.get_weights(), {}
        for rate in LEARNING_RATE_CANDIDATES:
            keras.utils.set_random_seed(self.config.seed)
            one_device.replica_model(model, keras.optimizers.Adam(rate))
            _epoch_logs(one_device.step(model, one_device.strategy, True), picked)
            value = _epoch_logs(one_device.step(model, one_device.strategy, False), validation)["loss"]
            losses[rate] = value if np.isfinite(value) else float("inf")
            model.set_weights(start)
        losses = self.agreed(losses)
        return min(losses, key=losses.get), losses

    def check_same_model(self, model: keras.Model) -> None:
        """Workers that compressed differently (other data, seed or latency target) would deadlock in the first
        collective on mismatched variables; the spread of their parameter counts tells every worker at once."""
        if not distribute.is_multiworker(self.strategy):
            return
        count = tf.constant(float(model.count_params()), tf.float64)
        mean = self.strategy.reduce("MEAN", count, axis=None)
        spread = float(self.strategy.reduce("MEAN", tf.square(count - mean), axis=None))
        if spread > 0:
            raise ConfigError(f"multiworker: the workers hold different models ({model.count_params()} parameters "
                              "here); give every worker the same model, data, seed and --target")

    def agreed(self, losses: dict) -> dict:
        """The probe losses averaged over workers, so every worker picks the same rate."""
        if not distribute.is_multiworker(self.strategy):
            return losses
        mean = self.strategy.reduce("MEAN", tf.constant(list(losses.values()), tf.float32), axis=None)
        return dict(zip(losses, (float(value) for value in mean.numpy())))


def judge_accuracy_pct(model: keras.Model, x, y, recovery, seed: int) -> float:
    """Top-1 (%) on the labelled calibration data; after a brief fine-tune when there is labelled fine-tuning
    data (`recovery`)."""
    if recovery is None:
        return top1_pct(model, x, y)
    return brief_recovery_accuracy(model, *recovery, x, y, seed=seed)
