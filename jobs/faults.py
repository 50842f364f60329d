"""Fault injection for the crash drill (scripts/crash_drill.py): inert unless SCREENING_CRASH_AT names a point.

The drill kills the driver (SIGKILL: no cleanup, no finally blocks) at each point of a run, reruns the same as-of
and checks the tables end identical to an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import time

from jobs import engine
from jobs.settings import settings

POINTS = (
    "ingest:bronze",
    "ingest:done",
    "dq_feeds:done",
    "screen:done",
    "dq_results:done",
    "publish:reasons",
    "publish:status",
    "publish:assignments",
    "publish:lists",
    "publish:before_status",
)


def point(name: str) -> None:
    """SCREENING_CRASH_AT=name kills this process there; with SCREENING_CRASH_TARGET=engine it kills the warm
    engine instead (the Spark Connect server this command is a client of), and the command goes on without it."""
    s = settings()
    if s.crash_at == name:
        if s.crash_target == "engine":
            st = engine.status()
            if st is not None:
                os.kill(st.pid, signal.SIGKILL)
                while engine.status() is not None:
                    time.sleep(0.1)
            return
        os.kill(os.getpid(), signal.SIGKILL)
