"""The Airflow DAGs end to end: `airflow dags test` (scripts/airflow.sh, a temporary AIRFLOW_HOME with SQLite) runs
every task against a small generated landing set, each stage a thin client of a warm engine this module starts (its
own state folder and a free port; stopped at the end); the gold tables are read afterwards with the shared `spark`
fixture.

1. screening_nightly for 2022-05-03 (as-of = its data interval end, 2022-05-03 01:00 Beijing) on two generated days.
2. screening_hourly at 05-03 13:10 after a few hand-made rows landed, then at 05-04 09:10 after more landed: each
   run assigns and releases exactly what the new files (and the clock) imply.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from jobs import engine, maintenance
from jobs.devtools.generate import generate
from jobs.keys import person_key_py
from jobs.lake import Lake
from tests.landing import resident_id, write_feed

# 16 stage tasks, thin clients of one engine, about 5 minutes here (part of `make test`; alone:
# `make test-airflow`)
pytestmark = [pytest.mark.slow, pytest.mark.airflow_e2e]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "airflow.sh"
NIGHTLY = "nightly-20220503T010000"
HOURLY_1, HOURLY_2 = "hourly-20220503T131000", "hourly-20220504T091000"
CHAIN = ["ingest", "dq_feeds", "screen", "dq_results", "publish"]
P_IN = resident_id("11010119800101001")  # entered 04-12 (21 days): popup ② until 05-04 00:00
P_DRUG = resident_id("11010519850202002")  # bought antivirals on 05-03 09:00: popup ④ until a negative NAT
P_NEW = resident_id("11010619900303003")  # entered 05-04: popup ② from the second hourly run


def quiet(*_):
    pass


def dt(s: str) -> datetime:
    return datetime.fromisoformat(s)


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """An engine of this module's own (never the one on 15002 a developer may run), stopped at module teardown."""
    folder = tmp_path_factory.mktemp("engine-home")
    port = engine.free_port()
    try:
        st = engine.start(port, testing=True, folder=folder, log=quiet)
    except SystemExit as e:  # jobs.engine reports a failed start as SystemExit
        engine.stop(folder, log=quiet)
        log = (folder / "engine.log").read_text(errors="replace")[-3000:] if (folder / "engine.log").exists() else ""
        pytest.fail(f"the test's engine did not start: {e}\n{log}")
    yield SimpleNamespace(folder=folder, port=port, url=engine.remote_url(port), pid=st.pid)
    engine.stop(folder, log=quiet)


@pytest.fixture(scope="module")
def af(tmp_path_factory, warm):
    root = tmp_path_factory.mktemp("airflow-e2e")
    landing, lake, home = root / "landing", root / "lake", root / "airflow-home"
    generate(landing, sf=0.0005, start=date(2022, 5, 1), days=2, seed=7, log=quiet)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYSPARK_GATEWAY", "AIRFLOW", "SCREENING_SPARK_REMOTE", "SCREENING_ENGINE"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_VAR_SCREENING_LANDING": str(landing),
            "AIRFLOW_VAR_SCREENING_LAKE": str(lake),
            "AIRFLOW_VAR_SCREENING_SPARK_REMOTE": warm.url,  # screening_engine: connect, the default
            "SCREENING_ENGINE_HOME": str(warm.folder),  # were the engine task to start one, it would be this one
            "AIRFLOW_CONN_SCREENING_SPARK": json.dumps({"conn_type": "spark", "host": "local[2]"}),
            "SCREENING_START_DATE": "2022-05-02",
            "SCREENING_PII_KEY": os.environ["SCREENING_PII_KEY"],  # the tests' key (conftest)
            "SCREENING_SHUFFLE_PARTITIONS": "1",
            "SCREENING_CODEGEN": "off",  # a lake of a few thousand rows: compiling generated code costs more than it saves
        }
    )

    def airflow(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(SCRIPT), *args], cwd=root, env=env, capture_output=True, text=True, timeout=1800)

    init = airflow("init")
    assert init.returncode == 0, init.stdout[-3000:] + init.stderr[-3000:]
    return SimpleNamespace(root=root, landing=landing, lake=Lake(lake), home=home, airflow=airflow, warm=warm)


