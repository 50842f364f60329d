"""Fault injection for the crash drill (scripts/crash_drill.py): inert unless SCREENING_CRASH_AT names a point.

The drill kills the driver (SIGKILL: no cleanup, no finally blocks) at each point of a run, reruns the same as-of
and checks the tables end identical to an uninterrupted run.
"""

from __future__ import annotations

import os
import signal

POINTS = ("ingest:bronze", "ingest:done", "dq_feeds:done", "screen:done", "dq_results:done",
          "publish:reasons", "publish:status", "publish:assignments", "publish:lists", "publish:before_status")


def point(name: str) -> None:
    if os.environ.get("SCREENING_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
