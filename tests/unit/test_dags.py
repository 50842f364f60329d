"""DAG integrity: dags/screening_nightly.py and dags/screening_hourly.py parse fast and cleanly, with the schedule,
time zone, task graph, pool, retries, timeouts and failure handling the Airflow issue asks for. No Spark here: the
stage and engine operators are driven with a fake command result (a thin client of the engine, Variable
screening_engine=connect, the default) or a fake spark-submit result (screening_engine=submit)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pendulum
import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
# Airflow reads its home when first imported: keep it away from ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="screening-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS))

CHAIN = ["ingest", "dq_feeds", "screen", "dq_results", "publish"]
PARSE_LIMIT_S = 10.0  # Airflow's own dagbag_import_timeout is 30 s; ours must be far from it

PARSE_PROBE = r"""
import json, sys, time
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.sdk import Variable
read = []  # Variables read while parsing: none (they are read when a task runs)
Variable.get = staticmethod(lambda key, *a, **k: read.append(key))
t = time.perf_counter()
from pathlib import Path
bag = BundleDagBag(dag_folder=sys.argv[1], bundle_path=Path(sys.argv[1]))
took = time.perf_counter() - t
print(json.dumps({"took": took, "errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "dags": sorted(bag.dag_ids), "files": sorted(s.file for s in bag.dagbag_stats),
                  "heavy": sorted(m for m in sys.modules if m.split(".")[0] in ("pyspark", "jobs", "delta", "py4j")),
                  "variables": read}))
"""


SCHEDULE_PROBE = r"""
import json, sys
from pathlib import Path
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.timetables.base import TimeRestriction
from airflow.timetables.interval import CronDataIntervalTimetable  # the scheduler's side of the DAG's timetable
bag = BundleDagBag(dag_folder=sys.argv[1], bundle_path=Path(sys.argv[1]))
out = {}
for d in bag.dags.values():
    timetable = CronDataIntervalTimetable(d.timetable.expression, d.timetable.timezone)
    nxt = timetable.next_dagrun_info(last_automated_data_interval=None,
                                     restriction=TimeRestriction(d.start_date, d.end_date, d.catchup))
    out[d.dag_id] = [d.catchup, d.start_date.isoformat(), d.end_date and d.end_date.isoformat(),
                    nxt and [nxt.data_interval.start.isoformat(), nxt.data_interval.end.isoformat()]]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def parse():
    """The DAG folder parsed in a fresh interpreter (Airflow already imported, as in the DAG processor)."""
    res = subprocess.run(
        [sys.executable, "-c", PARSE_PROBE, str(DAGS)], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import BundleDagBag

    b = BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS)
    assert b.import_errors == {}
    return b


@pytest.fixture(scope="module")
def nightly(bag):
    return bag.dags["screening_nightly"]


@pytest.fixture(scope="module")
def hourly(bag):
    return bag.dags["screening_hourly"]


@pytest.fixture(scope="module")
def common(bag):
    return sys.modules["screening_common"]  # imported by the DAG files (the DAG folder is on sys.path)


def chain_of(dag) -> list[tuple[str, list[str]]]:
    return sorted((t.task_id, sorted(t.downstream_task_ids)) for t in dag.tasks)


# -- parsing -------------------------------------------------------------------------------------------------
def test_dag_folder_parses_without_errors_within_time_limit(parse):
    assert parse["errors"] == {}
    assert parse["dags"] == ["screening_hourly", "screening_nightly"]
    assert parse["took"] < PARSE_LIMIT_S


def test_dag_folder_holds_one_dag_per_file_and_skips_the_helper(parse):
    assert sorted(Path(f).name for f in parse["files"]) == ["screening_hourly.py", "screening_nightly.py"]


def test_parsing_imports_no_spark_and_no_pipeline_code_and_reads_no_variable(parse):
    assert parse["heavy"] == []
    assert parse["variables"] == []


# -- schedules -----------------------------------------------------------------------------------------------
def test_nightly_runs_at_one_in_the_morning_shanghai_time(nightly):
    tt = nightly.timetable
    assert type(tt).__name__ == "CronDataIntervalTimetable"
    assert (tt.expression, str(tt.timezone)) == ("0 1 * * *", "Asia/Shanghai")
    assert nightly.timezone.name == "Asia/Shanghai"


def test_hourly_runs_at_ten_past_every_hour_shanghai_time(hourly):
    tt = hourly.timetable
    assert type(tt).__name__ == "CronDataIntervalTimetable"
    assert (tt.expression, str(tt.timezone)) == ("10 * * * *", "Asia/Shanghai")
    assert hourly.timezone.name == "Asia/Shanghai"


def test_nightly_catches_up_missed_nights_one_run_at_a_time(nightly, hourly):
    assert (nightly.catchup, nightly.max_active_runs) == (True, 1)
    assert (hourly.catchup, hourly.max_active_runs) == (False, 1)
    assert nightly.start_date == pendulum.datetime(2022, 5, 2, tz="Asia/Shanghai")
    assert (nightly.end_date, hourly.end_date) == (None, None)
    assert (nightly.dagrun_timeout, hourly.dagrun_timeout) == (timedelta(hours=8), timedelta(hours=2))


