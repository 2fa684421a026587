"""Remake ``docs/screenshots/sweep-runs.png``: the MLflow UI's runs table of the German-number sweep,
the study's run expanded to show its trials grouped under it.

    python docs/screenshots/make_sweep_screenshot.py [--store sqlite:///path/mlflow.db]

Without ``--store`` it first runs ``examples/german_numbers/sweep.py`` into a temporary store (a few
minutes). It then serves the store with ``mlflow server`` on 127.0.0.1, opens the experiment in
headless Chromium (Debian's ``chromium``), driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages ending in NUL on file descriptors 3 and 4, no extra
package), clicks the expander of the study's row and saves the screenshot.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
OUT = Path(__file__).resolve().parent / "sweep-runs.png"


class Browser:
    """Headless Chromium and one page of it, over the DevTools protocol on a pipe."""

    def __init__(self, profile: Path, width: int = 1600, height: int = 720):
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()
        os.set_inheritable(to_browser, True)
        os.set_inheritable(from_browser, True)
        chromium = shutil.which("chromium") or shutil.which("chromium-browser") or "google-chrome"
        self.process = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            pass_fds=(3, 4),  # kept open in the child after its preexec_fn put the pipes there
            preexec_fn=lambda: (os.dup2(to_browser, 3), os.dup2(from_browser, 4)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._next, self._buffer, self.session = 0, b"", None
        page = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params):
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                if not select.select([self._read], [], [], 60)[0]:
                    raise TimeoutError(f"Chromium did not answer {method} within 60 s")
                self._buffer += os.read(self._read, 1 << 20)
            line, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(line)
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never showed: {expression}")
            time.sleep(0.5)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


#: the runs table's expander beside a parent run's name (the run-name cell's button), after closing
#: the assistant panel (it takes a third of the page)
EXPAND = """(() => {
  const close = [...document.querySelectorAll('button')].find(b => b.getAttribute('aria-label') === 'Close');
  if (close) close.click();
  const expander = document.querySelector('button[data-component-id*="runnamecellrenderer"]');
  if (!expander) return false;
  expander.click();
  return true;
})()"""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="a SQLite MLflow store the sweep example already tracked to")
    parser.add_argument("--experiment", default="german-parity-sweep")
    args = parser.parse_args(argv)
    from mlflow.tracking import MlflowClient
    from mlflow_server import MlflowServer

    from elistimator_tracking.tracking.ui import experiment_link

    work = Path(tempfile.mkdtemp(prefix="sweep-screenshot-"))
    store = args.store
    if store is None:
        store = f"sqlite:///{work / 'mlflow.db'}"
        example = REPO / "examples" / "german_numbers" / "sweep.py"
        subprocess.run(
            [sys.executable, str(example), "--root", str(work / "runs")],
            check=True,
            env={**os.environ, "MLFLOW_TRACKING_URI": store},
        )
    server = MlflowServer(work / "server", backend=store).start()
    browser = None
    try:
        experiment_id = MlflowClient(server.uri).get_experiment_by_name(args.experiment).experiment_id
        browser = Browser(work / "profile")
        browser.call("Page.navigate", url=experiment_link(server.uri, experiment_id))
        browser.wait_for("document.body.innerText.includes('parity')")
        time.sleep(3)
        if not browser.evaluate(EXPAND):
            raise RuntimeError("no expander for the study's run found in the runs table")
        browser.wait_for("document.body.innerText.includes('trial-1')")
        time.sleep(2)
        browser.screenshot(OUT)
        print(f"wrote {OUT}")
    finally:
        if browser is not None:
            browser.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
