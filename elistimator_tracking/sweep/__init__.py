"""Hyperparameter sweeps with Optuna: a study drives many tracked trainings, prunes them from
``validate()``, continues killed trials in their own runs, and registers the best (docs/sweeps.md).

The one part of the package that imports ``optuna`` (``pip install 'elistimator_tracking[sweep]'``)::

    study = optuna.create_study(study_name="parity", storage=trial_storage("sqlite:///sweep.db"),
                                direction="maximize", pruner=optuna.pruners.MedianPruner(),
                                load_if_exists=True)
    sweep = Sweep(study, "runs/sweep", metric="accuracy", space={"units": IntDistribution(16, 96)})

    def objective(trial):
        with sweep.trial(trial, model_fn, train_input_fn, validation_input_fn) as est:
            while est.global_step < 600:
                est.train(100).validate()
                est.save_ckpt()
            return sweep.best_value(est)

    sweep.optimize(objective, n_trials=12)
    sweep.register_best("parity")
"""

from .pruning import PruningListener, TrialPruned
from .retries import trial_storage
from .study_run import register_best_trial
from .sweep import Sweep

__all__ = ["Sweep", "PruningListener", "TrialPruned", "trial_storage", "register_best_trial"]
