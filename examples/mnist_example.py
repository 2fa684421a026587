"""The seed walkthrough end to end: the tutorial CNN on MNIST, tracked in MLflow.

Train and validate for N epochs with a checkpoint after each, predict (batches from an
input function, and one-off arrays), evaluate, restore the best checkpoint, and
register it as the ``champion`` of ``mnist-cnn`` in the MLflow Model Registry.

The data comes through the ``mnist`` package from local idx files (``*-ubyte.gz``) in
``$ELISTIMATOR_MNIST_DIR``, else ``data/mnist`` in the clone (``mnist_data.py``):

    python examples/mnist_example.py --epochs 2

A directory with only the 10,000 test images (``t10k-*``) works too: 8,000 of them
train, 2,000 validate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mnist_cnn import PARAMS, cnn_model_fn, input_fns
from mnist_data import has_test_set, how_to_get, load_mnist, mnist_dir

from elistimator_tracking import Elistimator
from elistimator_tracking.tracking import command, registered, ui_hint


def load(data_dir: Path):
    """(train, validation): the training set and test set, or an 8,000/2,000 split of the test set."""
    if not has_test_set(data_dir):
        sys.exit(how_to_get(data_dir))
    data = load_mnist(data_dir)
    if data["train"] is not None:
        return data["train"], data["test"]
    images, labels = data["test"]
    return (images[:8000], labels[:8000]), (images[8000:], labels[8000:])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=mnist_dir(), help="default: $ELISTIMATOR_MNIST_DIR or data/mnist"
    )
    parser.add_argument("--epochs", type=int, default=PARAMS["epochs"])
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="cut epochs short (smoke tests)")
    parser.add_argument("--model-dir", default=f"runs/mnist-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--register-as", default="mnist-cnn")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    (train_images, train_labels), (test_images, test_labels) = load(args.data_dir)
    train_input_fn, validation_input_fn = input_fns(
        (train_images, train_labels), (test_images, test_labels), PARAMS["batch_size"]
    )
    model_dir = Path(args.model_dir)
    params = {**PARAMS, **vars(args)}  # every command-line setting is a param of the run, as it ran
    with Elistimator(
        model_fn=cnn_model_fn, model_dir=model_dir, params=params, experiment="mnist", run_name=model_dir.name
    ) as estimator:
        estimator.setup(train_input_fn=train_input_fn, validation_input_fn=validation_input_fn)
        for _ in range(args.epochs):
            estimator.train(args.steps_per_epoch).validate()
            estimator.save_ckpt()

        batches = list(estimator.predict(input_fn=validation_input_fn))  # one dict per batch
        one = estimator.predict(images=test_images[:1])  # one-off, by feature name
        assert one["classes"][0] == batches[0]["classes"][0]
        estimator.restore_best_ckpt(metric="accuracy", mode="max")
        best = estimator.evaluate(validation_input_fn)
        version = estimator.register_best(args.register_as, metric="accuracy", mode="max", alias="champion")
        tracking_uri = estimator.tracking_uri
        summary = {
            "best_step": estimator.global_step,
            "evaluation": best,
            "run_id": estimator.run_id,
            "version": version,
            "predicted": int(sum(len(b["classes"]) for b in batches)),
            "first_prediction": int(one["classes"][0]),
            "first_label": int(test_labels[0]),
        }
    summary["seconds"] = time.perf_counter() - started
    print(
        f"\nbest checkpoint: step {summary['best_step']}, accuracy {best['accuracy']:.4f}, loss {best['loss']:.4f}; "
        f"first test image predicted {summary['first_prediction']} (label {summary['first_label']}); "
        f"{summary['seconds']:.0f} s"
    )
    print(f"{registered(tracking_uri, args.register_as, version)} (from run {summary['run_id']})")
    print(f"MLflow UI:   {ui_hint(tracking_uri, summary['run_id'])}")
    print(f"TensorBoard: {command('tensorboard')} --logdir {model_dir.parent} (run {model_dir.name!r})")
    return summary


if __name__ == "__main__":
    main()
