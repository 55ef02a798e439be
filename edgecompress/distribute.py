"""tf.distribute strategies for fine-tuning, chosen by name: split the CPU into logical devices, read and check
TF_CONFIG, and start a multi-worker cluster with a bounded wait for its peers. Trains nothing (finetune.py does).

Two things TensorFlow fixes when it first initialises its runtime (first op, first model built, first device
listed), so they must come before: logical CPU devices (`split_cpu`) and a multi-worker strategy (`strategy_for(
"multiworker")`, cached, so later calls return the same one). Mirrored strategies can be made at any time.
"""
from __future__ import annotations

import json
import os
import socket
import time

import tensorflow as tf
from tensorflow.python.eager import context  # no public API configures the coordination service

from edgecompress.errors import ConfigError, EdgeCompressError

CHOICES = ("auto", "none", "mirrored", "multiworker")
CLUSTER_JOBS = ("chief", "worker")  # the TF_CONFIG jobs that train (an "evaluator" or "ps" job does not)
TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["127.0.0.1:PORT0", "127.0.0.1:PORT1"]}, '
                     '"task": {"type": "worker", "index": I}}')
PEER_POLL_S = 0.2

_STRATEGIES: dict[str, tf.distribute.Strategy] = {}


class DistributeTimeoutError(EdgeCompressError):
    """A multi-worker peer did not come up within the timeout (exit code 2, like every EdgeCompressError)."""


def check_name(name: str) -> str:
    """`name` if it is one of CHOICES; ConfigError otherwise."""
    if name not in CHOICES:
        raise ConfigError(f"unknown distribute strategy {name!r}; use one of {', '.join(CHOICES)}")
    return name


def split_cpu(count: int) -> int:
    """Make the host CPU `count` logical devices, so "mirrored" runs `count` replicas on one machine.

    Must run before TensorFlow initialises its devices (before any op, model or device listing in this process);
    calling it again with the same count is harmless. Raises ConfigError when it is too late.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return count
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as error:
        raise ConfigError(f"cannot split the CPU into {count} logical devices: TensorFlow has already initialised "
                          f"its devices in this process; call edgecompress.distribute.split_cpu({count}) first, "
                          "before any model is loaded or built") from error
    return count


def read_tf_config() -> dict:
    """TF_CONFIG parsed and checked: {"cluster": {job: [HOST:PORT, ...]}, "task": {"type", "index"}}."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ConfigError(f"distribute 'multiworker' needs TF_CONFIG; set it on every worker to {TF_CONFIG_EXAMPLE}")
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({error}); set it to {TF_CONFIG_EXAMPLE}") from None
    cluster = parsed.get("cluster") if isinstance(parsed, dict) else None
    if not isinstance(cluster, dict) or not any(isinstance(cluster.get(job), list) for job in CLUSTER_JOBS):
        raise ConfigError("TF_CONFIG has no 'cluster' with a 'worker' list of HOST:PORT; "
                          f"set it to {TF_CONFIG_EXAMPLE}")
    _check_task(parsed.get("task"), cluster)
    for address in _addresses(cluster):
        _host_port(address)
    return parsed


def _check_task(task, cluster: dict) -> None:
    job = task.get("type") if isinstance(task, dict) else None
    index = task.get("index") if isinstance(task, dict) else None
    if job not in CLUSTER_JOBS or not isinstance(cluster.get(job), list) or not isinstance(index, int) \
            or not 0 <= index < len(cluster[job]):
        raise ConfigError(f"TF_CONFIG 'task' {task!r} names no task of the cluster; give this worker its own "
                          f"{{\"type\": \"worker\", \"index\": I}} with I below {len(cluster.get('worker', []))}")


def _addresses(cluster: dict) -> list[str]:
    return [address for job in CLUSTER_JOBS for address in cluster.get(job) or []]


def _host_port(address) -> tuple[str, int]:
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"TF_CONFIG address {address!r} is not HOST:PORT; set it to {TF_CONFIG_EXAMPLE}")
    return host, int(port)


def tf_config_workers() -> int:
    """How many training tasks TF_CONFIG names (0 when it is unset)."""
    return len(_addresses(read_tf_config()["cluster"])) if os.environ.get("TF_CONFIG") else 0


def resolve(name: str) -> str:
    """The concrete strategy for `name`: "auto" is "multiworker" when TF_CONFIG names more than one worker, else
    "mirrored" when more than one local GPU, else "none"."""
    if check_name(name) != "auto":
        return name
    if tf_config_workers() > 1:
        return "multiworker"
    return "mirrored" if local_gpus() > 1 else "none"


