"""The NALU paper's language-to-number experiment on German number words, several seeds per model.

Trask et al. (2018), section 4.3: numbers 0..1000 as words; training is 0..19 plus a
random sample in which every token occurs (169), 200 validate, the rest test. Every
network starts with a token embedding and an LSTM, then a linear layer or a NALU; we
add our best design, the morpheme recurrence of ``value.py``. Each model and seed is one
MLflow run in one experiment (compare them in the UI); the same models are then measured
beyond the training range, 1,001..999,999, by order of magnitude. Prints the two tables
of docs/examples.md (mean and standard deviation over the seeds, the paper's figures
beside ours) and the wall time.

    python examples/german_numbers/nalu_paper.py [--seeds 0 1 2] [--models lstm-linear ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import tensorflow.compat.v1 as tf
from data import seed_graph
from morphemes import VOCABULARY
from protocol import BEYOND, check_budget, run
from value import PARAMS as RECURRENCE_PARAMS
from value import value_model_fn, value_specs

from elistimator_tracking.tracking import command, ui_hint

LSTM_PARAMS = {
    "embedding_size": 32,
    "lstm_units": 32,
    "learning_rate": 0.01,
    "clip_norm": 1.0,
    "relative_floor": 10.0,
    "output_scale": 1000.0,
}
#: Trask et al. (2018), section 4.3: mean absolute error (train, validation, test) on English number words 0..1000.
PAPER = {"lstm-linear": ("LSTM", 0.003, 29.9, 29.4), "lstm-nalu": ("LSTM + NALU", 0.17, 0.93, 0.73)}


def lstm_state(features, params) -> tf.Tensor:
    """Token embedding -> LSTM; its output after the last token."""
    seed_graph(params["seed"])
    embedding = tf.get_variable("embedding", [VOCABULARY, params["embedding_size"]])
    tokens = tf.nn.embedding_lookup(embedding, features["tokens"])
    cell = tf.nn.rnn_cell.LSTMCell(params["lstm_units"], name="lstm")
    _, state = tf.nn.dynamic_rnn(cell, tokens, sequence_length=features["length"], dtype=tf.float32)
    return state.h


def nalu(x: tf.Tensor, units: int, epsilon: float = 1e-7) -> tf.Tensor:
    """A NALU layer (Trask et al., 2018): ``g * (W x) + (1 - g) * exp(W log(|x| + eps))``,
    ``W = tanh(W_hat) * sigmoid(M_hat)``, ``g = sigmoid(G x)``."""
    size = x.shape[-1]
    with tf.variable_scope("nalu"):
        w_hat, m_hat, gate = (
            tf.get_variable(name, [size, units], initializer=tf.glorot_uniform_initializer())
            for name in ("w_hat", "m_hat", "gate")
        )
        w = tf.tanh(w_hat) * tf.sigmoid(m_hat)
        multiplicative = tf.exp(tf.clip_by_value(tf.matmul(tf.log(tf.abs(x) + epsilon), w), -20.0, 20.0))
        g = tf.sigmoid(tf.matmul(x, gate))
        return g * tf.matmul(x, w) + (1.0 - g) * multiplicative


def lstm_linear_model_fn(features, is_training, params):
    """The paper's baseline: LSTM -> a linear layer (outputs thousands)."""
    value = tf.squeeze(tf.layers.dense(lstm_state(features, params), 1, name="linear"), 1)
    return value_specs(value * params["output_scale"], features, params)


def lstm_nalu_model_fn(features, is_training, params):
    """The paper's design: LSTM -> a NALU (outputs thousands)."""
    value = tf.squeeze(nalu(lstm_state(features, params), 1), 1)
    return value_specs(value * params["output_scale"], features, params)


MODELS = {
    "lstm-linear": (lstm_linear_model_fn, LSTM_PARAMS),
    "lstm-nalu": (lstm_nalu_model_fn, LSTM_PARAMS),
    "recurrence": (value_model_fn, RECURRENCE_PARAMS),
}
LABELS = {"lstm-linear": "LSTM + linear", "lstm-nalu": "LSTM + NALU", "recurrence": "morpheme recurrence (value.py)"}


