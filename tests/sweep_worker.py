"""A sweep worker process for the multi-process tests: ``python sweep_worker.py STORAGE TRACKING_URI
ROOT N_TRIALS [EPOCHS]`` runs N_TRIALS trials of study ``shared`` (minimize validation loss of
``target_model_fn``, a median pruner, heartbeats every second); it prints ``started <trial> at
<global step>`` as each trial starts, then ``done <trial numbers>``.

``ELISTIMATOR_CRASH_AT`` (``_faults.py``) SIGKILLs it at a chosen moment of training."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import optuna  # noqa: E402
from conftest import target_model_fn, targets, zero_targets  # noqa: E402
from optuna.distributions import FloatDistribution  # noqa: E402

from elistimator_tracking.sweep import Sweep, trial_storage  # noqa: E402

HEARTBEAT, GRACE = 1, 3


def main(storage: str, tracking_uri: str, root: str, n_trials: int, epochs: int = 3) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="shared",
        storage=trial_storage(storage, heartbeat_interval=HEARTBEAT, grace_period=GRACE),
        direction="minimize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2),
        sampler=optuna.samplers.RandomSampler(),
        load_if_exists=True,
    )
    sweep = Sweep(study, root, "loss", space={"t": FloatDistribution(0.0, 2.0)}, tracking_uri=tracking_uri)
    mine = []

    def objective(trial):
        mine.append(trial.number)
        t = sweep.params(trial)["t"]
        with sweep.trial(
            trial, target_model_fn, targets(t), zero_targets, verbose=False, summary_every_n_steps=1
        ) as est:
            print("started", trial.number, "at", est.global_step, flush=True)
            while est.global_step < 3 * epochs:
                est.train().validate()
                est.save_ckpt()
            return sweep.best_value(est)

    sweep.optimize(objective, n_trials=n_trials)
    print("done", *mine, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), *(int(a) for a in sys.argv[5:]))