def strategy_for(name: str, timeout_s: float = 60.0) -> tf.distribute.Strategy:
    """The strategy `name` resolves to, made once per process ("none": TensorFlow's default strategy).

    "mirrored": MirroredStrategy over all local GPUs, else over the logical CPU devices (see split_cpu).
    "multiworker": MultiWorkerMirroredStrategy from TF_CONFIG; call this first thing in the program, before
    TensorFlow runs anything. A peer that does not come up within `timeout_s` raises DistributeTimeoutError.
    """
    resolved = resolve(name)
    if resolved == "none":
        return tf.distribute.get_strategy()
    if resolved not in _STRATEGIES:
        _STRATEGIES[resolved] = _mirrored() if resolved == "mirrored" else _multiworker(timeout_s)
    return _STRATEGIES[resolved]


def _mirrored() -> tf.distribute.MirroredStrategy:
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([device.name for device in devices])


def _multiworker(timeout_s: float) -> tf.distribute.MultiWorkerMirroredStrategy:
    config = read_tf_config()
    if context.context()._initialized:  # MWMS would raise a RuntimeError only after the peers were waited for
        raise ConfigError("distribute 'multiworker' must start before TensorFlow runs anything in this process; "
                          "call edgecompress.distribute.strategy_for('multiworker') first, before loading or "
                          "building a model")
    leader, me, peers = _roles(config)
    if me == leader:
        _wait_for_peers(peers, timeout_s)
    else:
        _bound_registration(config["cluster"], leader, timeout_s)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as error:
        raise DistributeTimeoutError(
            f"multiworker: the leader {leader} did not register this worker within {timeout_s:g} s "
            f"({type(error).__name__}); start every worker named in TF_CONFIG, or raise distribute_timeout_s") from None


def _roles(config: dict) -> tuple[str, str, list[str]]:
    """(leader address, this task's address, the other tasks' addresses); the leader is chief 0, else worker 0."""
    cluster, task = config["cluster"], config["task"]
    me = cluster[task["type"]][task["index"]]
    addresses = _addresses(cluster)
    return addresses[0], me, [address for address in addresses if address != me]


def _wait_for_peers(peers: list[str], timeout_s: float) -> None:
    """Wait until every peer's server accepts a connection. The leader's strategy waits for its peers without
    any timeout (and holds the GIL while it does), so it must not start before they are up; the other workers
    start their servers right away and wait for the leader, bounded by _bound_registration."""
    deadline = time.monotonic() + timeout_s
    waiting = list(peers)
    while waiting:
        waiting = [peer for peer in waiting if not _accepts(peer)]
        if waiting and time.monotonic() >= deadline:
            raise DistributeTimeoutError(f"multiworker: {', '.join(waiting)} did not come up within {timeout_s:g} s; "
                                         "start every worker named in TF_CONFIG, or raise distribute_timeout_s")
        if waiting:
            time.sleep(PEER_POLL_S)


def _accepts(address: str) -> bool:
    try:
        socket.create_connection(_host_port(address), timeout=PEER_POLL_S).close()
        return True
    except OSError:
        return False


def _bound_registration(cluster: dict, leader: str, timeout_s: float) -> None:
    """Configure the coordination service as MultiWorkerMirroredStrategy would, plus a registration timeout
    (without one a worker waits for an absent leader indefinitely). Measured: the error comes about 5 s after
    the timeout (TensorFlow's RegisterTask RPC deadline on top)."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2

    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(cluster[job]))
            for job in CLUSTER_JOBS if cluster.get(job)]
    leader_job = "chief" if cluster.get("chief") else "worker"
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=f"/job:{leader_job}/replica:0/task:0",
        cluster_register_timeout_in_ms=max(1, int(timeout_s * 1000)), coordinated_jobs=jobs)


def local_gpus() -> int:
    return len(tf.config.list_physical_devices("GPU"))


def is_leader() -> bool:
    """Whether this process is the one that writes outputs: always, unless it is a multi-worker task other than
    the leader (chief 0, else worker 0)."""
    if "multiworker" not in _STRATEGIES:
        return True
    leader, me, _ = _roles(read_tf_config())
    return me == leader


def replicas(strategy: tf.distribute.Strategy) -> int:
    return int(strategy.num_replicas_in_sync)


def is_multiworker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