def test_the_dags_list_names_each_dag_with_its_beijing_time(nightly, hourly):
    # the Dags list shows the cron in the UI's time zone (UTC by default): the name and the description say the
    # local time, the same as the (Asia/Shanghai) cron
    assert nightly.timetable.expression == "0 1 * * *"
    assert nightly.dag_display_name == "Screening nightly — 01:00 Beijing time"
    assert hourly.timetable.expression == "10 * * * *"
    assert hourly.dag_display_name == "Screening hourly — :10 past every hour, Beijing time"
    for dag in (nightly, hourly):
        assert dag.dag_display_name != dag.dag_id and "Beijing time" in dag.dag_display_name
        assert dag.description and "Beijing time (Asia/Shanghai" in dag.description
    assert "01:00" in nightly.description and "17:00 UTC the day before" in nightly.description
    assert "10 past every hour" in hourly.description


def test_a_run_that_overruns_is_failed_and_a_late_nightly_posts_a_notice(nightly, hourly, common):
    assert (nightly.dagrun_timeout, hourly.dagrun_timeout) == (common.NIGHTLY_RUN_TIMEOUT, common.HOURLY_RUN_TIMEOUT)
    # both limits leave room for every stage's own timeout (one try each): past them a run is stuck, not slow
    for dag in (nightly, hourly):
        assert sum((t.execution_timeout for t in dag.tasks), timedelta()) < dag.dagrun_timeout
    # the nightly: a lateness notice 5 hours after it was queued (06:00 Beijing for the 01:00 run), before it fails
    [alert] = nightly.deadline
    assert type(alert.reference).__name__ == "DagRunQueuedAtDeadline"
    assert alert.interval == common.NIGHTLY_DONE_WITHIN == timedelta(hours=5) < nightly.dagrun_timeout
    assert type(alert.callback).__name__ == "SyncCallback"  # the executor's, with the DAG folder on its path
    assert (alert.callback.path, alert.callback.kwargs) == (
        "screening_common.ScreeningWebhookNotifier",
        {"event": "deadline_missed"},
    )
    assert hourly.deadline is None


def test_airflow_dags_test_gets_the_nightly_without_its_deadline(common, monkeypatch):
    # apache/airflow#73428 (3.3.2): `airflow dags test` crashes once a run of a DAG with a deadline succeeds; the
    # end-to-end test and the runbook run it (scripts/airflow.sh dags test screening_nightly ...)
    monkeypatch.setattr(sys, "argv", ["/opt/venv/bin/airflow", "dags", "test", "screening_nightly", "2022-05-16"])
    assert common.nightly_deadline() is None
    for argv in (["/opt/venv/bin/airflow", "dag-processor"], ["/opt/venv/bin/airflow", "dags", "list"], ["pytest"]):
        monkeypatch.setattr(sys, "argv", argv)
        assert common.nightly_deadline() is not None, argv


def test_the_nightly_deadline_survives_serialization(nightly):
    """What the scheduler reads (the serialized DAG) still has the deadline and its callback."""
    from airflow.serialization.serialized_objects import DagSerialization

    [alert] = DagSerialization.to_dict(nightly)["dag"]["deadline"]
    assert alert["reference"] == {"reference_type": "DagRunQueuedAtDeadline"}
    assert alert["interval"]["__data__"] == 5 * 3600
    assert alert["callback"]["__data__"]["path"] == "screening_common.ScreeningWebhookNotifier"
    assert alert["callback"]["__data__"]["kwargs"] == {"event": "deadline_missed"}


# -- task graph ----------------------------------------------------------------------------------------------
def chained(tasks: list[str]) -> list[tuple[str, list[str]]]:
    return sorted((s, [n] if n else []) for s, n in zip(tasks, [*tasks[1:], None], strict=True))


def test_nightly_tasks_are_the_engine_then_the_stages_in_order_then_maintenance(nightly):
    assert chain_of(nightly) == chained(["engine", *CHAIN, "maintain"])


def test_hourly_tasks_are_the_engine_then_the_stages_in_order_without_maintenance(hourly):
    assert chain_of(hourly) == chained(["engine", *CHAIN])


def test_every_stage_task_runs_the_screening_stage_command(nightly, hourly, common):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    for dag, mode in ((nightly, "nightly"), (hourly, "hourly")):
        for t in dag.tasks:
            if t.task_id == "engine":
                assert type(t) is common.ScreeningEngine
                continue
            assert type(t) is common.ScreeningStage
            # the same arguments for a thin client (python -m jobs.cli ...) and for spark-submit jobs/cli.py ...
            assert isinstance(t, SparkSubmitOperator)
            assert t.application == str(ROOT / "jobs" / "cli.py")
            assert t.application_args[:2] == ["stage", t.task_id.replace("_", "-")]
            assert t.application_args[-2:] == ["--mode", mode]
            assert t._conn_id == "screening_spark"


# -- pool, retries, timeouts ---------------------------------------------------------------------------------
def test_every_stage_task_of_both_dags_takes_the_one_slot_lake_pool(nightly, hourly, common):
    pools = {(t.dag_id, t.task_id): (t.pool, t.pool_slots) for d in (nightly, hourly) for t in d.tasks}
    assert len(pools) == 13
    # the engine task writes nothing: it neither waits for the lake's slot nor holds it
    assert {k: v for k, v in pools.items() if k[1] == "engine"} == {
        ("screening_nightly", "engine"): ("default_pool", 1),
        ("screening_hourly", "engine"): ("default_pool", 1),
    }
    assert {v for k, v in pools.items() if k[1] != "engine"} == {("screening_lake", 1)}
    assert (common.POOL, common.POOL_SLOTS) == ("screening_lake", 1)
    # a started run outranks the other DAG's next run for the slot: a task weighs its upstream tasks too
    assert {(t.weight_rule, t.priority_weight) for d in (nightly, hourly) for t in d.tasks} == {("upstream", 1)}