def dag_test(af, dag_id: str, when: str) -> dict[str, str]:
    """Run the DAG for `when`; return each task's log (`airflow dags test` runs the tasks in its own process and
    writes their logs to its output, not to files under AIRFLOW_HOME/logs)."""
    res = af.airflow("dags", "test", dag_id, when)
    if res.returncode != 0:
        pytest.fail(
            f"airflow dags test {dag_id} {when} exited {res.returncode}:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
        )
    out = res.stdout + res.stderr
    parts = re.split(r"\[DAG TEST\] starting task_id=(\w+)", out)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def assert_thin_clients(af, logs: dict[str, str], stages: list[str]) -> None:
    """The engine task found the module's engine up; every stage ran as a thin client of it, none as spark-submit."""
    assert list(logs) == ["engine", *stages]
    assert f"the engine at {af.warm.url} answers" in logs["engine"]
    for stage in stages:
        assert f"spark: a thin client of the engine at {af.warm.url}" in logs[stage], logs[stage][-3000:]
        assert f"stage {stage}: " in logs[stage] and " s, " in logs[stage]  # the stage's own timing line ran
    assert not [t for t, log in logs.items() if "spark-submit" in log.lower()]
    assert engine.status(af.warm.folder).pid == af.warm.pid  # the same engine all along


def gold(spark, af, name: str) -> list[dict]:
    return [r.asDict() for r in af.lake.read_gold(spark, name).collect()]


def test_make_airflow_setup_creates_the_one_slot_lake_pool(af):
    res = af.airflow("pools", "get", "screening_lake", "-o", "json")
    assert res.returncode == 0, res.stderr[-2000:]
    pool = json.loads(res.stdout[res.stdout.index("[") :])
    assert [(p["pool"], int(p["slots"])) for p in pool] == [("screening_lake", 1)]


def test_nightly_dag_run_publishes_the_gold_tables_and_maintains_them(spark, af):
    logs = dag_test(af, "screening_nightly", "2022-05-03T01:00:00+08:00")
    assert_thin_clients(af, logs, [*CHAIN, "maintain"])
    runs = gold(spark, af, "run_log")
    assert [(r["run_id"], r["mode"], r["as_of"], r["status"]) for r in runs] == [
        (NIGHTLY, "nightly", dt("2022-05-03T01:00:00"), "completed")
    ]
    reasons = gold(spark, af, "popup_reasons")
    assign = gold(spark, af, "assignment_list")
    # the first run assigned every reason it raised, once
    assert len(reasons) > 20
    assert sorted((r["person_key"], r["reason_key"]) for r in assign) == sorted(
        (r["person_key"], r["reason_key"]) for r in reasons
    )
    assert {r["run_id"] for r in assign} == {NIGHTLY}
    assert {r["first_run_id"] for r in reasons} == {NIGHTLY}
    # the maintain task set the policy's audit window (30 days) on every table and compacted the tables of several
    # files; VACUUM was not run, since every file is minutes old and VACUUM deletes nothing younger than the window
    tables = maintenance.tables(af.lake)
    assert len(tables) > 20
    compacted = 0
    for path in tables:
        ops = {r["operation"] for r in spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()}
        assert "VACUUM START" not in ops, path
        compacted += "OPTIMIZE" in ops
        props = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()["properties"]
        assert props["delta.deletedFileRetentionDuration"] == "interval 30 days", path
    assert compacted > 0


