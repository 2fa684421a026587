"""Even or odd, the tf.estimator way: the seed's own formulation, run unchanged on TensorFlow 2.21.

A ``model_fn(features, labels, mode, params)`` char-LSTM returns an ``EstimatorSpec`` per
mode; the ``input_fn`` returns ``(features, labels)`` with features ``{'chars', 'length'}``
(the seed author's "tuple of two dicts", labels the ``odd`` tensor). It is trained with
``train_and_evaluate`` (a validation at every checkpoint), exported as a SavedModel,
its most accurate checkpoint registered as ``german-parity-estimator@champion``, and the
command that serves it over HTTP is printed. Only the import line differs from a
TensorFlow 1.15 program.

    python examples/german_numbers/parity_estimator.py [--max-steps 1200] [--model-dir runs/...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

# first: the package loads TensorFlow quietly (no start-up logs, no notices that TF1 APIs are deprecated)
from elistimator_tracking import estimator as tf_estimator  # was: tf_estimator = tf.estimator

# isort: split
import tensorflow.compat.v1 as tf
from data import MAX_LENGTH, encode, examples, split
from parity import PARAMS, parity_logits
from words import german

from elistimator_tracking.tracking import command, registered, ui_hint

REGISTERED_NAME = "german-parity-estimator"


def model_fn(features, labels, mode, params):
    """The parity example's char-LSTM (characters -> embedding -> LSTM -> even/odd), per mode."""
    logits = parity_logits(features, params)
    odd = tf.argmax(logits, axis=1, output_type=tf.int32)
    predictions = {"odd": odd, "probability_odd": tf.nn.softmax(logits)[:, 1]}
    if mode == tf_estimator.ModeKeys.PREDICT:
        return tf_estimator.EstimatorSpec(mode, predictions=predictions)
    loss = tf.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
    if mode == tf_estimator.ModeKeys.EVAL:
        return tf_estimator.EstimatorSpec(
            mode, loss=loss, eval_metric_ops={"accuracy": tf.metrics.accuracy(labels=labels, predictions=odd)}
        )
    train_op = tf.train.AdamOptimizer(params["learning_rate"]).minimize(loss, global_step=tf.train.get_global_step())
    return tf_estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


def make_input_fn(numbers, batch_size, shuffle_seed=None):
    """``(features, labels)``: ``({'chars', 'length'}, odd)``; endless and shuffled for training."""
    data = examples(numbers)

    def input_fn():
        dataset = tf.data.Dataset.from_tensor_slices(({"chars": data["chars"], "length": data["length"]}, data["odd"]))
        if shuffle_seed is None:
            return dataset.batch(batch_size)
        return dataset.shuffle(len(numbers), seed=shuffle_seed).repeat().batch(batch_size)

    return input_fn


def serving_input_receiver_fn():
    chars = tf.placeholder(tf.int32, [None, MAX_LENGTH], name="chars")
    length = tf.placeholder(tf.int32, [None], name="length")
    return tf_estimator.export.ServingInputReceiver(
        {"chars": chars, "length": length}, {"chars": chars, "length": length}
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=1200)
    parser.add_argument("--checkpoint-every", type=int, default=300)
    parser.add_argument("--train-size", type=int, default=20_000)
    parser.add_argument("--model-dir", default=f"runs/parity-estimator-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--experiment", default="german-parity")
    parser.add_argument("--register-as", default=REGISTERED_NAME)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars, no metrics lines")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    numbers = split({"train": args.train_size, "validation": 2000}, args.seed)
    model_dir = Path(args.model_dir)
    config = tf_estimator.RunConfig(
        save_checkpoints_steps=args.checkpoint_every, save_summary_steps=50, tf_random_seed=args.seed
    )
    estimator = tf_estimator.Estimator(
        model_fn,
        str(model_dir),
        config=config,
        params={**PARAMS, **vars(args)},
        experiment=args.experiment,
        run_name=model_dir.name,
        verbose=not args.quiet,  # progress bars and each evaluation's metrics (tf.estimator logged them at INFO)
    )
    batch = PARAMS["batch_size"]
    train_spec = tf_estimator.TrainSpec(make_input_fn(numbers["train"], batch, args.seed), max_steps=args.max_steps)
    eval_spec = tf_estimator.EvalSpec(make_input_fn(numbers["validation"], batch), steps=None, throttle_secs=0)
    metrics, _ = tf_estimator.train_and_evaluate(estimator, train_spec, eval_spec)
    exported = estimator.export_saved_model(str(model_dir / "export"), serving_input_receiver_fn).decode()
    version = estimator.elistimator.register_best(args.register_as, metric="accuracy", mode="max")
    words = ["einundzwanzig", "einhundertzweiundvierzig", german(999_998), german(54_321)]
    answers = [p["odd"] for p in estimator.predict(lambda: tf.data.Dataset.from_tensor_slices(encode(words)).batch(4))]
    tracking_uri = estimator.elistimator.tracking_uri
    estimator.close()
    elapsed = time.perf_counter() - started
    print(f"\nvalidation accuracy {metrics['accuracy']:.4f} at step {metrics['global_step']}; {elapsed:.0f} s in all")
    for word, odd in zip(words, answers, strict=False):
        print(f"  {word}: {'odd' if odd else 'even'}")
    print(f"SavedModel (TensorFlow Serving, saved_model_cli): {exported}")
    print(
        f"{registered(tracking_uri, args.register_as, version)}; serve it over HTTP with one command:\n"
        f"  {command('mlflow')} models serve -m models:/{args.register_as}@champion --env-manager local -p 5001"
    )
    print(f"Compare runs in the MLflow UI:  {ui_hint(tracking_uri)}")
    return {"metrics": metrics, "exported": exported, "version": version, "answers": answers, "seconds": elapsed}


if __name__ == "__main__":
    main()
