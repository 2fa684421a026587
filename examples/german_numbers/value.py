"""From word to number: an LSTM reads a German number word's parts, a NALU layer says its value.

The word is split into its number morphemes (``ein|und|zwanzig|tausend|drei|hundert``),
an LSTM reads them, a ReLU layer widens its last state, and a Neural Arithmetic Logic
Unit (Trask et al., 2018: a gated mix of an additive path ``W x`` and a multiplicative
path ``exp(W log|x|)``, with ``W = tanh(W_hat) * sigmoid(M_hat)`` pushed towards -1, 0
and 1) maps it to the number. Gradients are clipped (norm 1): the multiplicative path
makes NALU training jumpy, and the best checkpoint by validation error is kept. The
loss is the squared error relative to the number (``(y - t) / (t + 100)``), so
``einundzwanzig`` matters as much as ``neunzehntausend``. It
trains on numbers below 20,000 (a share held out) and is tested inside that range
and on 20,000..999,999, larger than anything it saw.

    python examples/german_numbers/value.py [--epochs 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from elistimator_tracking import Elistimator, EvaluationSpec, PredictSpec, TrainSpec
import tensorflow.compat.v1 as tf

from data import input_fn, sample_numbers
from words import german

MORPHEMES = ["null", "eins", "ein", "zwei", "drei", "vier", "fünf", "sechs", "sech", "sieben", "sieb", "acht",
             "neun", "zehn", "elf", "zwölf", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig",
             "achtzig", "neunzig", "und", "hundert", "tausend"]
TOKEN_IDS = {m: i + 1 for i, m in enumerate(MORPHEMES)}  # 0 pads
MAX_TOKENS = 11  # the most parts a word has, e.g. german(121_121): ein|hundert|ein|und|zwanzig|tausend|...
TRAIN_BELOW = 20_000
SCALE = 1000.0  # the NALU outputs thousands: its inputs and weights stay near 1
RELATIVE_FLOOR = 100.0  # the loss weighs errors relative to the number (plus this), so small numbers count too
PARAMS = {"embedding_size": 32, "lstm_units": 64, "hidden_units": 64, "learning_rate": 0.003, "clip_norm": 1.0,
          "batch_size": 64}


def tokenize(word: str) -> list:
    """Split a number word into morphemes, longest match first."""
    tokens, rest = [], word
    by_length = sorted(MORPHEMES, key=len, reverse=True)
    while rest:
        match = next((m for m in by_length if rest.startswith(m)), None)
        if match is None:
            raise ValueError(f"{word!r} is not a German number word (stuck at {rest!r})")
        tokens.append(match)
        rest = rest[len(match):]
    return tokens


def encode(numbers: np.ndarray) -> dict:
    tokens = np.zeros((len(numbers), MAX_TOKENS), np.int32)
    lengths = np.zeros(len(numbers), np.int32)
    for row, number in enumerate(numbers):
        ids = [TOKEN_IDS[t] for t in tokenize(german(int(number)))]
        tokens[row, :len(ids)], lengths[row] = ids, len(ids)
    return {"tokens": tokens, "length": lengths, "value": numbers.astype(np.float32)}


def nalu(x, units: int, name: str = "nalu", epsilon: float = 1e-7):
    """A NALU layer (Trask et al., 2018): ``g * (W x) + (1 - g) * exp(W log(|x| + eps))``."""
    size = x.shape[-1]
    with tf.variable_scope(name):
        w_hat = tf.get_variable("w_hat", [size, units], initializer=tf.glorot_uniform_initializer())
        m_hat = tf.get_variable("m_hat", [size, units], initializer=tf.glorot_uniform_initializer())
        gate = tf.get_variable("gate", [size, units], initializer=tf.glorot_uniform_initializer())
        w = tf.tanh(w_hat) * tf.sigmoid(m_hat)
        additive = tf.matmul(x, w)
        # exp(15) thousands is far beyond 999,999: the clip only stops overflow early in training
        multiplicative = tf.exp(tf.clip_by_value(tf.matmul(tf.log(tf.abs(x) + epsilon), w), -15.0, 15.0))
        g = tf.sigmoid(tf.matmul(x, gate))
        return g * additive + (1.0 - g) * multiplicative


def value_model_fn(features, is_training, params):
    embedding = tf.get_variable("embedding", [len(MORPHEMES) + 1, params["embedding_size"]])
    parts = tf.nn.embedding_lookup(embedding, features["tokens"])
    cell = tf.nn.rnn_cell.LSTMCell(params["lstm_units"], name="lstm")
    _, state = tf.nn.dynamic_rnn(cell, parts, sequence_length=features["length"], dtype=tf.float32)
    hidden = tf.layers.dense(state.h, params["hidden_units"], activation=tf.nn.relu, name="hidden")
    thousands = tf.squeeze(nalu(hidden, 1), axis=1)
    value = thousands * SCALE
    target = features["value"]
    loss = tf.reduce_mean(tf.square((value - target) / (target + RELATIVE_FLOOR)))
    optimizer = tf.train.AdamOptimizer(params["learning_rate"])
    gradients, variables = zip(*optimizer.compute_gradients(loss))
    gradients, _ = tf.clip_by_global_norm(gradients, params["clip_norm"])
    train_op = optimizer.apply_gradients(zip(gradients, variables), global_step=tf.train.get_global_step())
    metrics = {"mean_absolute_error": tf.metrics.mean_absolute_error(target, value),
               "relative_error": tf.metrics.mean(tf.abs(value - target) / tf.maximum(target, 1.0)),
               "exact": tf.metrics.accuracy(tf.round(target), tf.round(value))}
    return (TrainSpec(loss=loss, train_op=train_op),
            EvaluationSpec(loss=loss, eval_metric_ops=metrics),
            PredictSpec(output={"value": value}))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--train-size", type=int, default=15_000)
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="cut epochs short (smoke tests)")
    parser.add_argument("--model-dir", default=f"runs/value-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--register-as", default="german-value")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    held_out = sample_numbers(1000, rng, high=TRAIN_BELOW - 1)
    validation = sample_numbers(1000, rng, high=TRAIN_BELOW - 1, exclude=set(held_out.tolist()))
    train = sample_numbers(args.train_size, rng, high=TRAIN_BELOW - 1,
                           exclude=set(held_out.tolist()) | set(validation.tolist()))
    beyond = sample_numbers(1000, rng, low=TRAIN_BELOW)
    batch = PARAMS["batch_size"]
    with Elistimator(value_model_fn, args.model_dir, params={**PARAMS, "train_below": TRAIN_BELOW},
                     experiment="german-value", verbose=not args.quiet) as estimator:
        estimator.setup(input_fn(encode(train), batch, shuffle=True), input_fn(encode(validation), batch))
        for _ in range(args.epochs):
            estimator.train(args.steps_per_epoch).validate()
            estimator.save_ckpt()
        estimator.restore_best_ckpt(metric="mean_absolute_error", mode="min")
        inside = estimator.evaluate(input_fn(encode(held_out), batch))
        outside = estimator.evaluate(input_fn(encode(beyond), batch))
        version = estimator.register_best(args.register_as, metric="mean_absolute_error", mode="min")
        examples = np.array([21, 342, 19_999, 54_321, 999_999])
        predicted = estimator.predict(**{k: v for k, v in encode(examples).items() if k != "value"})["value"]
    elapsed = time.perf_counter() - started
    print(f"\ninside the training range (held-out numbers < {TRAIN_BELOW:,}): mean absolute error "
          f"{inside['mean_absolute_error']:,.1f}, relative error {inside['relative_error']:.3f}, "
          f"exact {inside['exact']:.3f}")
    print(f"beyond it ({TRAIN_BELOW:,}..999,999): mean absolute error {outside['mean_absolute_error']:,.1f}, "
          f"relative error {outside['relative_error']:.3f}, exact {outside['exact']:.3f}")
    for number, guess in zip(examples, predicted):
        print(f"  {german(int(number))} -> {guess:,.1f}")
    print(f"registered models:/{args.register_as}/{version}; {elapsed:.0f} s")
    return {"inside": inside, "outside": outside, "version": version, "seconds": elapsed}


if __name__ == "__main__":
    main()
