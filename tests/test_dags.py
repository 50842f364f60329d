"""DAG integrity: dags/screening_nightly.py and dags/screening_hourly.py parse fast and cleanly, with the schedule,
time zone, task graph, pool, retries, timeouts and failure handling the Airflow issue asks for. No Spark here: the
stage operator's failure handling is driven with a fake spark-submit result."""

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

ROOT = Path(__file__).resolve().parents[1]
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
t = time.perf_counter()
from pathlib import Path
bag = BundleDagBag(dag_folder=sys.argv[1], bundle_path=Path(sys.argv[1]))
took = time.perf_counter() - t
print(json.dumps({"took": took, "errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "dags": sorted(bag.dag_ids), "files": sorted(s.file for s in bag.dagbag_stats),
                  "heavy": sorted(m for m in sys.modules if m.split(".")[0] in ("pyspark", "jobs", "delta", "py4j"))}))
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
    res = subprocess.run([sys.executable, "-c", PARSE_PROBE, str(DAGS)], capture_output=True, text=True,
                         timeout=600, cwd=ROOT)
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


def test_parsing_imports_no_spark_and_no_pipeline_code(parse):
    assert parse["heavy"] == []


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


# -- task graph ----------------------------------------------------------------------------------------------
def test_nightly_tasks_are_the_stages_in_order_then_maintenance(nightly):
    stages = [*CHAIN, "maintain"]
    assert chain_of(nightly) == sorted((s, [n] if n else []) for s, n in zip(stages, [*stages[1:], None],
                                                                             strict=True))


def test_hourly_tasks_are_the_stages_in_order_without_maintenance(hourly):
    assert chain_of(hourly) == sorted((s, [n] if n else []) for s, n in zip(CHAIN, [*CHAIN[1:], None], strict=True))


def test_every_task_is_a_spark_submit_of_the_screening_stage_command(nightly, hourly):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    for dag, mode in ((nightly, "nightly"), (hourly, "hourly")):
        for t in dag.tasks:
            assert isinstance(t, SparkSubmitOperator)
            assert t.application == str(ROOT / "jobs" / "cli.py")
            assert t.application_args[:2] == ["stage", t.task_id.replace("_", "-")]
            assert t.application_args[-2:] == ["--mode", mode]
            assert t._conn_id == "screening_spark"


# -- pool, retries, timeouts ---------------------------------------------------------------------------------
def test_every_task_of_both_dags_takes_the_one_slot_lake_pool(nightly, hourly, common):
    pools = {(t.dag_id, t.task_id): (t.pool, t.pool_slots) for d in (nightly, hourly) for t in d.tasks}
    assert len(pools) == 11
    assert set(pools.values()) == {("screening_lake", 1)}
    assert (common.POOL, common.POOL_SLOTS) == ("screening_lake", 1)
    # a started run outranks the other DAG's next run for the slot: a task weighs its upstream tasks too
    assert {(t.weight_rule, t.priority_weight) for d in (nightly, hourly) for t in d.tasks} == {("upstream", 1)}


def test_retries_back_off_exponentially(nightly, hourly):
    for dag, retries, delay, cap in ((nightly, 3, timedelta(minutes=5), timedelta(hours=1)),
                                     (hourly, 2, timedelta(minutes=2), timedelta(minutes=15))):
        got = {(t.retries, t.retry_delay, bool(t.retry_exponential_backoff), t.max_retry_delay) for t in dag.tasks}
        assert got == {(retries, delay, True, cap)}, dag.dag_id


def test_every_task_has_an_execution_timeout(nightly, hourly):
    assert {t.task_id: t.execution_timeout for t in nightly.tasks} == {
        "ingest": timedelta(hours=1), "dq_feeds": timedelta(minutes=30), "screen": timedelta(hours=2),
        "dq_results": timedelta(minutes=30), "publish": timedelta(hours=1), "maintain": timedelta(minutes=90)}
    assert {t.task_id: t.execution_timeout for t in hourly.tasks} == {
        "ingest": timedelta(minutes=20), "dq_feeds": timedelta(minutes=10), "screen": timedelta(minutes=30),
        "dq_results": timedelta(minutes=10), "publish": timedelta(minutes=20)}