def test_retries_back_off_exponentially(nightly, hourly):
    for dag, retries, delay, cap in (
        (nightly, 3, timedelta(minutes=5), timedelta(hours=1)),
        (hourly, 2, timedelta(minutes=2), timedelta(minutes=15)),
    ):
        got = {(t.retries, t.retry_delay, bool(t.retry_exponential_backoff), t.max_retry_delay) for t in dag.tasks}
        assert got == {(retries, delay, True, cap)}, dag.dag_id


def test_every_task_has_an_execution_timeout(nightly, hourly):
    assert {t.task_id: t.execution_timeout for t in nightly.tasks} == {
        "engine": timedelta(minutes=10),
        "ingest": timedelta(hours=1),
        "dq_feeds": timedelta(minutes=30),
        "screen": timedelta(hours=2),
        "dq_results": timedelta(minutes=30),
        "publish": timedelta(hours=1),
        "maintain": timedelta(minutes=90),
    }
    assert {t.task_id: t.execution_timeout for t in hourly.tasks} == {
        "engine": timedelta(minutes=10),
        "ingest": timedelta(minutes=20),
        "dq_feeds": timedelta(minutes=10),
        "screen": timedelta(minutes=30),
        "dq_results": timedelta(minutes=10),
        "publish": timedelta(minutes=20),
    }


def test_tags_docs_and_failure_callbacks(nightly, hourly, common):
    assert set(nightly.tags) == {"screening", "nightly", "spark"}
    assert set(hourly.tags) == {"screening", "hourly", "spark"}
    for dag in (nightly, hourly):
        assert "## When it fails" in dag.doc_md and "override_gates" in dag.doc_md and "--override-gate" in dag.doc_md
        assert "**engine**" in dag.doc_md and "thin client" in dag.doc_md
        assert "`screening_engine`" in dag.doc_md and "`screening_spark_remote`" in dag.doc_md
        assert "## Notices" in dag.doc_md and "`screening_alert_webhook`" in dag.doc_md
        log_line, notifier = dag.on_failure_callback
        assert log_line is common.log_run_failure
        assert (type(notifier), notifier.event) == (common.ScreeningWebhookNotifier, "run_failed")
        for t in dag.tasks:  # every task, the engine task too: the log line, then the notice
            log_line, notifier = t.on_failure_callback
            assert log_line is common.log_task_failure, t.task_id
            assert (type(notifier), notifier.event) == (common.ScreeningWebhookNotifier, "task_failed"), t.task_id
    assert "not done 5 hours after it was queued (06:00 Beijing time" in nightly.doc_md


# -- what a task runs ----------------------------------------------------------------------------------------
class NoVariables:
    """`var.value.get(name, default)` in templates, with no Variable set."""

    value = SimpleNamespace(get=lambda name, default=None: default)


def task_params(dag, conf=None) -> dict:
    """The params a task of a run sees: the DAG's, the run's conf over them, validated (airflow.sdk's
    process_params does the same on the worker)."""
    import copy

    params = copy.deepcopy(dag.params)
    params.update(conf or {})
    return params.validate()


def context_for(dag, end, conf=None):
    params = task_params(dag, conf)
    return {
        "data_interval_end": end,
        "dag_run": SimpleNamespace(run_after=end, triggering_user_name="ops"),
        "dag": dag,
        "var": NoVariables(),
        "params": params,
        "ds": end.to_date_string(),
    }


def rendered(task, ctx) -> list[str]:
    return [task.render_template(a, ctx) for a in task.application_args]


