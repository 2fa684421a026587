"""A hyperparameter sweep of the parity model: Optuna searches its size and learning rate, a median
pruner stops the trials that fall behind, MLflow groups every trial under the study's run.

12 trials (TPE, seeded) over ``lstm_units`` (16..64) and ``learning_rate`` (0.001..0.03, log scale),
each trained on 20,000 number words (as ``parity.py``) and validated on 1,000 every half epoch, four
times; from the second validation on, the median pruner compares each trial's validation loss with the
trials before it at the same step (docs/sweeps.md: how long it
takes). The study lives in an Optuna SQLite file next to the trials' model directories: run the script
again and it goes on (``--trials`` more); kill it and the trial it was running is retried, continuing
its model directory and MLflow run. The best checkpoint of the best trial is registered as
``german-parity-sweep@champion``.

    python examples/german_numbers/sweep.py [--trials 12] [--root runs/parity-sweep]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import optuna
import tensorflow.compat.v1 as tf
from data import examples, input_fn, split
from optuna.distributions import FloatDistribution, IntDistribution
from parity import PARAMS, parity_model_fn

from elistimator_tracking.sweep import Sweep, trial_storage
from elistimator_tracking.tracking import command, ui_hint

SPACE = {"lstm_units": IntDistribution(16, 64, step=16), "learning_rate": FloatDistribution(1e-3, 3e-2, log=True)}
REGISTERED_NAME = "german-parity-sweep"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--train-size", type=int, default=20_000)
    parser.add_argument("--validations", type=int, default=4, help="validations (and checkpoints) per trial")
    parser.add_argument("--metric", default="loss", help="the validation metric to minimize (default: loss)")
    parser.add_argument("--steps-per-validation", type=int, default=None, help="default: half an epoch")
    parser.add_argument("--root", default="runs/parity-sweep", help="the study and the trials' model directories")
    parser.add_argument("--study", default="parity")
    parser.add_argument("--experiment", default="german-parity-sweep")
    parser.add_argument("--register-as", default=REGISTERED_NAME)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tf.get_logger().setLevel("ERROR")  # TF1 layers on purpose: their deprecation notices are not news
    warnings.filterwarnings("ignore", message=r"`tf\.(layers|nn\.rnn_cell)\..*is deprecated", category=UserWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()

    numbers = split({"train": args.train_size, "validation": 1000}, args.seed)
    train, validation = examples(numbers["train"]), examples(numbers["validation"])
    batch = PARAMS["batch_size"]
    steps = args.steps_per_validation or math.ceil(args.train_size / batch / 2)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=args.study,
        storage=trial_storage(f"sqlite:///{root.absolute() / 'optuna.db'}"),
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=args.seed, n_startup_trials=5),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2 * steps),  # from the 2nd on
        load_if_exists=True,
    )
    sweep = Sweep(study, root, args.metric, space=SPACE, experiment=args.experiment)

    def objective(trial: optuna.Trial) -> float:
        params = {**PARAMS, **sweep.params(trial), "seed": args.seed}
        with sweep.trial(
            trial,
            parity_model_fn,
            input_fn(train, batch, "german-words-train", shuffle_seed=args.seed),
            input_fn(validation, batch, "german-words-validation"),
            params=params,
            verbose=False,
        ) as estimator:
            while estimator.global_step < steps * args.validations:  # a retried trial goes on where it was
                estimator.train(steps).validate()
                estimator.save_ckpt()
            value = sweep.best_value(estimator)
        print(f"trial {trial.number}: {sweep.params(trial)} -> best validation {args.metric} {value:.3g}", flush=True)
        return value

    def told(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == optuna.trial.TrialState.PRUNED:
            print(f"trial {trial.number}: {trial.params} pruned at step {max(trial.intermediate_values)}", flush=True)

    sweep.optimize(objective, n_trials=args.trials, callbacks=[told])
    version, kept = sweep.register_best(args.register_as)
    elapsed = time.perf_counter() - started
    states = [t.state.name for t in study.trials]
    counts = {state: states.count(state) for state in sorted(set(states))}
    best = study.best_trial
    print(
        f"\n{len(study.trials)} trials in study {args.study!r} ({counts}); this run: {args.trials} trials in "
        f"{elapsed:.0f} s\nbest: trial {best.number}, {best.params}, validation {args.metric} {best.value:.3g}; "
        f"registered models:/{args.register_as}/{version}" + (f" ({kept})" if kept else " (@champion)")
    )
    print(
        f"\nCompare the trials in the MLflow UI:  {ui_hint(sweep.tracking_uri, sweep.parent_run_id)}\n"
        f"  Runs: the row {args.study!r} is the study; expand it (the arrow next to its name) to list its trials.\n"
        f"  Columns: add params lstm_units and learning_rate, metric validation/{args.metric}, tag optuna.trial.state\n"
        f"  Select the trials, Compare: a parallel-coordinates plot of lstm_units, learning_rate -> {args.metric}.\n"
        f"  The chart view (next to the table button): validation/{args.metric} over the global step, a line a trial;\n"
        "  pruned trials (status Killed, tag optuna.trial.state PRUNED) stop early.\n"
        f"From the shell:  {command('elistimator')} runs {args.experiment} --sort-by {args.metric}"
    )
    return {"study": study, "sweep": sweep, "version": version, "seconds": elapsed, "states": counts}


if __name__ == "__main__":
    main()