def test_tags_docs_and_failure_callbacks(nightly, hourly, common):
    assert set(nightly.tags) == {"screening", "nightly", "spark"}
    assert set(hourly.tags) == {"screening", "hourly", "spark"}
    for dag in (nightly, hourly):
        assert "## When it fails" in dag.doc_md and "override_gates" in dag.doc_md and "--override-gate" in dag.doc_md
        assert dag.on_failure_callback in (common.log_run_failure, [common.log_run_failure])
        for t in dag.tasks:
            assert t.on_failure_callback in (common.log_task_failure, [common.log_task_failure])


# -- what a task runs ----------------------------------------------------------------------------------------
class NoVariables:
    """`var.value.get(name, default)` in templates, with no Variable set."""

    value = SimpleNamespace(get=lambda name, default=None: default)


def context_for(dag, end, conf=None):
    params = {"override_gates": [], "override_reason": "", **(conf or {})}
    return {"data_interval_end": end, "dag_run": SimpleNamespace(run_after=end, triggering_user_name="ops"),
            "dag": dag, "var": NoVariables(), "params": params, "ds": end.to_date_string()}


def rendered(task, ctx) -> list[str]:
    return [task.render_template(a, ctx) for a in task.application_args]


def schedule_under(**env: str) -> dict:
    """Each DAG's catchup, start and end date (UTC, as Airflow keeps them) and the first run the scheduler would
    create, parsed in a fresh interpreter with these environment settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SCREENING_START", "SCREENING_END",
                                                                      "SCREENING_NIGHTLY"))}
    res = subprocess.run([sys.executable, "-c", SCHEDULE_PROBE, str(DAGS)], capture_output=True, text=True,
                         timeout=600, cwd=ROOT, env={**base, **env})
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_make_airflow_demo_schedules_nothing_by_itself_but_accepts_triggers_in_the_demo_month():
    # scripts/airflow.sh's defaults: unpausing must not queue years of nights on the May-2022 demo data
    demo = schedule_under(SCREENING_START_DATE="2022-05-02", SCREENING_END_DATE="2022-05-31",
                          SCREENING_NIGHTLY_CATCHUP="false")
    window = ["2022-05-01T16:00:00+00:00", "2022-05-31T15:59:59.999999+00:00"]  # 05-02 00:00 to 05-31 24:00 Beijing
    assert demo == {"screening_nightly": [False, *window, None], "screening_hourly": [False, *window, None]}
    # without them (a deployment): the nightly catches up from its start date, first the night of 05-02 to 05-03
    deployed = schedule_under(SCREENING_START_DATE="2022-05-02", SCREENING_END_DATE="")
    assert deployed["screening_nightly"] == [True, window[0], None,
                                             ["2022-05-01T17:00:00+00:00", "2022-05-02T17:00:00+00:00"]]


def test_as_of_is_the_data_interval_end_in_shanghai_time(nightly, hourly):
    end = pendulum.datetime(2022, 5, 2, 17, 0, tz="UTC")  # 2022-05-03 01:00 in Beijing
    args = rendered(nightly.get_task("screen"), context_for(nightly, end))
    assert args == ["stage", "screen", "--landing", str(ROOT / "demo" / "landing"), "--lake", str(ROOT / "demo" / "lake"),
                    "--as-of", "2022-05-03T01:00:00+08:00", "--mode", "nightly"]
    end = pendulum.datetime(2022, 5, 3, 13, 10, tz="Asia/Shanghai")
    assert rendered(hourly.get_task("dq_feeds"), context_for(hourly, end))[6:8] == ["--as-of", "2022-05-03T13:10:00+08:00"]


def test_run_without_logical_date_screens_as_of_its_run_after(nightly, common):
    ctx = context_for(nightly, pendulum.datetime(2026, 11, 26, 16, 3, 6, tz="UTC"))
    del ctx["data_interval_end"]  # Airflow 3: a run triggered with no logical date has no data interval
    # and its run_after comes as a plain datetime, as the UI's Trigger button makes it
    ctx["dag_run"].run_after = datetime(2026, 11, 26, 16, 3, 6, tzinfo=UTC)
    assert rendered(nightly.get_task("ingest"), ctx)[6:8] == ["--as-of", "2026-11-27T00:03:06+08:00"]
    assert common.run_id_of(ctx) == "nightly-20261127T000306"


def test_landing_lake_and_python_come_from_variables(nightly):
    task = nightly.get_task("ingest")
    ctx = context_for(nightly, pendulum.datetime(2022, 5, 3, 1, tz="Asia/Shanghai"))
    values = {"screening_landing": "/data/landing", "screening_lake": "/data/lake", "screening_python": "/opt/py/bin/python"}
    ctx["var"] = SimpleNamespace(value=SimpleNamespace(get=lambda name, default=None: values.get(name, default)))
    assert rendered(task, ctx)[2:6] == ["--landing", "/data/landing", "--lake", "/data/lake"]
    env = task.render_template(task.env_vars, ctx)
    assert (env["PYSPARK_PYTHON"], env["PYSPARK_DRIVER_PYTHON"]) == ("/opt/py/bin/python", "/opt/py/bin/python")


@pytest.fixture
def stage_run(monkeypatch, common):
    """Run a task's execute() with spark-submit replaced by a fake that exits with the given code and output."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    monkeypatch.delenv("AIRFLOW_CONN_SCREENING_SPARK", raising=False)
    monkeypatch.setattr(common, "_connection_defined", lambda conn_id: False)
    seen = {}

    def go(dag, task_id, code, output=(), conf=None):
        import copy

        from airflow.sdk.exceptions import AirflowException

        task = copy.deepcopy(dag.get_task(task_id))
        ctx = context_for(dag, pendulum.datetime(2022, 5, 3, 1, tz="Asia/Shanghai"), conf)
        task.render_template_fields(ctx)  # what Airflow does before execute()

        def fake_execute(self, context):
            seen["args"], seen["jars"] = list(self.application_args), self.jars
            seen["conn"] = os.environ.get("AIRFLOW_CONN_SCREENING_SPARK")
            seen["operator"] = self.env_vars.get("SCREENING_OPERATOR")
            seen["conf"] = dict(self.conf)
            self._hook = SimpleNamespace(_submit_sp=SimpleNamespace(returncode=code),
                                         _last_submit_log_lines=list(output))
            if code:
                raise AirflowException(f"Cannot execute: spark-submit ... Error code is: {code}.")

        monkeypatch.setattr(SparkSubmitOperator, "execute", fake_execute)
        task.execute(ctx)
        return seen

    return go


