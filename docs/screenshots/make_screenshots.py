"""Remake the documentation's screenshots from real runs: the MLflow UI and TensorBoard.

    python docs/screenshots/make_screenshots.py [--keep DIR]

In a temporary working directory (``--keep DIR`` keeps it), it runs the README's example as written
(its Python block, taken from README.md: two runs of experiment ``digits``, ``digits@champion``
registered) and the main job (``examples/german_numbers/parity.py``), both tracked to the default
local store there. Then it serves that store with ``mlflow server`` and the main job's ``runs/``
with ``tensorboard`` on 127.0.0.1, opens them in headless Chromium (``browser.py``), and writes:

- ``runs-table.png``: the runs table of ``digits`` (the link the package prints);
- ``compare-runs.png``: the two runs compared;
- ``run-logged-models.png``: a run's page, its checkpoints as logged models;
- ``experiment-logged-models.png``: every checkpoint of the experiment, with its metrics;
- ``registered-model.png``: the registered model ``digits`` with its ``@champion`` alias;
- ``tensorboard.png``: TensorBoard on the main job's run.

About 3 minutes on 2 cores. Both servers are children, stopped by their PID at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO / "tests"), str(HERE)]

from browser import Browser  # noqa: E402
from mlflow_server import MlflowServer, free_port  # noqa: E402

#: clicks the close button of the UI's assistant panel, which would cover a third of each picture
CLOSE_ASSISTANT = """(() => {
  const title = [...document.querySelectorAll('*')].find(e => e.childElementCount === 0 &&
      e.textContent.trim() === 'MLflow Assistant');
  if (!title) return 'none';
  let panel = title;
  for (let i = 0; i < 6 && panel.parentElement; i++) panel = panel.parentElement;
  const buttons = [...panel.querySelectorAll('button')];
  if (!buttons.length) return 'no button';
  buttons[buttons.length - 1].click();
  return 'closed';
})()"""


def readme_example() -> str:
    """The README's one runnable Python block, as written."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)
    return block


def run_jobs(work: Path) -> None:
    """The README's example, then the main job, in ``work`` (the default store: ``work/mlflow.db``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME")}
    (work / "example.py").write_text(readme_example(), encoding="utf-8")
    subprocess.run([sys.executable, "example.py"], cwd=work, env=env, check=True)
    parity = REPO / "examples" / "german_numbers" / "parity.py"
    subprocess.run([sys.executable, str(parity), "--model-dir", "runs/parity"], cwd=work, env=env, check=True)


class TensorBoard:
    """``tensorboard --logdir`` on 127.0.0.1, a child stopped by its PID."""

    def __init__(self, logdir: Path):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        tensorboard = Path(sys.executable).parent / "tensorboard"
        self.process = subprocess.Popen(
            [str(tensorboard), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(self.uri, timeout=2).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("tensorboard did not start") from None
                time.sleep(0.5)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def shoot(browser: Browser, url: str, shows: str, name: str) -> None:
    browser.open(url, shows)
    browser.evaluate(CLOSE_ASSISTANT)
    time.sleep(1)
    browser.screenshot(HERE / name)
    print(f"wrote {HERE / name}", flush=True)


def shoot_mlflow(browser: Browser, uri: str) -> None:
    from mlflow.tracking import MlflowClient

    from elistimator_tracking.tracking.ui import WORKFLOW, experiment_link

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("digits").experiment_id
    runs = {run.info.run_name: run.info.run_id for run in client.search_runs([experiment])}
    shoot(browser, experiment_link(uri, experiment), "units-64", "runs-table.png")
    compare = f"{uri}/#/compare-runs?runs={json.dumps(sorted(runs.values()))}&experiments={json.dumps([experiment])}"
    shoot(browser, compare.replace(" ", ""), "units-8", "compare-runs.png")
    run_page = f"{uri}/#/experiments/{experiment}/runs/{runs['units-64']}?{WORKFLOW}"
    shoot(browser, run_page, "Logged models", "run-logged-models.png")
    shoot(browser, f"{uri}/#/experiments/{experiment}/models?{WORKFLOW}", "step-", "experiment-logged-models.png")
    shoot(browser, f"{uri}/#/models/digits", "champion", "registered-model.png")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="screenshots-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run_jobs(work)
        server = MlflowServer(work / "server", backend=f"sqlite:///{work / 'mlflow.db'}").start()
        board = None
        browser = Browser(work / "profile")
        try:
            shoot_mlflow(browser, server.uri)
            board = TensorBoard(work / "runs")
            shoot(browser, f"{board.uri}/#timeseries", "validation", "tensorboard.png")
        finally:
            browser.close()
            server.stop()
            if board is not None:
                board.stop()
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