def schedule_under(**env: str) -> dict:
    """Each DAG's catchup, start and end date (UTC, as Airflow keeps them) and the first run the scheduler would
    create, parsed in a fresh interpreter with these environment settings."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SCREENING_START", "SCREENING_END", "SCREENING_NIGHTLY"))
    }
    res = subprocess.run(
        [sys.executable, "-c", SCHEDULE_PROBE, str(DAGS)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**base, **env},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_make_airflow_demo_schedules_nothing_by_itself_but_accepts_triggers_in_the_demo_month():
    # scripts/airflow.sh's defaults: unpausing must not queue years of nights on the May-2022 demo data
    demo = schedule_under(
        SCREENING_START_DATE="2022-05-02", SCREENING_END_DATE="2022-05-31", SCREENING_NIGHTLY_CATCHUP="false"
    )
    window = ["2022-05-01T16:00:00+00:00", "2022-05-31T15:59:59.999999+00:00"]  # 05-02 00:00 to 05-31 24:00 Beijing
    assert demo == {"screening_nightly": [False, *window, None], "screening_hourly": [False, *window, None]}
    # without them (a deployment): the nightly catches up from its start date, first the night of 05-02 to 05-03
    deployed = schedule_under(SCREENING_START_DATE="2022-05-02", SCREENING_END_DATE="")
    assert deployed["screening_nightly"] == [
        True,
        window[0],
        None,
        ["2022-05-01T17:00:00+00:00", "2022-05-02T17:00:00+00:00"],
    ]


def test_as_of_is_the_data_interval_end_in_shanghai_time(nightly, hourly):
    end = pendulum.datetime(2022, 5, 2, 17, 0, tz="UTC")  # 2022-05-03 01:00 in Beijing
    args = rendered(nightly.get_task("screen"), context_for(nightly, end))
    assert args == [
        "stage",
        "screen",
        "--landing",
        str(ROOT / "demo" / "landing"),
        "--lake",
        str(ROOT / "demo" / "lake"),
        "--as-of",
        "2022-05-03T01:00:00+08:00",
        "--mode",
        "nightly",
    ]
    end = pendulum.datetime(2022, 5, 3, 13, 10, tz="Asia/Shanghai")
    assert rendered(hourly.get_task("dq_feeds"), context_for(hourly, end))[6:8] == [
        "--as-of",
        "2022-05-03T13:10:00+08:00",
    ]


def test_run_without_logical_date_screens_as_of_its_run_after(nightly, common):
    ctx = context_for(nightly, pendulum.datetime(2026, 11, 26, 16, 3, 6, tz="UTC"))
    del ctx["data_interval_end"]  # Airflow 3: a run triggered with no logical date has no data interval
    # and its run_after comes as a plain datetime, as the UI's Trigger button makes it
    ctx["dag_run"].run_after = datetime(2026, 11, 26, 16, 3, 6, tzinfo=UTC)
    assert rendered(nightly.get_task("ingest"), ctx)[6:8] == ["--as-of", "2026-11-27T00:03:06+08:00"]
    assert common.run_id_of(ctx) == "nightly-20261127T000306"


def test_manual_run_with_a_logical_date_screens_as_of_the_last_schedule_time_at_or_before_it(nightly, hourly, common):
    # `airflow dags trigger --logical-date` gives the run a data interval ending when it was triggered (Airflow
    # 3.3's CLI; the UI and REST API take it from the logical date): the as-of must still follow the logical date
    now = pendulum.datetime(2026, 12, 7, 11, 16, tz="UTC")
    cases = [
        (nightly, pendulum.datetime(2022, 5, 16, 1, tz="Asia/Shanghai"), "2022-05-16T01:00:00+08:00"),  # on a tick
        (nightly, pendulum.datetime(2022, 5, 16, 0, 59, tz="Asia/Shanghai"), "2022-05-15T01:00:00+08:00"),
        (nightly, pendulum.datetime(2022, 5, 15, 17, 0, 30, 500, tz="UTC"), "2022-05-16T01:00:00+08:00"),
        (hourly, pendulum.datetime(2022, 5, 14, 17, 10, tz="UTC"), "2022-05-15T01:10:00+08:00"),
        (hourly, pendulum.datetime(2022, 5, 15, 1, 9, 59, tz="Asia/Shanghai"), "2022-05-15T00:10:00+08:00"),
    ]
    for dag, logical, as_of in cases:
        ctx = context_for(dag, now)
        ctx["dag_run"] = SimpleNamespace(run_after=now, logical_date=logical, run_type="manual")
        assert rendered(dag.get_task("screen"), ctx)[6:8] == ["--as-of", as_of], (dag.dag_id, logical)
        assert (
            common.run_id_of(ctx)
            == f"{dag.dag_id.removeprefix('screening_')}-{as_of[:19].replace('-', '').replace(':', '')}"
        )
    # a scheduled run keeps its data interval end (its logical date is the interval's start)
    ctx = context_for(nightly, pendulum.datetime(2022, 5, 2, 17, tz="UTC"))
    ctx["dag_run"] = SimpleNamespace(
        run_after=now, logical_date=pendulum.datetime(2022, 5, 1, 17, tz="UTC"), run_type="scheduled"
    )
    assert rendered(nightly.get_task("screen"), ctx)[6:8] == ["--as-of", "2022-05-03T01:00:00+08:00"]


def test_landing_lake_and_python_come_from_variables(nightly):
    task = nightly.get_task("ingest")
    ctx = context_for(nightly, pendulum.datetime(2022, 5, 3, 1, tz="Asia/Shanghai"))
    values = {
        "screening_landing": "/data/landing",
        "screening_lake": "/data/lake",
        "screening_python": "/opt/py/bin/python",
    }
    ctx["var"] = SimpleNamespace(value=SimpleNamespace(get=lambda name, default=None: values.get(name, default)))
    assert rendered(task, ctx)[2:6] == ["--landing", "/data/landing", "--lake", "/data/lake"]
    env = task.render_template(task.env_vars, ctx)
    assert (env["PYSPARK_PYTHON"], env["PYSPARK_DRIVER_PYTHON"]) == ("/opt/py/bin/python", "/opt/py/bin/python")


ENGINES = ["connect", "submit"]


@pytest.fixture
def stage_run(monkeypatch, common):
    """Run a task's execute() with its command replaced by a fake that exits with the given code and output: the
    thin client's `python -m jobs.cli stage ...` (engine="connect", the default) or spark-submit ("submit")."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    monkeypatch.delenv("AIRFLOW_CONN_SCREENING_SPARK", raising=False)
    monkeypatch.delenv("AIRFLOW_VAR_SCREENING_SPARK_REMOTE", raising=False)
    monkeypatch.setattr(common, "_connection_defined", lambda conn_id: False)
    seen = {}

    def go(dag, task_id, code, output=(), conf=None, engine="connect"):
        import copy

        from airflow.sdk.exceptions import AirflowException

        monkeypatch.setenv("AIRFLOW_VAR_SCREENING_ENGINE", engine)
        seen.clear()
        task = copy.deepcopy(dag.get_task(task_id))
        ctx = context_for(dag, pendulum.datetime(2022, 5, 3, 1, tz="Asia/Shanghai"), conf)
        task.render_template_fields(ctx)  # what Airflow does before execute()

        def fake_submit(self, context):
            seen["args"], seen["jars"] = list(self.application_args), self.jars
            seen["conn"] = os.environ.get("AIRFLOW_CONN_SCREENING_SPARK")
            seen["operator"] = self.env_vars.get("SCREENING_OPERATOR")
            seen["conf"] = dict(self.conf)
            self._hook = SimpleNamespace(
                _submit_sp=SimpleNamespace(returncode=code), _last_submit_log_lines=list(output)
            )
            if code:
                raise AirflowException(f"Cannot execute: spark-submit ... Error code is: {code}.")

        def fake_command(self, cmd, env):
            seen["cmd"], seen["env"] = list(cmd), dict(env)
            seen["args"], seen["operator"] = list(cmd[3:]), env.get("SCREENING_OPERATOR")
            return code, list(output)

        monkeypatch.setattr(SparkSubmitOperator, "execute", fake_submit)
        monkeypatch.setattr(common.Subprocesses, "_run_command", fake_command)
        task.execute(ctx)
        return seen

    return go


