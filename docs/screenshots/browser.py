"""Headless Chromium driven over the DevTools protocol on a pipe, for the screenshot scripts.

``--remote-debugging-pipe``: JSON messages ending in NUL on file descriptors 3 and 4, no extra
package (Debian's ``chromium``; the flags are those ``tests/test_ui_browser.py`` uses).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path


def _pipe_fds(to_browser: int, from_browser: int) -> None:
    """In the child: the pipes' ends on descriptors 3 (read) and 4 (write), as Chromium expects; by way
    of descriptors above 10, so neither end is overwritten when the pipes themselves got 3 or 4."""
    high = fcntl.fcntl(to_browser, fcntl.F_DUPFD, 10), fcntl.fcntl(from_browser, fcntl.F_DUPFD, 10)
    os.dup2(high[0], 3)
    os.dup2(high[1], 4)


class Browser:
    """Headless Chromium and one page of it."""

    def __init__(self, profile: Path, width: int = 1500, height: int = 820):
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()
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
            pass_fds=(3, 4),  # what the child keeps, once _pipe_fds made them the pipes' ends
            preexec_fn=lambda: _pipe_fds(to_browser, from_browser),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)  # the browser's ends are its own now: a browser that dies ends the pipe
        os.close(from_browser)
        self._next, self._buffer, self.session = 0, b"", None
        page = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params):
        """Send one DevTools command and return its result."""
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed its pipe (exit status {self.process.wait(5)}) during {method}")
                self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(line)
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def open(self, url: str, shows: str, settle: float = 3.0, timeout: float = 90) -> None:
        """Navigate to ``url`` and wait until the page's text holds ``shows``, then ``settle`` seconds."""
        self.call("Page.navigate", url=url)
        self.wait_for(f"document.body && document.body.innerText.includes({json.dumps(shows)})", timeout)
        time.sleep(settle)

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
