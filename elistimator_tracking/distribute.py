"""Data-parallel training through ``tf.distribute``: the model function once per replica.

``Elistimator(model_fn, distribute=strategy)`` builds the model graph with ``strategy``
(``ModelGraph.build``): the input stage reads one *global* batch per step, as without a
strategy; each replica gets its slice of it (replica ``r`` of ``R`` takes examples
``n*r//R`` to ``n*(r+1)//R``, copied to its device by the strategy); the model function
runs once per replica (``strategy.run``) and the strategy's own machinery does the rest:
variables are mirrored, the v1 optimizers all-reduce the gradients in ``apply_gradients``,
and ``tf.metrics`` keep per-replica counts that are summed when read. The loss each
replica's optimizer sees is scaled by ``1 / num_replicas`` (tf.estimator's rule, which the
strategy applies when asked to), so a step on a batch split evenly across replicas
applies the same gradient as one device on the whole batch.

What comes out is one ``TrainSpec`` / ``EvaluationSpec`` / ``PredictSpec`` for the whole
job (``replicated_specs``): the loss averaged over the examples of all replicas, the
metrics' job-wide values, the replicas' predictions concatenated in batch order. The loops,
checkpoints and tracking use them as they use a single device's. Checkpoints hold one copy
of each variable under its plain name (the saver saves mirrored variables once), so they
load without a strategy.

Supported: ``MirroredStrategy`` (several GPUs, or CPU devices) and
``MultiWorkerMirroredStrategy`` (processes configured by ``TF_CONFIG``). Anything else is
refused with a clear error (``checked_strategy``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ._tf import tf, tf2
from .errors import InvalidTypeError, InvalidValueError, WorkerLostError
from .inputs import FeatureKey
from .specs import EvaluationSpec, PredictSpec, TrainSpec, check_model_fn_result

SUPPORTED = (tf2.distribute.MirroredStrategy, tf2.distribute.MultiWorkerMirroredStrategy)
SUM = tf2.distribute.ReduceOp.SUM
#: how long a step waits for the other workers of a multi-worker job before it fails (unless the
#: session's config sets ``operation_timeout_in_ms``): a killed worker is an error, not a hang
PEER_TIMEOUT_MS = 60_000
PEER_ERRORS = (
    tf.errors.DeadlineExceededError,
    tf.errors.UnavailableError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
)
_servers: dict[tuple[str, int], Any] = {}  # this process's tf.distribute.Server, started once


def checked_strategy(strategy: Any) -> Any:
    """``strategy`` when the Elistimator can train with it (None: one device); else a clear error."""
    if strategy is None or isinstance(strategy, SUPPORTED):
        return strategy
    name = type(strategy).__name__
    if not isinstance(strategy, (tf2.distribute.Strategy, tf.distribute.Strategy)):
        raise InvalidTypeError(
            f"distribute must be a tf.distribute strategy (MirroredStrategy or "
            f"MultiWorkerMirroredStrategy) or None, got {name}"
        )
    raise InvalidValueError(
        f"distribute={name} is not supported: the Elistimator trains with "
        "tf.distribute.MirroredStrategy (several devices of one machine) or "
        "tf.distribute.MultiWorkerMirroredStrategy (several processes, TF_CONFIG), TensorFlow 2's "
        "classes (not tf.compat.v1.distribute's). "
        "ParameterServerStrategy needs a ClusterCoordinator and TPUStrategy a TPU "
        "rewrite, which TF1-style session loops do not run; OneDeviceStrategy and "
        "CentralStorageStrategy: train without distribute="
    )


def is_multi_worker(strategy: Any) -> bool:
    return isinstance(strategy, tf2.distribute.MultiWorkerMirroredStrategy)


def reads_in_graph(strategy: Any) -> bool:
    """Whether steps read their batches from the in-graph input stage (``streams.py``).

    Not in a multi-worker job: there, batches are read in Python and fed (the input stage's
    fallback), so that the end of the data is found before a step starts. An in-graph step that
    meets the end of the data inside its collective ops is abandoned on one worker while the
    others wait in theirs (measured: the next collective then fails on every worker with "Delete
    called on non-empty BufRendezvous").
    """
    return not is_multi_worker(strategy)


def num_workers(strategy: Any) -> int:
    """The worker processes of the job (1 for MirroredStrategy)."""
    if not is_multi_worker(strategy):
        return 1
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(spec.get(job, [])) for job in ("chief", "worker"))


def is_chief(strategy: Any) -> bool:
    """Whether this process saves, writes events and tracks: always, unless it is a
    MultiWorkerMirroredStrategy worker other than the chief (the chief task, or worker 0
    when the cluster names no chief)."""
    if strategy is None or not is_multi_worker(strategy):
        return True
    return bool(strategy.extended.should_checkpoint)


def describe(strategy: Any) -> dict[str, Any]:
    """The run's params: ``distribute.strategy``, ``distribute.num_replicas``, ``distribute.num_workers``."""
    name = "MultiWorkerMirroredStrategy" if is_multi_worker(strategy) else "MirroredStrategy"  # public names
    return {
        "distribute.strategy": name,
        "distribute.num_replicas": int(strategy.num_replicas_in_sync),
        "distribute.num_workers": num_workers(strategy),
    }


@contextlib.contextmanager
def building(strategy: Any) -> Iterator[None]:
    """The scope a model graph is built in: variables created here are mirrored across replicas."""
    if strategy is None:
        yield
        return
    with strategy.scope():
        yield


def primary(variable: Any) -> Any:
    """The variable itself, or for a mirrored one the copy of its first replica (the one whose ops
    an optimizer's update reaches first)."""
    values = getattr(variable, "values", None)
    return values[0] if isinstance(values, tuple) and values else variable


def session_args(strategy: Any, args: Mapping[str, Any]) -> dict[str, Any]:
    """``tf.Session`` arguments for a graph built with ``strategy`` (None: ``args`` as they are).

    A multi-worker job's session runs on this process's ``tf.distribute.Server`` (started at the
    first call; TF_CONFIG names its address) unless ``args`` name a target, and fails a step that
    waits more than ``PEER_TIMEOUT_MS`` for the other workers unless the config sets its own timeout.
    """
    if strategy is None:
        return dict(args)
    config = session_config(strategy, args.get("config"))
    if not is_multi_worker(strategy) or strategy.cluster_resolver.task_type is None:  # no TF_CONFIG: one process
        return {**args, "config": config}
    if not config.operation_timeout_in_ms:
        config.operation_timeout_in_ms = PEER_TIMEOUT_MS
    return {"target": args.get("target") or _server(strategy, config).target, "config": config}


def _server(strategy: Any, config: tf.ConfigProto) -> Any:
    resolver = strategy.cluster_resolver
    task = (resolver.task_type, int(resolver.task_id))
    if task not in _servers:
        _servers[task] = tf.distribute.Server(
            resolver.cluster_spec(), job_name=task[0], task_index=task[1], config=config, start=True
        )
    return _servers[task]


@contextlib.contextmanager
def peer_errors(strategy: Any) -> Iterator[None]:
    """Turn a step that a lost worker of a multi-worker job could not complete into a ``WorkerLostError``."""
    try:
        yield
    except PEER_ERRORS as error:
        if strategy is None or not is_multi_worker(strategy):
            raise
        raise WorkerLostError(
            f"a worker of this {num_workers(strategy)}-worker MultiWorkerMirroredStrategy job stopped answering "
            f"(killed, crashed or stalled; the step ended with {type(error).__name__}). Training "
            "stopped; the model directory keeps its last complete checkpoint. A step waits for the other workers "
            f"at most the session's config.operation_timeout_in_ms (default {PEER_TIMEOUT_MS // 1000} s)"
        ) from None


def session_config(strategy: Any, config: tf.ConfigProto | None) -> tf.ConfigProto:
    """``config`` (a copy) as ``strategy`` needs it, checked to give the session the devices the
    strategy places replicas on."""
    config = tf.ConfigProto() if config is None else _copy(config)
    config = strategy.update_config_proto(config)
    needed: dict[str, int] = {}
    for device in strategy.extended.worker_devices:
        spec = tf.DeviceSpec.from_string(device)
        kind = (spec.device_type or "CPU").upper()
        needed[kind] = max(needed.get(kind, 0), (spec.device_index or 0) + 1)
    cpus = needed.get("CPU", 0)
    if cpus > 1 and config.device_count.get("CPU", 1) < cpus:
        raise InvalidValueError(
            f"distribute={type(strategy).__name__} places replicas on {cpus} CPU devices, but the "
            f"session has {config.device_count.get('CPU', 1)}; pass session_args={{'config': "
            f"tf.ConfigProto(device_count={{'CPU': {cpus}}})}}"
        )
    return config


def _copy(config: tf.ConfigProto) -> tf.ConfigProto:
    copied = tf.ConfigProto()
    copied.CopyFrom(config)
    return copied


def replicated_specs(
    strategy: Any,
    model_fn: Callable,
    features: Mapping[FeatureKey, tf.Tensor],
    is_training: tf.Tensor,
    params: Mapping[str, Any],
    graph: tf.Graph,
) -> tuple[TrainSpec, EvaluationSpec | None, PredictSpec | None]:
    """Call ``model_fn`` once per replica on its slice of ``features``; return the job's specs."""
    local = len(strategy.extended.worker_devices)  # this worker's replicas share its batch (MWMS: equal per worker)
    with tf.device("/cpu:0"):  # sliced where tf.data made the batch: each device receives its slice only
        slices = [_replica_slice(features, replica, local) for replica in range(local)]
    sliced = strategy.experimental_distribute_values_from_function(  # called on each replica's device
        lambda context: {
            key: tf.identity(value) for key, value in slices[context.replica_id_in_sync_group % local].items()
        }
    )

    def replica_fn(replica_features):
        train, evaluation, predict = check_model_fn_result(model_fn(replica_features, is_training, params), graph)
        examples = tf.cast(_batch_size(replica_features), tf.float32)
        return {
            "train": (_weighted(train.loss, examples), train.train_op),
            "evaluation": None if evaluation is None else (_weighted(evaluation.loss, examples), evaluation.metric_ops),
            "predict": None if predict is None else predict.output,
        }

    with strategy._scale_loss_for_estimator_enabled():  # tf.estimator's rule: each replica's gradient / R
        replicas = strategy.run(replica_fn, args=(sliced,))
    train_loss, train_ops = replicas["train"]
    train = TrainSpec(
        _mean(strategy, train_loss, "train_loss"), tf.group(*_local(strategy, train_ops), name="train_op")
    )
    evaluation = None
    if replicas["evaluation"] is not None:
        loss, metric_ops = replicas["evaluation"]
        evaluation = EvaluationSpec(
            _mean(strategy, loss, "evaluation_loss"),
            {
                name: (_local(strategy, value)[0], tf.group(*_local(strategy, update), name=f"update_{i}"))
                for i, (name, (value, update)) in enumerate(metric_ops.items())
            },
        )
    predict = None
    if replicas["predict"] is not None:
        predict = PredictSpec({name: _joined(_local(strategy, output)) for name, output in replicas["predict"].items()})
    return train, evaluation, predict


def _replica_slice(
    features: Mapping[FeatureKey, tf.Tensor], replica: int, replicas: int
) -> dict[FeatureKey, tf.Tensor]:
    """Replica ``replica``'s examples of the global batch (scalar features go to every replica)."""
    size = _batch_size(features)
    start, end = size * replica // replicas, size * (replica + 1) // replicas
    return {key: tensor if tensor.shape.rank == 0 else tensor[start:end] for key, tensor in features.items()}


def _batch_size(features: Mapping[FeatureKey, tf.Tensor]) -> tf.Tensor:
    """The leading dimension of the first feature that is not a scalar (``inputs.batch_size``)."""
    for tensor in features.values():
        if tensor.shape.rank != 0:
            return tf.shape(tensor, out_type=tf.int32)[0]
    return tf.constant(1, tf.int32)


def _weighted(loss: tf.Tensor, examples: tf.Tensor) -> tf.Tensor:
    """``[loss * examples, examples]`` of a replica (0 for a replica with no examples, whatever its
    loss says): one value to reduce."""
    loss = tf.cast(loss, tf.float32)
    return tf.stack([tf.where(examples > 0, loss * examples, tf.zeros_like(loss)), examples])


def _mean(strategy: Any, weighted: Any, name: str) -> tf.Tensor:
    """The loss per example over all replicas (of every worker), in one reduction."""
    total = strategy.reduce(SUM, weighted, axis=None)
    return tf.div_no_nan(total[0], total[1], name=name)


def _local(strategy: Any, value: Any) -> list[Any]:
    return list(strategy.experimental_local_results(value))


def _joined(outputs: list[tf.Tensor]) -> tf.Tensor:
    """The replicas' outputs as one batch (a scalar output: the first replica's)."""
    if outputs[0].shape.rank == 0:
        return outputs[0]
    return tf.concat(outputs, axis=0)