HALT_LINE = (
    "run nightly-20220503T010000 halted by gate feed_volume: telecom_stays has 12% of its usual rows. "
    "Nothing was published. To publish anyway, rerun with --override-gate feed_volume --reason TEXT"
)


@pytest.mark.parametrize("engine", ENGINES)
def test_gate_halt_fails_the_task_without_retries_and_says_how_to_override(stage_run, nightly, engine):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as e:
        stage_run(nightly, "dq_feeds", 3, ["Setting Spark log level", HALT_LINE], engine=engine)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(
        "run nightly-20220503T010000 halted by data-quality gate feed_volume: telecom_stays has "
        "12% of its usual rows. Nothing was published and the task is not retried"
    )
    # a minute after the as-of: the same as-of, and not the logical date a manual run for the as-of already holds
    assert (
        "trigger screening_nightly with the logical date 2022-05-03T01:01:00+08:00 (it screens the same as-of) and "
        'conf {"override_gates": ["feed_volume"], "override_reason": "..."}'
    ) in msg
    assert "--override-gate feed_volume --reason TEXT" in msg


@pytest.mark.parametrize("engine", ENGINES)
def test_locked_lake_is_retried(stage_run, nightly, engine):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    with pytest.raises(AirflowException) as e:
        stage_run(nightly, "publish", 75, engine=engine)
    assert not isinstance(e.value, AirflowFailException)
    assert str(e.value) == "run nightly-20220503T010000: the lake is locked by another run (exit 75); retried later"


@pytest.mark.parametrize("engine, runner", [("connect", "screening"), ("submit", "spark-submit")])
def test_other_spark_failure_is_retried_with_its_last_error_line(stage_run, hourly, engine, runner):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    out = [
        "Traceback (most recent call last):",
        '  File "jobs/cli.py", line 1',
        "\tat org.apache.Foo",
        "py4j.protocol.Py4JJavaError: An error occurred while calling o71.filter.",
    ]
    with pytest.raises(AirflowException) as e:
        stage_run(hourly, "screen", 1, out, engine=engine)
    assert not isinstance(e.value, AirflowFailException)
    assert str(e.value) == (
        f"stage screen of run hourly-20220503T010000 failed ({runner} exit 1): "
        "py4j.protocol.Py4JJavaError: An error occurred while calling o71.filter."
    )


def test_an_engine_that_does_not_answer_is_retried_with_the_clients_line(stage_run, hourly):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    line = (
        "engine at sc://127.0.0.1:15002 does not answer (SparkConnectGrpcException): start it with `screening "
        "engine start`, or unset SCREENING_SPARK_REMOTE to run in a local session of this process"
    )
    with pytest.raises(AirflowException) as e:
        stage_run(hourly, "ingest", 1, [line])
    assert not isinstance(e.value, AirflowFailException)
    assert str(e.value) == f"stage ingest of run hourly-20220503T010000 failed (screening exit 1): {line}"


def test_by_default_a_stage_is_a_thin_client_of_the_engine_on_this_machine(stage_run, nightly):
    seen = stage_run(nightly, "ingest", 0)
    assert seen["cmd"] == [
        str(ROOT / ".venv" / "bin" / "python"),
        "-m",
        "jobs.cli",
        "stage",
        "ingest",
        "--landing",
        str(ROOT / "demo" / "landing"),
        "--lake",
        str(ROOT / "demo" / "lake"),
        "--as-of",
        "2022-05-03T01:00:00+08:00",
        "--mode",
        "nightly",
    ]
    env = seen["env"]
    assert env["SCREENING_SPARK_REMOTE"] == "sc://127.0.0.1:15002"
    assert (env["SCREENING_OPERATOR"], env["TZ"], env["PYTHONUNBUFFERED"]) == ("airflow:ops", "Asia/Shanghai", "1")
    assert "jars" not in seen and "conn" not in seen  # no spark-submit, no Spark connection


