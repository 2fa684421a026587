"""Named crash points for crash tests: ``ELISTIMATOR_CRASH_AT=<name>[:<n>]`` SIGKILLs the process
the ``n``-th time (default: the first) it reaches the point ``name``.

Crash tests kill a training subprocess at an exact moment instead of a random one. The
points are listed in ``CRASH_POINTS``; without the variable a point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
from typing import Dict

CRASH_ENV = "ELISTIMATOR_CRASH_AT"
CRASH_POINTS = (
    "save_ckpt.files_written",    # checkpoint files written and summed; elistimator.json does not name them yet
    "save_ckpt.committed",        # elistimator.json names the checkpoint; the tracking journal does not yet
    "save_ckpt.journaled",        # the checkpoint's upload is in the journal; the TF checkpoint file is not updated
    "validate.index_written",     # elistimator.json holds the metrics; the tracking journal does not yet
    "tracking.run_created",       # the store created the run; the journal has not recorded its id
    "tracking.delivered",         # a batch reached the store; the journal has not marked it delivered
)
_reached: Dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL this process if ``ELISTIMATOR_CRASH_AT`` names ``name`` (and this is its n-th arrival)."""
    target = os.environ.get(CRASH_ENV)
    if not target:
        return
    wanted, _, count = target.partition(":")
    if wanted != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
