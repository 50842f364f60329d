"""jobs/faults.py: the crash drill's points, driven by SCREENING_CRASH_AT / SCREENING_CRASH_TARGET (no Spark)."""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import pytest

from jobs import faults


@pytest.fixture
def killed(monkeypatch):
    """What os.kill was asked to kill, instead of killing it."""
    calls = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: calls.append((pid, sig)))
    return calls


def test_a_crash_point_kills_this_process_only_at_the_point_it_names(monkeypatch, killed):
    monkeypatch.setenv("SCREENING_CRASH_AT", "publish:reasons")
    monkeypatch.delenv("SCREENING_CRASH_TARGET", raising=False)
    faults.point("publish:status")
    assert killed == []
    faults.point("publish:reasons")
    assert killed == [(os.getpid(), signal.SIGKILL)]


def test_with_the_engine_as_target_the_point_kills_the_engine_and_the_command_goes_on(monkeypatch, killed):
    monkeypatch.setenv("SCREENING_CRASH_AT", "ingest:bronze")
    monkeypatch.setenv("SCREENING_CRASH_TARGET", "engine")
    states = iter([SimpleNamespace(pid=4321), None])  # up, then gone once killed
    monkeypatch.setattr(faults.engine, "status", lambda: next(states))
    faults.point("ingest:bronze")
    assert killed == [(4321, signal.SIGKILL)]


def test_without_a_crash_point_nothing_is_killed(monkeypatch, killed):
    monkeypatch.delenv("SCREENING_CRASH_AT", raising=False)
    for name in faults.POINTS:
        faults.point(name)
    assert killed == []