def test_the_engine_address_comes_from_a_variable_and_a_bad_one_fails_clearly(stage_run, nightly, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_VAR_SCREENING_SPARK_REMOTE", "sc://engine.internal:15010")
    assert stage_run(nightly, "screen", 0)["env"]["SCREENING_SPARK_REMOTE"] == "sc://engine.internal:15010"
    monkeypatch.setenv("AIRFLOW_VAR_SCREENING_SPARK_REMOTE", "engine.internal:15010")
    with pytest.raises(
        AirflowFailException,
        match="^Variable screening_spark_remote is 'engine.internal:15010': it must look like sc://host:port$",
    ):
        stage_run(nightly, "screen", 0)


def test_an_unknown_engine_setting_fails_clearly(stage_run, nightly):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(
        AirflowFailException, match="^Variable screening_engine is 'yarn': it must be connect or submit$"
    ):
        stage_run(nightly, "screen", 0, engine="yarn")


def test_submit_defaults_to_local_spark_and_the_cached_delta_jars(stage_run, nightly, common):
    seen = stage_run(nightly, "ingest", 0, engine="submit")
    from jobs.spark import delta_jar_paths

    assert seen["jars"] == ",".join(str(p) for p in delta_jar_paths())
    assert json.loads(seen["conn"]) == {"conn_type": "spark", "host": "local[*]"}
    assert seen["operator"] == "airflow:ops"
    assert "cmd" not in seen


def test_more_spark_settings_come_from_a_variable_and_a_bad_one_fails_clearly(stage_run, nightly, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_VAR_SCREENING_SPARK_CONF", '{"spark.executor.memory": "8g", "spark.executor.cores": 4}')
    seen = stage_run(nightly, "screen", 0, engine="submit")
    assert seen["conf"] == {
        "spark.driver.memory": "2g",
        "spark.sql.session.timeZone": "Asia/Shanghai",
        "spark.executor.memory": "8g",
        "spark.executor.cores": "4",
    }
    monkeypatch.setenv("AIRFLOW_VAR_SCREENING_SPARK_CONF", "spark.executor.memory=8g")
    with pytest.raises(AirflowFailException, match="Variable screening_spark_conf is not JSON"):
        stage_run(nightly, "screen", 0, engine="submit")


@pytest.mark.parametrize("engine", ENGINES)
def test_override_params_reach_only_the_gate_stages(stage_run, nightly, engine):
    conf = {"override_gates": ["feed_volume", "result_share"], "override_reason": "telecom outage, checked by ops"}
    args = stage_run(nightly, "dq_results", 0, conf=conf, engine=engine)["args"]
    assert args[-6:] == [
        "--override-gate",
        "feed_volume",
        "--override-gate",
        "result_share",
        "--reason",
        "telecom outage, checked by ops",
    ]
    assert stage_run(nightly, "publish", 0, conf=conf, engine=engine)["args"][-2:] == ["--mode", "nightly"]


@pytest.mark.parametrize("engine", ENGINES)
def test_override_without_reason_is_refused(stage_run, nightly, engine):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="^override_gates needs override_reason"):
        stage_run(nightly, "dq_feeds", 0, conf={"override_gates": ["feed_volume"]}, engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "conf",
    [
        None,
        {"override_gates": None, "override_reason": None},
        {"override_gates": [], "override_reason": ""},
        {"override_gates": [""]},
    ],
)
def test_no_override_runs_the_gate_stages_without_override_arguments(stage_run, nightly, engine, conf):
    # a scheduled run, a trigger with nothing filled in, or the form's fields cleared: no override, no reason needed
    assert stage_run(nightly, "dq_feeds", 0, conf=conf, engine=engine)["args"][-2:] == ["--mode", "nightly"]


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_override_with_an_empty_reason_is_refused(stage_run, nightly, reason):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="^override_gates needs override_reason"):
        stage_run(nightly, "dq_results", 0, conf={"override_gates": ["feed_empty"], "override_reason": reason})


# -- a manual trigger (the Trigger form of the UI, the REST API, `airflow dags trigger -c`) --------------------
def screening_dags(bag) -> list:
    dags = [d for d in bag.dags.values() if "override_gates" in d.params or "override_reason" in d.params]
    assert sorted(d.dag_id for d in dags) == ["screening_hourly", "screening_nightly"]
    return dags


def trigger(dag, conf: dict | None) -> dict:
    """What the API server checks before it creates a triggered run: the serialized DAG's params with the conf
    merged in, validated (SerializedDAG.create_dagrun). Raises ParamValidationError when the conf is refused."""
    from airflow.serialization.serialized_objects import DagSerialization

    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    return serialized.params.deep_merge(conf).validate()


def required_in_trigger_form(schema: dict) -> bool:
    """The Airflow 3 UI's rule for a required field of the Trigger form (a required field left empty keeps the
    Trigger button disabled): the schema has a `type` and it is not a list holding "null". Airflow's
    ui/src/components/FlexibleForm; in the installed bundle see UI_REQUIRED_RULE."""
    t = schema.get("type")
    return bool(t) and (not isinstance(t, list) or "null" not in t)


