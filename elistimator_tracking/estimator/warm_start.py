"""``WarmStartSettings`` and warm starting, as tf.estimator 2.15 did them.

A new model (no checkpoint in its ``model_dir``) starts from another model's weights: from a
checkpoint path, a model directory (tf.estimator's, or one this front end wrote, old ones
with their checkpoints in ``checkpoints/`` included) or an exported SavedModel. By default every
TRAINABLE variable is warm-started (``vars_to_warm_start='.*'``: not the global step, optimizer
slots or batch-norm statistics); ``tf.compat.v1.train.warm_start`` does the work, after ``model_fn``
made the variables and before they are initialized.
"""

from __future__ import annotations

import collections
import os
from typing import Any

from .._tf import tf
from ..errors import InvalidValueError
from ..model_dir import CHECKPOINT_DIR


class WarmStartSettings(
    collections.namedtuple(
        "WarmStartSettings",
        ["ckpt_to_initialize_from", "vars_to_warm_start", "var_name_to_vocab_info", "var_name_to_prev_var_name"],
    )
):
    """Where to warm-start from and which variables (tf.estimator's ``WarmStartSettings``).

    ``vars_to_warm_start``: a regular expression over the TRAINABLE variables (default ``'.*'``), a list
    of regular expressions over all global variables, a list of variables, or None (only those in
    ``var_name_to_vocab_info``). ``var_name_to_prev_var_name`` maps new names to names in the checkpoint.
    """

    def __new__(
        cls,
        ckpt_to_initialize_from: str,
        vars_to_warm_start: Any = ".*",
        var_name_to_vocab_info: dict | None = None,
        var_name_to_prev_var_name: dict | None = None,
    ):
        if not ckpt_to_initialize_from:
            raise InvalidValueError("`ckpt_to_initialize_from` MUST be set in WarmStartSettings")
        return super().__new__(
            cls,
            os.fspath(ckpt_to_initialize_from),
            vars_to_warm_start,
            var_name_to_vocab_info or {},
            var_name_to_prev_var_name or {},
        )


VocabInfo = tf.train.VocabInfo


def settings_of(warm_start_from: Any) -> WarmStartSettings | None:
    """The settings ``Estimator(warm_start_from=...)`` means: a path (checkpoint, model directory or
    SavedModel) warm-starts every trainable variable."""
    if warm_start_from is None:
        return None
    if isinstance(warm_start_from, WarmStartSettings):
        return warm_start_from
    if isinstance(warm_start_from, (str, bytes, os.PathLike)):
        path = os.fsdecode(warm_start_from)
        variables = os.path.join(path, "variables", "variables")
        if tf.io.gfile.exists(variables + ".index"):  # a SavedModel
            return WarmStartSettings(variables)
        return WarmStartSettings(path)
    raise InvalidValueError(
        f"warm_start_from must be a string or a WarmStartSettings, instead got {type(warm_start_from)} "
        "(a checkpoint path, a model directory or a SavedModel directory)"
    )


def checkpoint_of(settings: WarmStartSettings) -> str:
    """The checkpoint path prefix ``settings`` warm-start from (the latest one of a model directory)."""
    path = settings.ckpt_to_initialize_from
    if not tf.io.gfile.isdir(path):
        if not tf.io.gfile.exists(path + ".index"):
            raise InvalidValueError(f"warm_start_from={path!r}: there is no checkpoint there (no {path}.index)")
        return path
    latest = tf.train.latest_checkpoint(path) or tf.train.latest_checkpoint(os.path.join(path, CHECKPOINT_DIR))
    if latest is None:
        raise InvalidValueError(
            f"warm_start_from={path!r} holds no checkpoint (no 'checkpoint' state file naming one, "
            "there or in its checkpoints/ folder)"
        )
    return latest


def warm_start(settings: WarmStartSettings) -> None:
    """Make the variables of the default graph that ``settings`` choose start from its checkpoint."""
    tf.train.warm_start(
        checkpoint_of(settings),
        settings.vars_to_warm_start,
        settings.var_name_to_vocab_info,
        settings.var_name_to_prev_var_name,
    )