def number(x: float) -> str:
    """A figure as a table shows it: thousands separated, small ones in two significant digits."""
    if x == 0 or abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 0.1:
        return f"{x:.2f}" if abs(x) >= 1 else f"{x:.3f}"
    return f"{x:.2g}"


def spread(values: list[float]) -> str:
    """``mean ± standard deviation`` (sample; 0 for a single value)."""
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{number(statistics.mean(values))} ± {number(deviation)}"


def protocol_table(results: dict[str, list[dict]]) -> list[str]:
    """Train / validation / test MAE and exact-match share per model, the paper's MAE beside ours."""
    lines = [
        "| model | train MAE | validation MAE | test MAE | test exact | paper (train / validation / test MAE) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for model, runs in results.items():
        column = {
            name: [r["sets"][name]["mean_absolute_error"] for r in runs] for name in ("train", "validation", "test")
        }
        exact = [r["sets"]["test"]["exact"] for r in runs]
        paper = PAPER.get(model)
        paper_text = f"{paper[0]}: {paper[1]} / {paper[2]} / {paper[3]}" if paper else "—"
        lines.append(
            f"| {LABELS[model]} | {spread(column['train'])} | {spread(column['validation'])} | "
            f"{spread(column['test'])} | {spread(exact)} | {paper_text} |"
        )
    return lines


def beyond_table(results: dict[str, list[dict]]) -> list[str]:
    """MAE and mean relative error per order of magnitude beyond the training range."""
    header = " | ".join(f"{name}: MAE | relative error" for name in BEYOND)
    lines = [f"| model | {header} |", "| --- |" + " ---: | ---: |" * len(BEYOND)]
    for model, runs in results.items():
        cells = []
        for name in BEYOND:
            cells.append(spread([r["sets"][name]["mean_absolute_error"] for r in runs]))
            cells.append(spread([r["sets"][name]["relative_error"] for r in runs]))
        lines.append(f"| {LABELS[model]} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> dict[str, list[dict]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--steps", type=int, default=10_000, help="training steps per run (whole training set each)")
    parser.add_argument("--checkpoints", type=int, default=10, help="validate and save this many times per run")
    parser.add_argument(
        "--runs-dir",
        default=f"runs/nalu-paper-{time.strftime('%Y%m%d-%H%M%S')}",
        help="one model directory per run inside, named as its MLflow run",
    )
    parser.add_argument("--experiment", default="german-nalu-paper")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    check_budget(parser, args.steps, args.checkpoints)
    started = time.perf_counter()
    settings = {k: " ".join(map(str, v)) if isinstance(v, list) else v for k, v in vars(args).items()}
    results: dict[str, list[dict]] = {model: [] for model in args.models}
    for model in args.models:
        model_fn, params = MODELS[model]
        for seed in args.seeds:
            result = run(
                model_fn,
                {**params, **settings, "model": model},
                seed,
                Path(args.runs_dir) / f"{model}-seed{seed}",
                experiment=args.experiment,
                steps=args.steps,
                checkpoints=args.checkpoints,
                verbose=not args.quiet,
            )
            results[model].append(result)
            test = result["sets"]["test"]
            print(
                f"{model} seed {seed}: test MAE {test['mean_absolute_error']:.3f}, exact {test['exact']:.3f}, "
                f"{result['seconds']:.0f} s, run {result['run_id']}",
                flush=True,
            )
    elapsed = time.perf_counter() - started
    seeds = ", ".join(map(str, args.seeds))
    print(f"\nNumbers 0..1000 (paper's split), mean ± standard deviation over seeds {seeds}:\n")
    print("\n".join(protocol_table(results)))
    print("\nBeyond the training range (1,000 numbers per order of magnitude), same runs:\n")
    print("\n".join(beyond_table(results)))
    print(
        f"\n{len(args.models) * len(args.seeds)} runs in {elapsed:.0f} s; MLflow experiment {args.experiment!r}: "
        f"{ui_hint(results[args.models[0]][0]['tracking_uri'], results[args.models[0]][0]['run_id'])}"
    )
    print(f"TensorBoard (runs by name): {command('tensorboard')} --logdir {args.runs_dir}")
    return results


if __name__ == "__main__":
    main()
