"""Steps per second of Elistimator.train() next to a plain session loop, same graph and data.

The plain loop is what a user would write by hand: the seed MNIST model fed by an
in-graph ``tf.data`` iterator, ``session.run(train_op)`` per step. Both run the seed
CNN (batch 56) on the same images in one process, alternating, and the table gives
the median of the repeats.

    python bench/train_speed.py --data-dir ../shared/data/mnist --steps 200 --repeats 3
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import elistimator_tracking  # noqa: F401  (sets the TensorFlow environment first)
from elistimator_tracking import Elistimator
from elistimator_tracking._tf import new_session, tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from mnist_cnn import PARAMS, cnn_model_fn, input_fns, load_mnist  # noqa: E402


def plain_loop_steps_per_second(train_input_fn, steps: int) -> float:
    graph = tf.Graph()
    with graph.as_default():
        tf.train.get_or_create_global_step()
        iterator = tf.data.make_initializable_iterator(train_input_fn().repeat())
        features = iterator.get_next()
        is_training = tf.placeholder_with_default(False, [])
        train_spec, _, _ = cnn_model_fn(features, is_training, PARAMS)
        init = tf.group(tf.global_variables_initializer(), tf.local_variables_initializer())
    session = new_session(graph)
    session.run([init, iterator.initializer])
    fetches = [train_spec.train_op, train_spec.loss]
    for _ in range(5):  # warm-up
        session.run(fetches, {is_training: True})
    start = time.perf_counter()
    for _ in range(steps):
        session.run(fetches, {is_training: True})
    elapsed = time.perf_counter() - start
    session.close()
    return steps / elapsed


def elistimator_steps_per_second(train_input_fn, steps: int) -> float:
    with Elistimator(cnn_model_fn, params=PARAMS, verbose=False) as estimator:
        estimator.setup(train_input_fn)
        estimator.train(5)  # warm-up
        start = time.perf_counter()
        estimator.train(steps)
        return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared/data/mnist"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    images, labels = load_mnist(args.data_dir)["test"]
    train_input_fn, _ = input_fns((images, labels), (images[:56], labels[:56]), PARAMS["batch_size"])
    plain, ours = [], []
    for _ in range(args.repeats):
        plain.append(plain_loop_steps_per_second(train_input_fn, args.steps))
        ours.append(elistimator_steps_per_second(train_input_fn, args.steps))
    p, o = statistics.median(plain), statistics.median(ours)
    print(f"{'loop':<28}{'steps/s':>10}{'ratio':>8}")
    print(f"{'plain session loop':<28}{p:>10.2f}{1.0:>8.3f}")
    print(f"{'Elistimator.train()':<28}{o:>10.2f}{o / p:>8.3f}")
    print(f"({args.repeats} repeats of {args.steps} steps, batch {PARAMS['batch_size']}, median)")


if __name__ == "__main__":
    main()
