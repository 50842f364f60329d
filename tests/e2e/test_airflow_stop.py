"""`make airflow` (scripts/airflow.sh standalone) stops everything it started: SIGTERM to the script (what make
passes on when it gets one) or Ctrl-C (SIGINT to the terminal's foreground process group) leaves no process of
Airflow behind: API server, scheduler, DAG processor, triggerer, their log servers and LocalExecutor workers.

Airflow alone, in a temporary AIRFLOW_HOME on free ports, with screening_engine=submit (no engine to start) and no
DAG run: about a minute each on a 2-core machine, most of it Airflow starting."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "airflow.sh"
READY_S = 300  # Airflow up: ~50 s here, more while other jobs share the cores
STOP_S = 90  # AIRFLOW_STOP_GRACE_S (30) + 10 + 10 s of escalation, and some margin


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(port: int) -> bool:
    """The API server answers and the scheduler, DAG processor and triggerer have sent a heartbeat."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=3) as r:
            health = json.load(r)
    except (OSError, ValueError):
        return False
    parts = ("metadatabase", "scheduler", "dag_processor", "triggerer")
    return all((health.get(p) or {}).get("status") == "healthy" for p in parts)


def in_session(sid: int) -> list[str]:
    """Processes of session `sid` still running (those started after the snapshot of `started` too)."""
    left = []
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if os.getsid(p.pid) == sid and p.info["status"] != psutil.STATUS_ZOMBIE:
                left.append(f"{p.pid} {' '.join(p.info['cmdline'] or [])[:100]}")
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            pass
    return left


def alive(procs: list[psutil.Process]) -> list[str]:
    """Those still running (the same process: psutil checks its start time), zombies aside."""
    left = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{p.pid} {' '.join(p.cmdline())[:100]}")
        except psutil.NoSuchProcess:
            pass
    return left


@pytest.mark.parametrize(
    "how",
    [
        "sigterm",  # kill PID, or `make airflow` getting SIGTERM (make passes it on to the script)
        "ctrl-c",  # SIGINT to the whole foreground process group, as a terminal sends it
    ],
)
def test_make_airflow_leaves_no_airflow_process_behind(tmp_path, how):
    api, logs, trigger_logs = free_port(), free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))},
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
        "AIRFLOW__API__PORT": str(api),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(logs),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_logs),
        "AIRFLOW_VAR_SCREENING_ENGINE": "submit",  # no warm engine to start or stop: Airflow's processes only
    }
    out = tmp_path / "airflow.out"
    with open(out, "wb") as sink:
        # a process group of its own, as make's in a terminal; SIGINT at its default (a terminal's foreground job)
        script = subprocess.Popen(
            [str(SCRIPT), "standalone"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            process_group=0,
            restore_signals=True,
        )
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + READY_S
        while not healthy(api):
            assert script.poll() is None, f"airflow.sh exited early ({script.returncode}):\n{out.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"Airflow not up after {READY_S} s:\n{out.read_text()[-3000:]}"
            time.sleep(2)
        time.sleep(5)  # the scheduler's LocalExecutor workers and log servers are up too
        started = psutil.Process(script.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in started)
        for part in ("standalone", "scheduler", "dag-processor", "api_server", "triggerer", "LocalExecutor"):
            assert part in names, f"no {part} among {names}"
        [standalone] = [p for p in started if "standalone" in " ".join(p.cmdline())]
        sid = os.getsid(standalone.pid)
        assert sid == standalone.pid != os.getsid(script.pid)  # Airflow leads a session of its own

        if how == "sigterm":
            script.send_signal(signal.SIGTERM)
            expected = 143
        else:
            os.killpg(script.pid, signal.SIGINT)
            expected = 130
        code = script.wait(timeout=STOP_S)

        text = out.read_text()
        assert code == expected, text[-3000:]
        assert "stopping Airflow: every process of its session" in text and "Airflow stopped" in text
        # stopped cleanly: `airflow standalone` stopped its components, nothing needed SIGTERM or SIGKILL (a
        # SIGINT to every process, as a terminal's Ctrl-C sends, gave each two signals and hung the triggerer)
        assert "still running after" not in text, text[-3000:]
        assert alive(started) == [], text[-3000:]
        assert in_session(sid) == [], text[-3000:]
    finally:  # whatever happened, nothing of this test keeps running: the script, then what it started
        if script.poll() is None:
            script.kill()
        for p in started:
            try:
                p.kill()  # psutil: only the very process recorded, never a later one with its pid
            except psutil.NoSuchProcess:
                pass
        script.wait(timeout=30)
