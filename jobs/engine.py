"""The warm engine: one Spark Connect server that `screening` commands, Airflow tasks and tests use as thin clients.

`screening engine start | status | stop`. The server is `org.apache.spark.sql.connect.service.SparkConnectServer`
from the installed pyspark (spark-submit; the wheel ships no start script), with the Delta jars and the project's
Spark settings (`jobs.spark.builder_config`), listening on 127.0.0.1 only. Its pid, port, start time and log live
in the state folder (`SCREENING_ENGINE_HOME`, default `<project>/.engine/`). Clients find it through
`SCREENING_SPARK_REMOTE=sc://127.0.0.1:15002`; unset, every command starts its own classic session as before.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from jobs.settings import DEFAULT_ENGINE_PORT, settings
from jobs.spark import builder_config, delta_jar_paths, master

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_PORT = DEFAULT_ENGINE_PORT  # the default of SCREENING_ENGINE_PORT
START_TIMEOUT_S = 180  # a cold JVM with Delta on 2 busy cores answers in 10-40 s


def home() -> Path:
    return settings().engine_home


def remote_url(port: int = DEFAULT_PORT) -> str:
    return f"sc://127.0.0.1:{port}"


@dataclass
class State:
    pid: int
    port: int
    started_at: float
    log: str
    driver_memory: str

    @classmethod
    def read(cls, folder: Path) -> State | None:
        try:
            return cls(**json.loads((folder / "engine.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def write(self, folder: Path) -> None:
        (folder / "engine.json").write_text(json.dumps(self.__dict__))


def _ours(pid: int) -> bool:
    """The process is alive and is a Spark Connect server (a recycled pid is not ours)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return SERVER_CLASS.encode() in cmdline


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _answers(port: int) -> bool:
    """A client session runs a query (the port opens before the server serves). The Connect session class itself,
    not pyspark's builder: that would switch this whole process to Connect mode, and a process with a classic
    session (tests, `screening engine start` under spark-submit) must keep it."""
    from pyspark.sql.connect.session import SparkSession  # here only: the CLI imports this module at start-up

    try:
        spark = SparkSession.builder.remote(remote_url(port)).create()
        try:
            return spark.range(1).count() == 1
        finally:
            spark.stop()
    except Exception:  # noqa: BLE001 (not serving yet)
        return False


def memory_mb(pid: int, field: str = "VmRSS") -> float | None:
    """A process's memory from /proc (VmRSS resident now, VmHWM its peak), or None where there is none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (tests start engines of their own)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(port: int, driver_memory: str, *, testing: bool = False) -> list[str]:
    conf = builder_config("screening-engine", testing=testing)
    conf.pop("spark.jars", None)
    conf.update(
        {
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(port),
            # The server keeps each session's and statement's text for its UI tab (200 of each by default, a plan
            # string each): a few are enough with the UI off, and the heap stays flat over many runs.
            "spark.sql.connect.ui.retainedSessions": "10",
            "spark.sql.connect.ui.retainedStatements": "50",
            # a client that died without ending its session frees what it held after this long, not the default hour
            "spark.connect.session.manager.defaultSessionTimeout": settings().engine_session_timeout,
        }
    )
    cmd = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--class",
        SERVER_CLASS,
        "--master",
        master(testing),
        "--driver-memory",
        driver_memory,
        "--jars",
        ",".join(str(p) for p in delta_jar_paths()),
    ]
    for k, v in conf.items():
        cmd += ["--conf", f"{k}={v}"]
    return [*cmd, "spark-internal"]


def status(folder: Path | None = None) -> State | None:
    """The running engine's state, or None when it is not up (a stale state file is ignored)."""
    folder = folder or home()
    st = State.read(folder)
    if st is None or not _ours(st.pid):
        return None
    return st


def start(
    port: int | None = None,
    driver_memory: str | None = None,
    *,
    testing: bool = False,
    folder: Path | None = None,
    log=print,
) -> State:
    """Start the engine unless it is up already; return once it answers a query."""
    folder = folder or home()
    folder.mkdir(parents=True, exist_ok=True)
    st = status(folder)
    if st is not None:
        _wait(st, log)  # returns at its first answer; a server still starting is waited for
        log(f"engine already up: pid {st.pid}, {remote_url(st.port)}")
        return st
    port = port or settings().engine_port
    if _port_open(port):
        raise SystemExit(f"engine: port {port} on 127.0.0.1 is taken by another process; set SCREENING_ENGINE_PORT")
    driver_memory = driver_memory or settings().driver_memory
    log_path = folder / "engine.log"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "TZ": "Asia/Shanghai", "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    env.pop("SCREENING_SPARK_REMOTE", None)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            server_command(port, driver_memory, testing=testing),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder,
            start_new_session=True,
        )
    st = State(proc.pid, port, time.time(), str(log_path), driver_memory)
    st.write(folder)
    _wait(st, log, proc)
    log(
        f"engine up: pid {st.pid}, {remote_url(port)} (log {log_path}); "
        f"export SCREENING_SPARK_REMOTE={remote_url(port)}"
    )
    return st


def _wait(st: State, log, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"engine: the server exited with {proc.returncode} while starting; see {st.log}")
        if _port_open(st.port) and _answers(st.port):
            return
        time.sleep(1)
    raise SystemExit(f"engine: no answer on {remote_url(st.port)} after {START_TIMEOUT_S} s; see {st.log}")


def stop(folder: Path | None = None, log=print) -> bool:
    """Stop the engine this state folder started (never another process). True when one was stopped."""
    folder = folder or home()
    st = status(folder)
    if st is None:
        log("engine: not running")
        return False
    os.kill(st.pid, signal.SIGTERM)
    for _ in range(60):
        if not _ours(st.pid):
            break
        time.sleep(0.5)
    else:
        os.kill(st.pid, signal.SIGKILL)
    for _ in range(40):  # a `start` right after finds the port free
        if not _port_open(st.port):
            break
        time.sleep(0.25)
    (folder / "engine.json").unlink(missing_ok=True)
    log(f"engine stopped (pid {st.pid})")
    return True


def describe(st: State | None) -> str:
    if st is None:
        return "engine: down (start it with `screening engine start`)"
    up = time.time() - st.started_at
    rss = memory_mb(st.pid)
    return (
        f"engine: up at {remote_url(st.port)}, pid {st.pid}, uptime {int(up // 3600)}h{int(up % 3600 // 60):02d}m"
        f"{int(up % 60):02d}s, driver memory {rss:,.0f} MB resident of {st.driver_memory} heap, log {st.log}"
        if rss is not None
        else f"engine: up at {remote_url(st.port)}, pid {st.pid}"
    )


def cmd_engine(args) -> int:
    if args.action == "start":
        start(args.port, args.driver_memory)
        return 0
    if args.action == "stop":
        stop()
        return 0
    st = status()
    print(describe(st))
    return 0 if st is not None else 1


def add_parser(sub) -> None:
    e = sub.add_parser(
        "engine",
        help="start, check or stop the warm Spark Connect engine (one JVM for every command)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("action", choices=["start", "status", "stop"])
    e.add_argument("--port", type=int, help=f"gRPC port on 127.0.0.1 (default {DEFAULT_PORT}, SCREENING_ENGINE_PORT)")
    e.add_argument("--driver-memory", help="the engine's heap (default SCREENING_DRIVER_MEMORY, else 4g)")
    e.set_defaults(func=cmd_engine)
