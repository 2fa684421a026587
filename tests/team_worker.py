"""One training process of the team load test (tests/test_team_server.py).

    python team_worker.py URI MODEL_DIR EXPERIMENT STEPS_PER_ROUND ROUND_SECONDS STOP_FILE OUT_JSON

Trains the tiny model against the tracking server ``URI`` in rounds (``train(steps)``, ``validate()``,
``save_ckpt()``) until ``STOP_FILE`` exists, then closes. A round lasts at least ``ROUND_SECONDS``:
the tiny model's steps take milliseconds, a real model's a good part of a second, so unpaced it
would save checkpoints many times faster than any real training does. After each round it appends
``<step> <round start> <round end>`` (``time.time()``) to ``OUT_JSON.progress``; at the end it writes
``OUT_JSON``: the run id, what each ``validate()`` returned by step, the saved steps and each
``train()`` call's start and end, so the test can match them against the server's outage.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import blobs, dataset_fn, tiny_model_fn  # noqa: E402

from elistimator_tracking import Elistimator  # noqa: E402

MAX_ROUNDS = 500  # a runaway guard: the test stops the workers long before


def main(uri: str, model_dir: str, experiment: str, steps: str, round_seconds: str, stop_file: str, out: str) -> None:
    seed = sum(map(ord, Path(model_dir).name))
    (x, y), (vx, vy) = blobs(400, seed), blobs(30, seed + 1)
    returned, saved, calls = {}, [], []
    progress = Path(out + ".progress")
    with Elistimator(
        tiny_model_fn, model_dir, verbose=False, tracking=uri, experiment=experiment, run_name=Path(model_dir).name
    ) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": 2})
        for _ in range(MAX_ROUNDS):
            start = time.time()
            est.train(steps=int(steps))
            calls.append((start, time.time()))
            returned[est.global_step] = est.validate()
            est.save_ckpt()
            saved.append(est.global_step)
            time.sleep(max(0.0, start + float(round_seconds) - time.time()))
            with progress.open("a") as handle:
                handle.write(f"{est.global_step} {start} {time.time()}\n")
            if Path(stop_file).exists():
                break
        run_id = est.run_id
    Path(out).write_text(
        json.dumps({"run_id": run_id, "returned": returned, "saved": saved, "calls": calls, "closed": time.time()})
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