# the rule above as the installed UI bundle has it (minified: any one-letter name for the param)
UI_REQUIRED_RULE = (
    r"(\w+)=>!!\1\.schema\.type&&\(!Array\.isArray\(\1\.schema\.type\)\|\|"
    r"!\1\.schema\.type\.includes\(`null`\)\)"
)


def test_a_trigger_with_no_params_validates(bag):
    for dag in screening_dags(bag):
        assert trigger(dag, None) == {"override_gates": None, "override_reason": None}, dag.dag_id
        assert trigger(dag, {}) == {"override_gates": None, "override_reason": None}, dag.dag_id
        assert dag.params.validate() == {"override_gates": None, "override_reason": None}, dag.dag_id
        assert task_params(dag) == {"override_gates": None, "override_reason": None}, dag.dag_id


def test_a_trigger_with_an_override_and_a_reason_validates(bag):
    conf = {"override_gates": ["feed_empty"], "override_reason": "announcements are published weekly now"}
    for dag in screening_dags(bag):
        assert trigger(dag, conf) == conf, dag.dag_id
        assert task_params(dag, conf) == conf, dag.dag_id
        # the form's fields cleared again: an empty list and an empty text are no override
        assert trigger(dag, {"override_gates": [], "override_reason": ""}) == {
            "override_gates": [],
            "override_reason": "",
        }


@pytest.mark.parametrize(
    ("conf", "param"),
    [
        ({"override_gates": "feed_empty", "override_reason": "why"}, "override_gates"),
        ({"override_gates": 3, "override_reason": "why"}, "override_gates"),
        ({"override_gates": [3], "override_reason": "why"}, "override_gates"),
        ({"override_gates": ["feed_empty"], "override_reason": ["why"]}, "override_reason"),
    ],
)
def test_a_trigger_with_a_wrongly_typed_override_is_refused(bag, conf, param):
    from airflow.sdk.exceptions import ParamValidationError

    for dag in screening_dags(bag):
        with pytest.raises(ParamValidationError, match=f"^Invalid input for param {param}: "):
            trigger(dag, conf)
        with pytest.raises(ParamValidationError, match=f"^Invalid input for param {param}: "):
            task_params(dag, conf)


def test_the_trigger_form_shows_the_override_params_as_optional(bag):
    import re

    import airflow

    bundles = list((Path(airflow.__file__).parent / "ui" / "dist" / "assets").glob("index-*.js"))
    assert any(re.search(UI_REQUIRED_RULE, b.read_text(encoding="utf-8", errors="replace")) for b in bundles), (
        "the Trigger form's rule for a required param is no longer the one required_in_trigger_form() copies"
    )
    for dag in screening_dags(bag):
        from airflow.serialization.serialized_objects import DagSerialization

        params = DagSerialization.from_dict(DagSerialization.to_dict(dag)).params
        for name in ("override_gates", "override_reason"):
            shown = params.get_param(name).dump()  # what the UI gets from the API
            assert shown["value"] is None, (dag.dag_id, name)
            assert not required_in_trigger_form(shown["schema"]), (dag.dag_id, name, shown["schema"])
    # and the rule does flag what the params were before (type "array" / "string" without null)
    assert required_in_trigger_form({"type": "array", "items": {"type": "string"}})
    assert required_in_trigger_form({"type": "string"})


# -- the engine task -----------------------------------------------------------------------------------------
@pytest.fixture
def engine_run(monkeypatch, common, capsys):
    """Run a DAG's `engine` task with the engine answering or not and `screening engine start` replaced by a fake
    that exits with the given code and output. Returns the commands it ran and its log."""
    monkeypatch.delenv("AIRFLOW_VAR_SCREENING_SPARK_REMOTE", raising=False)
    monkeypatch.delenv("AIRFLOW_VAR_SCREENING_DRIVER_MEMORY", raising=False)

    def go(dag, *, answers, engine="connect", code=0, output=(), remote=None):
        import copy

        monkeypatch.setenv("AIRFLOW_VAR_SCREENING_ENGINE", engine)
        if remote:
            monkeypatch.setenv("AIRFLOW_VAR_SCREENING_SPARK_REMOTE", remote)
        seen = SimpleNamespace(asked=[], cmds=[], envs=[], log="")
        task = copy.deepcopy(dag.get_task("engine"))
        ctx = context_for(dag, pendulum.datetime(2022, 5, 3, 1, tz="Asia/Shanghai"))
        task.render_template_fields(ctx)

        def fake_answers(self, url, host, port):
            seen.asked.append((url, host, port))
            return answers

        def fake_command(self, cmd, env):
            seen.cmds.append(list(cmd))
            seen.envs.append(dict(env))
            return code, list(output)

        monkeypatch.setattr(common.ScreeningEngine, "_answers", fake_answers)
        monkeypatch.setattr(common.Subprocesses, "_run_command", fake_command)
        capsys.readouterr()
        try:
            task.execute(ctx)
        finally:
            seen.log = capsys.readouterr().out  # the task log (Airflow's structlog writes it to stdout here)
        return seen

    return go


def test_engine_task_leaves_an_engine_that_answers_alone(engine_run, nightly):
    seen = engine_run(nightly, answers=True)
    assert seen.asked == [("sc://127.0.0.1:15002", "127.0.0.1", 15002)]
    assert seen.cmds == []
    assert "the engine at sc://127.0.0.1:15002 answers" in seen.log


