"""From word to number: a NALU-style recurrence reads a German number word's morphemes.

The task and protocol are those of Trask et al. (2018), "Neural Arithmetic Logic Units",
section 4.3, on German words: train on 169 numbers of 0..1000 (0..19 and a sample in
which every morpheme occurs), keep the checkpoint with the lowest error on 200
validation numbers, test on the other 632, then on numbers up to 999,999, far beyond
anything seen in training (``tausend`` occurred once, in ``eintausend``).

The model reads ``ein|hundert|drei|und|zwanzig|tausend|...`` one morpheme at a time into
one running number. Every morpheme has three learned scalars: a gate, a value to add and
a factor to multiply by (as its logarithm). While the gate is soft (the first
``soft_steps``), a morpheme does ``g * (x + value) + (1 - g) * x * factor``, the NALU's
gated mix of adding and multiplying. Then the gates are fixed at 0 or 1, and training
goes on with a multiplying morpheme scaling only the earlier parts of the number that
are smaller than its factor, as place value reads (``zwei|tausend|drei|hundert``:
``hundert`` scales ``drei``, not ``zweitausend``). Inside 0..1000 a multiplier always
scales everything before it, so there the fixed gates compute what the soft ones would
with gates of exactly 0 and 1. Why this design, and what else was tried:
docs/examples.md.

    python examples/german_numbers/value.py [--seed 0] [--steps 10000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import tensorflow.compat.v1 as tf
from data import seed_graph
from morphemes import MAX_TOKENS, VOCABULARY
from protocol import check_budget, run
from words import german

from elistimator_tracking import EvaluationSpec, PredictSpec, TrainSpec
from elistimator_tracking.tracking import command

PARAMS = {"learning_rate": 0.05, "clip_norm": 1.0, "soft_steps": 3000, "relative_floor": 10.0}
MAX_LOG_FACTOR = 10.0  # a factor of e^10 = 22,026: far above tausend, and no overflow while learning
MAX_SCALE = 30.0  # parts of a number scaled beyond e^30 are nonsense: keep them finite
EXAMPLES = [21, 342, 1000, 1234, 54_321, 700_007, 999_999]


def read_number(tokens: tf.Tensor, length: tf.Tensor, soft: tf.Tensor) -> tf.Tensor:
    """The value of each morpheme sequence: the soft recurrence while ``soft``, else the fixed-gate one."""
    zeros = tf.zeros_initializer()
    gate = tf.get_variable("gate", [VOCABULARY], initializer=zeros)
    value = tf.get_variable("value", [VOCABULARY], initializer=zeros)
    log_factor = tf.get_variable("log_factor", [VOCABULARY], initializer=zeros)
    running = tf.zeros(tf.shape(length), tf.float32)
    parts, scales = [], []  # the fixed-gate reading: parts added, and the log of what scaled each since
    for t in range(MAX_TOKENS):
        token, present = tokens[:, t], t < length
        g = tf.sigmoid(tf.gather(gate, token))
        add = tf.gather(value, token)
        log_m = tf.clip_by_value(tf.gather(log_factor, token), -MAX_LOG_FACTOR, MAX_LOG_FACTOR)
        running = tf.where(present, g * (running + add) + (1.0 - g) * running * tf.exp(log_m), running)
        multiplies = tf.logical_and(present, g < 0.5)
        scales = [tf.where(tf.logical_and(multiplies, s < log_m), tf.minimum(s + log_m, MAX_SCALE), s) for s in scales]
        parts.append(tf.where(tf.logical_and(present, g >= 0.5), add, tf.zeros_like(add)))
        scales.append(tf.zeros_like(add))
    fixed = tf.add_n([part * tf.exp(scale) for part, scale in zip(parts, scales, strict=False)])
    return tf.where(soft, running, fixed)


def value_specs(value: tf.Tensor, features, params):
    """Loss (squared error relative to the number), Adam with clipped gradients, and the metrics."""
    target = features["value"]
    loss = tf.reduce_mean(tf.square((value - target) / (target + params["relative_floor"])))
    optimizer = tf.train.AdamOptimizer(params["learning_rate"])
    gradients, variables = zip(*[(g, v) for g, v in optimizer.compute_gradients(loss) if g is not None], strict=False)
    gradients, _ = tf.clip_by_global_norm(gradients, params["clip_norm"])
    train_op = optimizer.apply_gradients(
        zip(gradients, variables, strict=False), global_step=tf.train.get_global_step()
    )
    metrics = {
        "mean_absolute_error": tf.metrics.mean_absolute_error(target, value),
        "relative_error": tf.metrics.mean(tf.abs(value - target) / tf.maximum(target, 1.0)),
        "exact": tf.metrics.accuracy(tf.round(target), tf.round(value)),
    }
    return (
        TrainSpec(loss=loss, train_op=train_op),
        EvaluationSpec(loss=loss, eval_metric_ops=metrics),
        PredictSpec(output={"value": value}),
    )


def value_model_fn(features, is_training, params):
    """Morphemes -> the NALU-style recurrence -> the number."""
    seed_graph(params["seed"])
    soft = tf.logical_and(is_training, tf.train.get_global_step() < params["soft_steps"])
    return value_specs(read_number(features["tokens"], features["length"], soft), features, params)


def print_results(result: dict, title: str) -> None:
    """The measurements of ``protocol.run`` as a small table."""
    print(f"\n{title}")
    print(f"  {'set':<28} {'MAE':>12} {'exact':>7} {'relative error':>15}")
    for name, metrics in result["sets"].items():
        print(
            f"  {name:<28} {metrics['mean_absolute_error']:>12,.3f} {metrics['exact']:>7.3f} "
            f"{metrics['relative_error']:>15.6f}"
        )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="picks the paper-style split of 0..1000")
    parser.add_argument("--steps", type=int, default=10_000, help="training steps (whole training set each)")
    parser.add_argument("--checkpoints", type=int, default=10, help="validate and save this many times")
    parser.add_argument("--soft-steps", type=int, default=PARAMS["soft_steps"], help="steps with soft gates")
    parser.add_argument("--model-dir", default=f"runs/value-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--experiment", default="german-value")
    parser.add_argument("--register-as", default="german-value")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    check_budget(parser, args.steps, args.checkpoints)
    params = {**PARAMS, **vars(args)}  # every command-line setting is a param of the run
    result = run(
        value_model_fn,
        params,
        args.seed,
        Path(args.model_dir),
        experiment=args.experiment,
        steps=args.steps,
        checkpoints=args.checkpoints,
        verbose=not args.quiet,
        register_as=args.register_as,
        examples=EXAMPLES,
    )
    print_results(
        result, f"trained on 169 words of 0..1000 (seed {args.seed}); best checkpoint at step {result['best_step']}"
    )
    for number, guess in zip(EXAMPLES, result["examples"], strict=False):
        print(f"  {german(number)} -> {guess:,.2f}")
    print(
        f"\nregistered models:/{args.register_as}/{result['version']} from MLflow run {result['run_id']} "
        f"(experiment {args.experiment!r}, run name {Path(args.model_dir).name!r})"
    )
    print(f"TensorBoard: {command('tensorboard')} --logdir {Path(args.model_dir).parent}")
    print(f"{result['seconds']:.0f} s")
    return result


if __name__ == "__main__":
    main()
