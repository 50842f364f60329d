"""`make cluster-test`: the same jobs on a Spark standalone cluster give the same gold tables as local mode.

Starts a master and two workers on 127.0.0.1 from the installed pyspark (small memory, one core each), runs a
nightly and then an hourly screening of a tiny generated landing set through `spark-submit --master
spark://...` (the Delta jars via --jars, the executors on the project's Python like a cluster image), runs the
same two screenings in local mode, compares every gold table row for row, and stops the processes it started
(also on failure). Exit 0 when equal.

    .venv/bin/python scripts/cluster_test.py [--keep DIR] [--sf 0.0005] [--days 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pyspark  # noqa: E402

from jobs.devtools.generate import generate  # noqa: E402
from jobs.spark import delta_jar_paths  # noqa: E402

SPARK_HOME = Path(pyspark.__file__).parent
PY = sys.executable
GOLD = ("popup_reasons", "popup_status", "assignment_list", "release_list", "dispatch_list", "run_log")
WALL_CLOCK = {
    "run_log": ("started_at", "finished_at", "overrides", "stage_costs")
}  # when a run happened, not what it found
START = date(2022, 5, 1)
# in run_log.dq_summary, how a check ran rather than what it found: when, how long, how many Spark jobs, where
ENGINE_KEYS = ("seconds", "validated_at", "spark_jobs", "docs")


def without_engine_details(summary: str | None) -> str | None:
    """run_log.dq_summary without what depends on the machine, the engine's plan and the lake's path."""

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ENGINE_KEYS}
        return [strip(v) for v in x] if isinstance(x, list) else x

    return None if summary is None else json.dumps(strip(json.loads(summary)), sort_keys=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    e = dict(
        os.environ,
        SPARK_HOME=str(SPARK_HOME),
        SPARK_LOCAL_IP="127.0.0.1",
        PYSPARK_PYTHON=PY,
        PYSPARK_DRIVER_PYTHON=PY,
        TZ="Asia/Shanghai",
    )
    e.setdefault("SCREENING_PII_KEY", "cluster-test-key")
    return e


class Cluster:
    """A standalone master and workers; every process in its own process group, stopped by that id."""

    def __init__(self, work: Path, workers: int = 2, cores: int = 1, memory: str = "1g"):
        self.work, self.procs = work, []
        self.port = free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.workers, self.cores, self.memory = workers, cores, memory

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.work / f"{name}.log", "w")
        p = subprocess.Popen(
            [str(SPARK_HOME / "bin" / "spark-class"), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env(),
            start_new_session=True,
        )
        self.procs.append((name, p))

    def start(self) -> None:
        self._start(
            "master",
            [
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--webui-port",
                str(free_port()),
            ],
        )
        self._wait_port(self.port, "master")
        for i in range(self.workers):
            wd = self.work / f"worker{i}"
            wd.mkdir(parents=True, exist_ok=True)
            self._start(
                f"worker{i}",
                [
                    "org.apache.spark.deploy.worker.Worker",
                    self.url,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    str(self.cores),
                    "--memory",
                    self.memory,
                    "--webui-port",
                    str(free_port()),
                    "--work-dir",
                    str(wd),
                ],
            )
        deadline = time.time() + 120
        while time.time() < deadline:  # both workers registered with the master
            text = (self.work / "master.log").read_text(errors="replace")
            if text.count("Registering worker") >= self.workers:
                return
            time.sleep(1)
        raise RuntimeError(f"workers did not register within 120 s; see {self.work}/*.log")

    def _wait_port(self, port: int, name: str) -> None:
        deadline = time.time() + 90
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"{name} did not open port {port} within 90 s; see {self.work}/{name}.log")

    def stop(self) -> None:
        for _name, p in reversed(self.procs):  # workers first: they stop their executors
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for _name, p in reversed(self.procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs.clear()


def submit(cluster: Cluster, work: Path, args: list[str]) -> None:
    """What a real cluster run is: spark-submit with the master URL, jars and conf on the command line. The code
    comes from the installed project (`jobs` reads schemas/ and policy.toml next to it, so it is not zipped
    into --py-files); executors run the same Python (spark.pyspark.python), as a cluster image would."""
    cmd = [
        str(SPARK_HOME / "bin" / "spark-submit"),
        "--master",
        cluster.url,
        "--deploy-mode",
        "client",
        "--jars",
        ",".join(str(p) for p in delta_jar_paths()),
        "--driver-memory",
        "1g",
        "--executor-memory",
        "768m",
        "--executor-cores",
        "1",
        "--total-executor-cores",
        str(cluster.workers * cluster.cores),
        "--driver-java-options",
        "-Duser.timezone=Asia/Shanghai",
        "--conf",
        "spark.executor.extraJavaOptions=-Duser.timezone=Asia/Shanghai",
        "--conf",
        f"spark.pyspark.python={PY}",
        "--conf",
        "spark.sql.shuffle.partitions=4",
        str(ROOT / "jobs" / "cli.py"),
        *args,
    ]
    subprocess.run(
        cmd, env=env(), check=True, cwd=work, stdout=open(work / "submit.log", "a"), stderr=subprocess.STDOUT
    )


def local(args: list[str], work: Path) -> None:
    e = dict(env(), SCREENING_SPARK_MASTER="local[2]", SCREENING_SHUFFLE_PARTITIONS="4")
    subprocess.run(
        [PY, "-m", "jobs.cli", *args],
        env=e,
        check=True,
        cwd=ROOT,
        stdout=open(work / "local.log", "a"),
        stderr=subprocess.STDOUT,
    )


def runs(landing: Path, lake: Path, days: int) -> list[list[str]]:
    night = datetime.combine(START + timedelta(days=days), datetime.min.time()) + timedelta(hours=1)
    return [
        ["run", "--landing", str(landing), "--lake", str(lake), "--as-of", night.isoformat(), "--mode", mode]
        for mode, night in (("nightly", night), ("hourly", night + timedelta(hours=1)))
    ]


def compare(lake_a: Path, lake_b: Path) -> list[str]:
    """Differences between the gold tables of two lakes (row multisets), as lines."""
    from jobs.lake import Lake
    from jobs.spark import get_spark

    os.environ.setdefault("SCREENING_SPARK_MASTER", "local[2]")
    spark = get_spark("cluster-test-compare")
    problems = []
    for t in GOLD:
        a, b = Lake(lake_a).read_gold(spark, t), Lake(lake_b).read_gold(spark, t)
        cols = [c for c in a.columns if c not in WALL_CLOCK.get(t, ())]
        a, b = a.select(*cols), b.select(*cols)
        if "dq_summary" in cols:  # a few rows: compared on the driver, the summary without engine details
            a, b = (
                [
                    repr(sorted(dict(r.asDict(), dq_summary=without_engine_details(r["dq_summary"])).items()))
                    for r in x.collect()
                ]
                for x in (a, b)
            )
            na, nb = len(a), len(b)
            only_a, only_b = len(Counter(a) - Counter(b)), len(Counter(b) - Counter(a))
        else:
            na, nb = a.count(), b.count()
            only_a, only_b = a.exceptAll(b).count(), b.exceptAll(a).count()
        print(f"  {t:<16} local {na:>6} rows, cluster {nb:>6} rows, differing {only_a + only_b}")
        if only_a or only_b or na != nb:
            problems.append(f"{t}: {only_a} rows only in local, {only_b} only on the cluster")
    spark.stop()
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sf", type=float, default=0.0005)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--keep", help="work in this directory and keep it (default: a temporary one, removed)")
    a = ap.parse_args(argv)
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="screening-cluster-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    landing = work / "landing"
    generate(landing, sf=a.sf, start=START, days=a.days, seed=7, log=lambda *_: None)
    cluster = Cluster(work)
    try:
        cluster.start()
        print(f"cluster up at {cluster.url} (2 workers x 1 core, 1g) in {time.time() - t0:.0f} s")
        for args in runs(landing, work / "lake-cluster", a.days):
            t = time.time()
            submit(cluster, work, args)
            print(f"  cluster {args[-1]:<8} {time.time() - t:6.0f} s")
    finally:
        cluster.stop()
    for args in runs(landing, work / "lake-local", a.days):
        t = time.time()
        local(args, work)
        print(f"  local   {args[-1]:<8} {time.time() - t:6.0f} s")
    problems = compare(work / "lake-local", work / "lake-cluster")
    print(f"cluster test {'FAILED' if problems else 'passed'} in {time.time() - t0:.0f} s")
    for p in problems:
        print("  " + p)
    if not a.keep and not problems:
        shutil.rmtree(work, ignore_errors=True)
    elif problems:
        print(f"logs and lakes kept in {work}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
