"""Named crash points for crash tests: ``ELISTIMATOR_CRASH_AT=<name>[:<n>]`` SIGKILLs the process
the ``n``-th time (default: the first) it reaches the point ``name``.

Crash tests kill a training subprocess at an exact moment instead of a random one. The
points are listed in ``CRASH_POINTS``; without the variable a point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "ELISTIMATOR_CRASH_AT"
CRASH_POINTS = (
    "save.files",  # checkpoint files written and summed; neither journaled nor in elistimator.json
    "save.journaled",  # the checkpoint's upload journaled (held back); elistimator.json does not name it
    "save.committed",  # elistimator.json names the checkpoint; its upload may now be delivered
    "validate.journaled",  # the metrics journaled (held back); elistimator.json does not hold them
    "validate.committed",  # elistimator.json holds the metrics
    "branch.journaled",  # an abandoned branch's retraction journaled; elistimator.json still holds the branch
    "branch.committed",  # elistimator.json dropped the abandoned branch
    "journal.append",  # inside a journal append, before the line is written
    "journal.appended",  # a journal line written and synced, not yet queued
    "delivery.sent",  # a batch reached the store; the journal has not marked it delivered
    "tracking.run_created",  # the store created the run; the journal has not recorded its id
    "tracking.model_created",  # a checkpoint's logged model exists, empty and PENDING; nothing is marked
    "tracking.model_files_deleted",  # a dropped logged model's files are deleted; the model is not marked yet
)
_reached: dict[str, int] = {}


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