HALT_LINE = ("run nightly-20220503T010000 halted by gate feed_volume: telecom_stays has 12% of its usual rows. "
             "Nothing was published. To publish anyway, rerun with --override-gate feed_volume --reason TEXT")


def test_gate_halt_fails_the_task_without_retries_and_says_how_to_override(stage_run, nightly):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as e:
        stage_run(nightly, "dq_feeds", 3, ["Setting Spark log level", HALT_LINE])
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("run nightly-20220503T010000 halted by data-quality gate feed_volume: telecom_stays has "
                          "12% of its usual rows. Nothing was published and the task is not retried")
    assert '{"override_gates": ["feed_volume"], "override_reason": "..."}' in msg
    assert "--override-gate feed_volume --reason TEXT" in msg


def test_locked_lake_is_retried(stage_run, nightly):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    with pytest.raises(AirflowException) as e:
        stage_run(nightly, "publish", 75)
    assert not isinstance(e.value, AirflowFailException)
    assert str(e.value) == "run nightly-20220503T010000: the lake is locked by another run (exit 75); retried later"


def test_other_spark_failure_is_retried_with_its_last_error_line(stage_run, hourly):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    out = ["Traceback (most recent call last):", '  File "jobs/cli.py", line 1', "\tat org.apache.Foo",
           "py4j.protocol.Py4JJavaError: An error occurred while calling o71.filter."]
    with pytest.raises(AirflowException) as e:
        stage_run(hourly, "screen", 1, out)
    assert not isinstance(e.value, AirflowFailException)
    assert str(e.value) == ("stage screen of run hourly-20220503T010000 failed (spark-submit exit 1): "
                            "py4j.protocol.Py4JJavaError: An error occurred while calling o71.filter.")


