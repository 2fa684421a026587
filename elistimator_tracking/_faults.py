"""Named crash points, for tests that kill a process at an exact moment.

``ELISTIMATOR_CRASH_AT=<name>`` (or ``<name>:<n>``) makes the process SIGKILL itself the
first (n-th) time it reaches ``crash_point(name)``. Without the variable a crash point
costs one environment lookup; it is placed only at a few moments per checkpoint or
validation, never per training step.
"""

from __future__ import annotations

import os
import signal
from typing import Dict

CRASH_ENV = "ELISTIMATOR_CRASH_AT"
_reached: Dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here, as a power cut or ``kill -9`` would, when ``$ELISTIMATOR_CRASH_AT`` names this point."""
    target = os.environ.get(CRASH_ENV)
    if not target:
        return
    point, _, nth = target.partition(":")
    if point != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
