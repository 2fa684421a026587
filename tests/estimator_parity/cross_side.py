"""One model_dir, both sides in turn: ours trains, the real tf.estimator continues it, ours continues again.

    ESTIMATOR_SIDE=ours python cross_side.py DIR 20            # train to global step 20
    ESTIMATOR_SIDE=real /work/venvs/tf215/bin/python cross_side.py DIR 25

Each run prints ``RESULT {...}``: the latest checkpoint tf.train.latest_checkpoint found before training,
the evaluation of it, and the global step reached. The model function is make_tf_estimator_dir's (the
blobs classifier of tests/estimator_programs.py).
"""

from __future__ import annotations

import json
import os
import sys

from make_tf_estimator_dir import program


def main(model_dir: str, max_steps: int) -> None:
    import side

    tf, E = side.load()
    model_fn, train_input_fn, eval_input_fn, _ = program(tf, E)
    found = tf.train.latest_checkpoint(model_dir)
    extra = {"tracking": False} if side.name() == "ours" else {}
    config = E.RunConfig(save_checkpoints_steps=10)
    est = E.Estimator(model_fn, model_dir, config=config, params={"learning_rate": 0.1}, **extra)
    before = est.evaluate(eval_input_fn) if found else None
    est.train(train_input_fn, max_steps=max_steps)
    result = {
        "side": side.name(),
        "found": os.path.relpath(found, model_dir) if found else None,
        "evaluated_step": int(before["global_step"]) if before else None,
        "global_step": int(est.get_variable_value("global_step")),
        "latest": os.path.relpath(tf.train.latest_checkpoint(model_dir), model_dir),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