def test_success_defaults_to_local_spark_and_the_cached_delta_jars(stage_run, nightly, common):
    seen = stage_run(nightly, "ingest", 0)
    from jobs.spark import delta_jar_paths

    assert seen["jars"] == ",".join(str(p) for p in delta_jar_paths())
    assert json.loads(seen["conn"]) == {"conn_type": "spark", "host": "local[*]"}
    assert seen["operator"] == "airflow:ops"


def test_more_spark_settings_come_from_a_variable_and_a_bad_one_fails_clearly(stage_run, nightly, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_VAR_SCREENING_SPARK_CONF", '{"spark.executor.memory": "8g", "spark.executor.cores": 4}')
    seen = stage_run(nightly, "screen", 0)
    assert seen["conf"] == {"spark.driver.memory": "2g", "spark.sql.session.timeZone": "Asia/Shanghai",
                            "spark.executor.memory": "8g", "spark.executor.cores": "4"}
    monkeypatch.setenv("AIRFLOW_VAR_SCREENING_SPARK_CONF", "spark.executor.memory=8g")
    with pytest.raises(AirflowFailException, match="Variable screening_spark_conf is not JSON"):
        stage_run(nightly, "screen", 0)


def test_override_params_reach_only_the_gate_stages(stage_run, nightly):
    conf = {"override_gates": ["feed_volume", "result_share"], "override_reason": "telecom outage, checked by ops"}
    args = stage_run(nightly, "dq_results", 0, conf=conf)["args"]
    assert args[-6:] == ["--override-gate", "feed_volume", "--override-gate", "result_share",
                         "--reason", "telecom outage, checked by ops"]
    assert stage_run(nightly, "publish", 0, conf=conf)["args"][-2:] == ["--mode", "nightly"]


def test_override_without_reason_is_refused(stage_run, nightly):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="^override_gates needs override_reason"):
        stage_run(nightly, "dq_feeds", 0, conf={"override_gates": ["feed_volume"]})


def test_failure_callbacks_log_the_run_and_the_reason(caplog, nightly, common):
    end = pendulum.datetime(2022, 5, 3, 1, tz="Asia/Shanghai")
    ti = SimpleNamespace(dag_id="screening_nightly", task_id="screen", run_id="scheduled__2022-05-02T17:00:00+00:00",
                         try_number=2)
    with caplog.at_level(logging.ERROR, logger="screening.airflow"):
        common.log_task_failure({"ti": ti, "dag": nightly, "data_interval_end": end,
                                 "dag_run": SimpleNamespace(run_after=end), "exception": RuntimeError("boom\nmore")})
        common.log_run_failure({"dag_run": SimpleNamespace(run_id="manual__x", dag_id="screening_nightly"),
                                "reason": "task_failure"})
    assert [r.getMessage() for r in caplog.records] == [
        "screening task screening_nightly.screen failed (Airflow run scheduled__2022-05-02T17:00:00+00:00, "
        "screening run nightly-20220503T010000, try 2): boom more",
        "screening DAG run manual__x of screening_nightly failed: task_failure"]
