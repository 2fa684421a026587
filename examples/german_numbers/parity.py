"""Even or odd? A character-level LSTM reads a German number word and says which.

The README's main job: no download, about a minute on 2 CPU cores. It trains on
20,000 random number words of 0..999,999 (split by ``data.split``: every digit count
is in training), validates and saves a checkpoint every epoch, restores the most
accurate checkpoint, tests it on 2,000 held-out words, registers it as the
``champion`` of ``german-parity`` in the MLflow Model Registry, and prints how to look
at it all. ``--seed`` fixes the split, the initial weights and the shuffling: the same
seed gives the same numbers.

    python examples/german_numbers/parity.py [--epochs 4] [--model-dir runs/parity-...]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

# first: the package loads TensorFlow quietly (no start-up logs, no notices that TF1 APIs are deprecated)
from elistimator_tracking import Elistimator, EvaluationSpec, PredictSpec, TrainSpec

# isort: split
import tensorflow.compat.v1 as tf
from data import VOCABULARY, encode, examples, input_fn, seed_graph, split
from words import german

from elistimator_tracking.tracking import command, registered, ui_hint

PARAMS = {"embedding_size": 16, "lstm_units": 64, "learning_rate": 0.005, "batch_size": 64}
REGISTERED_NAME = "german-parity"


def parity_logits(features, params):
    """Characters -> embedding -> LSTM; its state after the last letter -> logits of even/odd."""
    seed_graph(params["seed"])
    embedding = tf.get_variable("embedding", [VOCABULARY, params["embedding_size"]])
    letters = tf.nn.embedding_lookup(embedding, features["chars"])
    cell = tf.nn.rnn_cell.LSTMCell(params["lstm_units"], name="lstm")
    _, state = tf.nn.dynamic_rnn(cell, letters, sequence_length=features["length"], dtype=tf.float32)
    return tf.layers.dense(state.h, 2, name="logits")


def parity_model_fn(features, is_training, params):
    """``parity_logits`` -> even/odd."""
    logits = parity_logits(features, params)
    odd = tf.argmax(logits, axis=1, output_type=tf.int32)
    loss = tf.losses.sparse_softmax_cross_entropy(labels=features["odd"], logits=logits)
    train_op = tf.train.AdamOptimizer(params["learning_rate"]).minimize(loss, global_step=tf.train.get_global_step())
    metrics = {"accuracy": tf.metrics.accuracy(labels=features["odd"], predictions=odd)}
    return (
        TrainSpec(loss=loss, train_op=train_op),
        EvaluationSpec(loss=loss, eval_metric_ops=metrics),
        PredictSpec(output={"odd": odd, "probability_odd": tf.nn.softmax(logits)[:, 1]}),
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-size", type=int, default=20_000)
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="default: one pass over the training words; fewer cut epochs short (smoke tests)",
    )
    parser.add_argument("--model-dir", default=f"runs/parity-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--experiment", default="german-parity")
    parser.add_argument("--register-as", default=REGISTERED_NAME)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    numbers = split({"train": args.train_size, "validation": 2000, "test": 2000}, args.seed)
    train, validation, test = (examples(numbers[name]) for name in ("train", "validation", "test"))
    batch = PARAMS["batch_size"]
    args.steps_per_epoch = args.steps_per_epoch or math.ceil(args.train_size / batch)  # logged as it runs
    model_dir = Path(args.model_dir)
    with Elistimator(
        parity_model_fn,
        model_dir,
        params={**PARAMS, **vars(args)},
        experiment=args.experiment,
        run_name=model_dir.name,
        verbose=not args.quiet,
    ) as estimator:
        estimator.setup(
            input_fn(train, batch, "german-words-train", shuffle_seed=args.seed),
            input_fn(validation, batch, "german-words-validation"),
        )
        for _ in range(args.epochs):
            estimator.train(args.steps_per_epoch).validate()
            estimator.save_ckpt()
        estimator.restore_best_ckpt(metric="accuracy", mode="max")
        best_step = estimator.global_step
        tested = estimator.evaluate(input_fn(test, batch, "german-words-test"))
        version = estimator.register_best(args.register_as, metric="accuracy", mode="max", alias="champion")
        words = ["einundzwanzig", "einhundertzweiundvierzig", german(999_998), german(54_321)]
        answers = estimator.predict(**encode(words))["odd"]
        run_id, tracking_uri = estimator.run_id, estimator.tracking_uri
    elapsed = time.perf_counter() - started
    print(
        f"\nbest checkpoint: step {best_step}; held-out test accuracy {tested['accuracy']:.4f} "
        f"(loss {tested['loss']:.4f}) on 2,000 unseen words; {elapsed:.0f} s in all"
    )
    for word, odd in zip(words, answers, strict=False):
        print(f"  {word}: {'odd' if odd else 'even'}")
    print(f"\nMLflow run {run_id}, named {model_dir.name!r} (experiment {args.experiment!r})")
    print(registered(tracking_uri, args.register_as, version))
    print(f"Compare runs in the MLflow UI:  {ui_hint(tracking_uri, run_id)}")
    print(f"TensorBoard (runs by name):    {command('tensorboard')} --logdir {model_dir.parent}")
    return {"test": tested, "best_step": best_step, "run_id": run_id, "version": version, "seconds": elapsed}


if __name__ == "__main__":
    main()