def test_two_hourly_runs_assign_and_release_what_landed_between_them(spark, af):
    write_feed(
        af.landing,
        "inbound_entries",
        [
            dict(
                entry_id="IE-AF1",
                person_id=P_IN,
                entry_date="2022-04-12",
                port="首都国际机场",
                quarantine_days=21,
                reported_at="2022-05-03T10:00:00",
            )
        ],
        name="airflow-e2e-1.csv",
    )
    write_feed(
        af.landing,
        "drug_purchases",
        [
            dict(
                purchase_id="DP-AF1",
                person_id=P_DRUG,
                pharmacy_id="PH1",
                drug_category="antiviral",
                purchased_at="2022-05-03T09:00:00",
            )
        ],
        name="airflow-e2e-1.csv",
    )
    assert_thin_clients(af, dag_test(af, "screening_hourly", "2022-05-03T13:10:00+08:00"), CHAIN)

    write_feed(
        af.landing,
        "nat_samples",
        [dict(sample_id="S-AF1", person_id=P_DRUG, site_id="SITE1", lab_id="LAB1", sampled_at="2022-05-03T15:00:00")],
        name="airflow-e2e-2.csv",
    )
    write_feed(
        af.landing,
        "nat_results",
        [
            dict(
                sample_id="S-AF1",
                person_id=P_DRUG,
                lab_id="LAB1",
                sampled_at="2022-05-03T15:00:00",
                result="negative",
                platform="beijing",
                reported_at="2022-05-03T20:00:00",
            )
        ],
        name="airflow-e2e-2.csv",
    )
    write_feed(
        af.landing,
        "inbound_entries",
        [
            dict(
                entry_id="IE-AF2",
                person_id=P_NEW,
                entry_date="2022-05-04",
                port="首都国际机场",
                quarantine_days=None,
                reported_at="2022-05-04T08:00:00",
            )
        ],
        name="airflow-e2e-2.csv",
    )
    assert_thin_clients(af, dag_test(af, "screening_hourly", "2022-05-04T09:10:00+08:00"), CHAIN)

    k_in, k_drug, k_new = person_key_py(P_IN), person_key_py(P_DRUG), person_key_py(P_NEW)
    ours = {k_in, k_drug, k_new}
    assign = [r for r in gold(spark, af, "assignment_list") if r["run_id"] != NIGHTLY]
    release = [r for r in gold(spark, af, "release_list") if r["run_id"] != NIGHTLY]
    # the hand-made rows: exactly these popups and releases, each in the run that first could see it
    assert sorted(
        (r["run_id"], r["as_of"], r["person_key"], r["popup_code"], r["reason_type"], r["raised_at"])
        for r in assign
        if r["person_key"] in ours
    ) == sorted(
        [
            (HOURLY_1, dt("2022-05-03T13:10:00"), k_in, "2", "inbound_quarantine", dt("2022-05-03T10:00:00")),
            (HOURLY_1, dt("2022-05-03T13:10:00"), k_drug, "4", "drug_purchase", dt("2022-05-03T09:00:00")),
            (HOURLY_2, dt("2022-05-04T09:10:00"), k_new, "2", "inbound_quarantine", dt("2022-05-04T08:00:00")),
        ]
    )
    assert sorted(
        (r["run_id"], r["person_key"], r["popup_code"], r["released_at"], r["release_basis"], r["person_green"])
        for r in release
        if r["person_key"] in ours
    ) == sorted(
        [
            (HOURLY_2, k_in, "2", dt("2022-05-04T00:00:00"), "quarantine_complete", True),
            (HOURLY_2, k_drug, "4", dt("2022-05-03T20:00:00"), "nat_negative", True),
        ]
    )
    # and the generated data known after the nightly run: each hourly list is exactly what its run raised or
    # released, nothing raised later than its as-of
    reasons = gold(spark, af, "popup_reasons")
    for run_id, as_of in ((HOURLY_1, dt("2022-05-03T13:10:00")), (HOURLY_2, dt("2022-05-04T09:10:00"))):
        assert sorted(r["reason_key"] for r in assign if r["run_id"] == run_id) == sorted(
            r["reason_key"] for r in reasons if r["first_run_id"] == run_id
        )
        assert sorted(r["reason_key"] for r in release if r["run_id"] == run_id) == sorted(
            r["reason_key"] for r in reasons if r["release_run_id"] == run_id
        )
        assert all(r["raised_at"] <= as_of for r in assign if r["run_id"] == run_id)
    runs = sorted((r["run_id"], r["mode"], r["status"]) for r in gold(spark, af, "run_log"))
    assert runs == [
        (HOURLY_1, "hourly", "completed"),
        (HOURLY_2, "hourly", "completed"),
        (NIGHTLY, "nightly", "completed"),
    ]