def test_engine_task_starts_the_engine_on_this_machine_when_nothing_answers(engine_run, hourly, monkeypatch):
    monkeypatch.setenv("SCREENING_ENGINE_HOME", "/srv/screening/engine")
    monkeypatch.setenv("SCREENING_SPARK_REMOTE", "sc://127.0.0.1:1")  # the worker's own: not the engine's
    monkeypatch.setenv("AIRFLOW_VAR_SCREENING_DRIVER_MEMORY", "6g")
    seen = engine_run(hourly, answers=False, remote="sc://localhost:15077")
    assert seen.cmds == [
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "-m",
            "jobs.cli",
            "engine",
            "start",
            "--port",
            "15077",
            "--driver-memory",
            "6g",
        ]
    ]
    assert seen.envs[0]["SCREENING_ENGINE_HOME"] == "/srv/screening/engine"
    assert "SCREENING_SPARK_REMOTE" not in seen.envs[0]
    assert "nothing answers at sc://localhost:15077: starting the engine on this machine" in seen.log


def test_engine_task_fails_in_one_line_when_the_engine_cannot_start(engine_run, nightly):
    from airflow.sdk.exceptions import AirflowException

    out = ["engine: port 15002 on 127.0.0.1 is taken by another process; set SCREENING_ENGINE_PORT"]
    with pytest.raises(AirflowException) as e:
        engine_run(nightly, answers=False, code=1, output=out)
    assert str(e.value) == (
        "the engine at sc://127.0.0.1:15002 could not be started (exit 1): engine: port 15002 on "
        "127.0.0.1 is taken by another process; set SCREENING_ENGINE_PORT"
    )


def test_engine_task_only_checks_an_engine_elsewhere(engine_run, nightly):
    from airflow.sdk.exceptions import AirflowException

    assert engine_run(nightly, answers=True, remote="sc://engine.internal:15002").cmds == []
    with pytest.raises(AirflowException) as e:
        engine_run(nightly, answers=False, remote="sc://engine.internal:15002")
    assert str(e.value) == (
        "the engine at sc://engine.internal:15002 does not answer: start it there "
        "(`screening engine start`) or set the Variable screening_spark_remote"
    )


def test_engine_task_does_nothing_with_spark_submit(engine_run, hourly):
    seen = engine_run(hourly, answers=False, engine="submit")
    assert (seen.asked, seen.cmds) == ([], [])
    assert "Variable screening_engine is submit: each stage starts its own Spark; no engine needed" in seen.log


def test_engine_task_finds_a_closed_port_at_once(nightly):
    import copy
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    task = copy.deepcopy(nightly.get_task("engine"))
    task.python = sys.executable
    t = time.perf_counter()
    assert task._answers(f"sc://127.0.0.1:{port}", "127.0.0.1", port) is False
    assert time.perf_counter() - t < 5


def test_a_command_runs_in_the_project_folder_its_output_into_the_task_log(nightly, capsys):
    import copy

    task = copy.deepcopy(nightly.get_task("ingest"))
    script = "import os, sys; print(os.getcwd()); print('写入 bronze', flush=True); print('boom', file=sys.stderr); sys.exit(3)"
    capsys.readouterr()
    code, tail = task._run_command([sys.executable, "-c", script], {**os.environ, "PYTHONUNBUFFERED": "1"})
    assert (code, tail) == (3, [str(ROOT), "写入 bronze", "boom"])
    log = capsys.readouterr().out  # the task log
    assert "写入 bronze" in log and "boom" in log
    assert task._proc is None


def test_a_killed_task_interrupts_its_command(nightly):
    import copy
    import threading
    import time

    task = copy.deepcopy(nightly.get_task("screen"))
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *a: (print('interrupted', flush=True), sys.exit(130)))\n"
        "print('started', flush=True)\ntime.sleep(60)\n"
    )
    done = {}
    runner = threading.Thread(
        target=lambda: done.update(result=task._run_command([sys.executable, "-c", script], dict(os.environ)))
    )
    runner.start()
    deadline = time.monotonic() + 30
    while task._proc is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2)  # the script installed its handler and printed
    task.on_kill()
    runner.join(timeout=30)
    assert done["result"] == (130, ["started", "interrupted"])


def test_failure_callbacks_log_the_run_and_the_reason(caplog, nightly, common):
    end = pendulum.datetime(2022, 5, 3, 1, tz="Asia/Shanghai")
    ti = SimpleNamespace(
        dag_id="screening_nightly", task_id="screen", run_id="scheduled__2022-05-02T17:00:00+00:00", try_number=2
    )
    with caplog.at_level(logging.ERROR, logger="screening.airflow"):
        common.log_task_failure(
            {
                "ti": ti,
                "dag": nightly,
                "data_interval_end": end,
                "dag_run": SimpleNamespace(run_after=end),
                "exception": RuntimeError("boom\nmore"),
            }
        )
        common.log_run_failure(
            {"dag_run": SimpleNamespace(run_id="manual__x", dag_id="screening_nightly"), "reason": "task_failure"}
        )
    assert [r.getMessage() for r in caplog.records] == [
        "screening task screening_nightly.screen failed (Airflow run scheduled__2022-05-02T17:00:00+00:00, "
        "screening run nightly-20220503T010000, try 2): boom more",
        "screening DAG run manual__x of screening_nightly failed: task_failure",
    ]
