"""The parity programs on the real tf.estimator 2.15 and on ours, sides alternating: medians and bests.

For every program of ``tests/estimator_parity/programs`` (the shapes of public tf.estimator programs),
``--pairs`` pairs of runs, the order of the two sides flipping every pair, each run a process of its
own: the real side in the TF 2.15 venv (``side.REAL_PYTHON``), ours in this interpreter, tracked to a
SQLite store that exists before the first run (``--untracked`` adds our side with ``tracking=False``).
Per program: the whole process (import to exit), the steps/s inside its main ``train()`` call, its
first ``train()`` call; and for ``repeated_calls`` 10 ``evaluate()``, 10 ``predict()`` and 5
``train(steps=100)`` on one Estimator. Ratios are ours/real (times: lower is better; steps/s: higher).

    /work/bin/heavy --solo python bench/estimator_parity_speed.py --pairs 3 [--untracked] [--programs ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "estimator_parity"))
import run_programs  # noqa: E402

MEASURES = {  # name in the table: (where in a run, higher is better)
    "whole program, s": (lambda run: run["process_seconds"], False),
    "steps/s in train()": (lambda run: run["result"]["steps_per_sec"], True),
    "first train(), s": (lambda run: run["result"]["first_train_seconds"], False),
}
REPEATED = {"10 evaluate(), s": "evaluate_10", "10 predict(), s": "predict_10", "5 train(steps=100), s": "train_5x100"}


def measure(programs: list[str], pairs: int, untracked: bool) -> list[dict]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="parity-speed-") as work:
        root = Path(work)
        uri = run_programs.prepared_store(root)
        for pair in range(pairs):
            for program in programs:
                sides = ["real", "ours"] if (pair + programs.index(program)) % 2 == 0 else ["ours", "real"]
                for side in sides:
                    variants = [(side, {})] + (
                        [("ours, untracked", {"ESTIMATOR_TRACKING": "0"})] if side == "ours" and untracked else []
                    )
                    for variant, extra in variants:
                        os.environ.update(extra)
                        try:
                            run = run_programs.run_one(program, side, root, uri) | {"variant": variant}
                        finally:
                            for key in extra:
                                del os.environ[key]
                        runs.append(run)
                        print(f"pair {pair + 1} {program:18} {variant:16} {run['process_seconds']:6.1f} s", flush=True)
    return runs


def _result(key: str):
    return lambda run: run["result"][key]


def summary(values: list[float], higher_better: bool) -> tuple[float, float]:
    return statistics.median(values), (max(values) if higher_better else min(values))


def table(runs: list[dict], variants: list[str]) -> str:
    ok = [r for r in runs if r["ok"]]
    failed = sorted({(r["program"], r["variant"]) for r in runs if not r["ok"]})
    head = "| program | measure | " + " | ".join(f"{v} median (best)" for v in variants)
    head += " | " + " | ".join(f"{v}/real median (best)" for v in variants if v != "real") + " |"
    lines = [head, "|" + " --- |" * (2 + 2 * len(variants) - 1)]
    for program in dict.fromkeys(r["program"] for r in ok):
        measures = dict(MEASURES)
        if program == "repeated_calls":
            measures.update({name: (_result(key), False) for name, key in REPEATED.items()})
        for name, (get, higher) in measures.items():
            cells, medians = [], {}
            for variant in variants:
                values = [get(r) for r in ok if r["program"] == program and r["variant"] == variant]
                if not values:
                    cells.append("-")
                    continue
                medians[variant] = summary(values, higher)
                cells.append(f"{medians[variant][0]:,.2f} ({medians[variant][1]:,.2f})")
            ratios = []
            for variant in variants[1:]:
                if variant in medians and "real" in medians:
                    (median, best), (real_median, real_best) = medians[variant], medians["real"]
                    ratios.append(f"{median / real_median:.2f} ({best / real_best:.2f})")
                else:
                    ratios.append("-")
            lines.append(f"| {program} | {name} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    if failed:
        lines.append(f"\nfailed runs: {failed}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--programs", nargs="+", default=run_programs.PROGRAMS)
    parser.add_argument("--untracked", action="store_true", help="also run our side with tracking=False")
    parser.add_argument("--out", help="write every run as JSON")
    args = parser.parse_args()
    before = os.getloadavg()
    runs = measure(args.programs, args.pairs, args.untracked)
    after = os.getloadavg()
    if args.out:
        Path(args.out).write_text(json.dumps(runs, indent=1) + "\n")
    variants = ["real", "ours"] + (["ours, untracked"] if args.untracked else [])
    print(
        f"\nload average before {' '.join(f'{v:.2f}' for v in before)}, after {' '.join(f'{v:.2f}' for v in after)}; "
        f"{args.pairs} alternating pairs per program"
    )
    print(table(runs, variants))


if __name__ == "__main__":
    main()
