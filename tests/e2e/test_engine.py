"""The warm engine (`screening engine`, jobs/engine.py): a Spark Connect server this module starts on a free port,
and `screening` commands run as its thin clients (SCREENING_SPARK_REMOTE). The classic path is the tests' own
session: a run on the engine must give the same gold tables as a classic run, hourly runs on the engine must end
where a nightly run ends, and an engine that dies mid-run fails the command in one line, the rerun ending where
an uninterrupted run ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from jobs import engine
from jobs.devtools.generate import generate
from jobs.lake import Lake
from jobs.run import run
from jobs.schemas import FEEDS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
T = datetime(2022, 5, 3, 1, 0)
HOURLY = [T - timedelta(hours=h) for h in (18, 12, 6, 0)]
PUBLISHED = ("popup_reasons", "popup_status", "assignment_list", "release_list", "dispatch_list")
# run_log columns that tell how a run went (wall clock, costs), not what it found
OPERATIONAL = ("started_at", "finished_at", "stage_costs", "dq_summary")


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def eng(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine")
    folder, port = root / "state", engine.free_port()
    st = engine.start(port, "2g", testing=True, folder=folder, log=quiet)
    landing = root / "landing"
    generate(landing, sf=0.0005, start=date(2022, 5, 1), days=3, seed=7, log=quiet)
    yield SimpleNamespace(root=root, folder=folder, port=port, pid=st.pid, landing=landing, url=engine.remote_url(port))
    engine.stop(folder, log=quiet)


def screening(eng, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The console command as a thin client of the module's engine."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    full.update({"SCREENING_SPARK_REMOTE": eng.url, "SCREENING_ENGINE_HOME": str(eng.folder), **env})
    exe = Path(sys.executable).with_name("screening")
    return subprocess.run([str(exe), *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=900)


def run_on_engine(eng, lake: Path, as_of: datetime, mode: str = "nightly", **env: str) -> subprocess.CompletedProcess:
    return screening(
        eng,
        "run",
        "--landing",
        str(eng.landing),
        "--lake",
        str(lake),
        "--as-of",
        as_of.isoformat(),
        "--mode",
        mode,
        **env,
    )


def ok(res: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def table(spark, lake: Lake, name: str, drop: tuple[str, ...] = ()) -> list[tuple]:
    rows = [
        tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in r.asDict().items() if k not in drop))
        for r in lake.read_gold(spark, name).collect()
    ]
    return sorted(rows, key=lambda t: tuple("" if v is None else str(v) for _, v in t))


@pytest.fixture(scope="module")
def engine_nightly(eng):
    """The nightly run at T on the engine, every data-quality suite on (Great Expectations as a thin client)."""
    lake = eng.root / "engine-nightly"
    res = ok(run_on_engine(eng, lake, T, SCREENING_DQ_SUITES="1"))
    return SimpleNamespace(lake=Lake(lake), out=res.stdout)


def test_engine_start_is_idempotent_and_status_says_where_it_listens(eng):
    again = engine.start(eng.port, testing=True, folder=eng.folder, log=quiet)
    assert again.pid == eng.pid
    res = subprocess.run(
        [str(Path(sys.executable).with_name("screening")), "engine", "status"],
        cwd=ROOT,
        env={**os.environ, "SCREENING_ENGINE_HOME": str(eng.folder)},
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"engine: up at sc://127.0.0.1:{eng.port}, pid {eng.pid}, uptime ")
    assert "MB resident of 2g heap" in res.stdout
    # the server listens on the loopback address only
    listening = [ln.split() for f in ("tcp", "tcp6") for ln in Path(f"/proc/net/{f}").read_text().splitlines()[1:]]
    mine = {cols[1].split(":")[0] for cols in listening if cols[3] == "0A" and cols[1].endswith(f":{eng.port:04X}")}
    assert mine and mine <= {"0100007F", "0000000000000000FFFF00000100007F"}, mine  # 127.0.0.1, also as IPv6


def test_a_nightly_run_on_the_engine_gives_the_gold_tables_of_a_classic_run(spark, eng, engine_nightly, tmp_path):
    assert f"spark: a thin client of the engine at {eng.url}" in engine_nightly.out
    n = len(FEEDS)  # the generator delivers every feed, the optional reference feeds too
    assert f"data quality (dq_feeds): {n} suite(s), {n} passed" in engine_nightly.out
    classic = Lake(tmp_path / "classic")
    assert run(str(eng.landing), str(classic.root), T, mode="nightly", log=quiet) == 0
    for name in PUBLISHED:
        got, want = table(spark, engine_nightly.lake, name), table(spark, classic, name)
        assert len(want) > 0 and got == want, name
    assert table(spark, engine_nightly.lake, "run_log", OPERATIONAL) == table(spark, classic, "run_log", OPERATIONAL)
    for feed in ("telecom_stays", "persons", "grid_dwells"):
        assert engine_nightly.lake.read_bronze(spark, feed).count() == classic.read_bronze(spark, feed).count() > 0


def test_a_run_on_the_engine_records_each_stage_and_one_run_log_commit(spark, engine_nightly):
    row = engine_nightly.lake.read_gold(spark, "run_log").first()
    import json

    costs = json.loads(row["stage_costs"])
    assert sorted(costs) == sorted(["ingest", "dq_feeds", "screen", "dq_results", "publish"])
    assert all(c["seconds"] > 0 and c["spark_jobs"] is None for c in costs.values())  # a thin client cannot count jobs
    assert costs["ingest"]["delta_commits"] > 0 and costs["screen"]["delta_commits"] == 1  # the staged reasons
    history = spark.sql(f"DESCRIBE HISTORY delta.`{engine_nightly.lake.gold('run_log')}`").collect()
    assert len(history) == 1  # the run's row, committed once when it completed


def test_hourly_runs_on_the_engine_end_in_the_state_of_the_nightly_run(spark, eng, engine_nightly, tmp_path):
    lake = Lake(tmp_path / "hourly")
    shutil.copytree(engine_nightly.lake.root / "bronze", lake.root / "bronze")
    outs = [ok(run_on_engine(eng, lake.root, t, "hourly")).stdout for t in HOURLY]
    assert sum("people to screen (changes since" in o for o in outs) == 3  # the first recomputes everyone
    drop = ("first_run_id", "release_run_id")
    assert table(spark, lake, "popup_reasons", drop) == table(spark, engine_nightly.lake, "popup_reasons", drop)
    assert table(spark, lake, "popup_status", ("updated_run_id",)) == table(
        spark, engine_nightly.lake, "popup_status", ("updated_run_id",)
    )


def test_an_engine_dying_mid_run_fails_in_one_line_and_the_rerun_ends_where_an_uninterrupted_run_ends(
    spark, eng, engine_nightly, tmp_path
):
    lake = tmp_path / "crashed"
    res = run_on_engine(eng, lake, T, SCREENING_CRASH_AT="publish:reasons", SCREENING_CRASH_TARGET="engine")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == (
        f"screening run failed: the engine at {eng.url} stopped answering. Start it (`screening engine start`) and "
        "rerun the same command: a rerun ends where an uninterrupted run ends."
    )
    assert engine.status(eng.folder) is None
    eng.pid = engine.start(eng.port, "2g", testing=True, folder=eng.folder, log=quiet).pid
    ok(run_on_engine(eng, lake, T))
    for name in PUBLISHED:
        assert table(spark, Lake(lake), name) == table(spark, engine_nightly.lake, name), name
    assert table(spark, Lake(lake), "run_log", OPERATIONAL) == table(spark, engine_nightly.lake, "run_log", OPERATIONAL)


def test_a_command_says_in_one_line_that_no_engine_answers(eng, tmp_path):
    res = screening(
        eng,
        "stage",
        "ingest",
        "--landing",
        str(eng.landing),
        "--lake",
        str(tmp_path / "lake"),
        "--as-of",
        T.isoformat(),
        SCREENING_SPARK_REMOTE=f"sc://127.0.0.1:{engine.free_port()}",
    )
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("engine at sc://127.0.0.1:")
        and lines[0].endswith(
            "does not answer (SparkConnectGrpcException): start it with `screening engine start`, or unset "
            "SCREENING_SPARK_REMOTE to run in a local session of this process"
        )
    ), lines
    assert not (tmp_path / "lake").exists()


def test_stop_ends_the_engine_it_started_and_only_that(eng):
    pid = eng.pid
    assert engine.stop(eng.folder, log=quiet) is True
    assert engine.status(eng.folder) is None and not engine._ours(pid)
    assert engine.stop(eng.folder, log=quiet) is False  # nothing of ours left: nothing else is touched
