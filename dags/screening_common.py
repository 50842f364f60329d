"""What the two screening DAGs share (not a DAG itself): the stage operator, defaults and configuration.

Parse time stays light: only Airflow and the Spark provider are imported, nothing is read from disk, the
metadata DB or Variables. Everything that depends on the deployment is resolved when a task runs:

| what | Airflow Variable (or env `AIRFLOW_VAR_<NAME>`) | default |
|---|---|---|
| landing folder | `screening_landing` | `<project>/demo/landing` |
| lake folder | `screening_lake` | `<project>/demo/lake` |
| Python with the `jobs` package (driver and executors) | `screening_python` | `<project>/.venv/bin/python` |
| Delta jars (comma separated) | `screening_jars` | `<project>/.cache/jars/` (as `make setup` fetched them) |
| driver memory | `screening_driver_memory` | `2g` |
| more Spark settings (JSON object, e.g. executor memory and cores on a cluster) | `screening_spark_conf` | `{}` |
| Spark master | connection `screening_spark` (e.g. `AIRFLOW_CONN_SCREENING_SPARK`) | `local[*]` when it is not defined |

`as_of` is the run's data interval end in Asia/Shanghai, never the wall clock, so a rerun or a backfill of a
date screens exactly what the scheduled run screened (run id `{mode}-{as_of:%Y%m%dT%H%M%S}`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from datetime import timedelta

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowException, AirflowFailException

TZ = pendulum.timezone("Asia/Shanghai")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the project (dags/ is inside it)
APPLICATION = os.path.join(ROOT, "jobs", "cli.py")  # the `screening` command; spark-submit runs it as a script
CONN_ID = "screening_spark"
LOCAL_CONN = json.dumps({"conn_type": "spark", "host": "local[*]"})
POOL = "screening_lake"  # ONE slot, shared by every task of both DAGs: one writer of the lake at a time
POOL_SLOTS = 1
EXIT_HALTED = 3   # jobs.run.EXIT_HALTED: a data-quality gate stopped the run
EXIT_LOCKED = 75  # jobs.run.EXIT_LOCKED: another run holds the lake
STAGES = ("ingest", "dq_feeds", "screen", "dq_results", "publish", "maintain")
GATE_STAGES = ("dq_feeds", "dq_results")


def variable(name: str, default: str) -> str:
    """A template reading Airflow Variable `name` when the task runs (env AIRFLOW_VAR_<NAME> works too)."""
    return "{{ var.value.get(" + repr(name) + ", " + repr(default) + ") }}"


LANDING = variable("screening_landing", os.path.join(ROOT, "demo", "landing"))
LAKE = variable("screening_lake", os.path.join(ROOT, "demo", "lake"))
PYTHON = variable("screening_python", os.path.join(ROOT, ".venv", "bin", "python"))
JARS = variable("screening_jars", "")
DRIVER_MEMORY = variable("screening_driver_memory", "2g")
# The run's data interval end, as local time with its offset (the `screening` command accepts ISO-8601). A run
# triggered without a logical date has no data interval: its run_after (fixed when it was created) stands in.
AS_OF = ("{{ shanghai(data_interval_end if data_interval_end is defined and data_interval_end "
         "else dag_run.run_after) }}")


def in_shanghai(t):
    """An aware datetime in Asia/Shanghai. Airflow hands `run_after` over as a plain datetime, not a pendulum one
    (a UI trigger without a logical date failed on `.in_timezone`)."""
    return pendulum.instance(t).in_timezone(TZ)


def shanghai(t) -> str:
    """ISO-8601 in Asia/Shanghai of an aware datetime (the `--as-of` argument)."""
    return in_shanghai(t).isoformat()


MACROS = {"shanghai": shanghai}  # the DAGs' user_defined_macros

PARAMS = {
    "override_gates": Param([], type="array", items={"type": "string"},
                            description="data-quality gates to let through (`screening --override-gate`)"),
    "override_reason": Param("", type="string", description="why (recorded in run_log); needed with override_gates"),
}

log = logging.getLogger("screening.airflow")


def start_date():
    """First schedule date: env SCREENING_START_DATE (YYYY-MM-DD, local), the demo data's first night by default."""
    return pendulum.parse(os.environ.get("SCREENING_START_DATE", "2022-05-02"), tz=TZ)


def end_date():
    """Last schedule date: env SCREENING_END_DATE (YYYY-MM-DD, local), none when unset or empty. `make airflow`
    sets the demo's month, so that the DAGs schedule nothing of their own past the demo data, while a trigger
    with a logical date in that month still screens it (a task exists only for dates in its DAG's range)."""
    value = os.environ.get("SCREENING_END_DATE", "").strip()
    return pendulum.parse(value, tz=TZ).end_of("day") if value else None


def nightly_catchup() -> bool:
    """Whether missed nights are caught up: yes unless env SCREENING_NIGHTLY_CATCHUP is false/0/no (`make airflow`
    turns it off, or unpausing the demo would queue every night since its start date)."""
    return os.environ.get("SCREENING_NIGHTLY_CATCHUP", "true").strip().lower() not in ("false", "0", "no", "off")


def interval_end(context):
    """The run's data interval end; a run triggered without a logical date has none, its run_after stands in
    (the same choice as the AS_OF template)."""
    return context.get("data_interval_end") or context["dag_run"].run_after


def run_id_of(context) -> str:
    """The pipeline's run id of this Airflow run, as `jobs.run.RunContext.run_id` makes it."""
    mode = context["dag"].dag_id.removeprefix("screening_")
    return f"{mode}-{in_shanghai(interval_end(context)):%Y%m%dT%H%M%S}"


def one_line(text: object) -> str:
    return " ".join(str(text).split())[:500]


def log_task_failure(context) -> None:
    """on_failure_callback of every task: who, which run, which as-of, why, in one line."""
    ti = context["ti"]
    log.error("screening task %s.%s failed (Airflow run %s, screening run %s, try %s): %s",
              ti.dag_id, ti.task_id, ti.run_id, run_id_of(context), ti.try_number, one_line(context.get("exception")))


def log_run_failure(context) -> None:
    """on_failure_callback of each DAG: the run and Airflow's reason (e.g. a failed task, a dagrun timeout)."""
    dag_run = context.get("dag_run")
    log.error("screening DAG run %s of %s failed: %s", getattr(dag_run, "run_id", "?"),
              getattr(dag_run, "dag_id", "?"), one_line(context.get("reason") or "a task failed"))


def default_args(retries: int, retry_delay: timedelta, max_retry_delay: timedelta) -> dict:
    return {
        "owner": "screening",
        "depends_on_past": False,
        "retries": retries,
        "retry_delay": retry_delay,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": max_retry_delay,
        "pool": POOL,
        "pool_slots": 1,
        # Later stages outrank earlier ones for the pool's slot: a run that has started finishes before the
        # other DAG's next run starts ingesting.
        "weight_rule": "upstream",
        "on_failure_callback": log_task_failure,
    }


class ScreeningStage(SparkSubmitOperator):
    """One stage of a screening run: `spark-submit jobs/cli.py stage NAME --landing --lake --as-of --mode`.

    Exit 3 (a data-quality gate halted the run) fails the task at once, without retries, and says how to override;
    exit 75 (the lake is locked by another run) is retried with backoff; anything else is retried too.
    """

    ui_color = "#e8f4ea"

    def __init__(self, *, stage: str, mode: str, **kwargs):
        self.stage, self.mode = stage, mode
        super().__init__(
            application=APPLICATION,
            application_args=["stage", stage.replace("_", "-"), "--landing", LANDING, "--lake", LAKE,
                              "--as-of", AS_OF, "--mode", mode],
            conn_id=CONN_ID,
            name=f"screening-{mode}-{stage}",
            jars=JARS,
            conf={"spark.driver.memory": DRIVER_MEMORY, "spark.sql.session.timeZone": "Asia/Shanghai"},
            env_vars={"PYSPARK_PYTHON": PYTHON, "PYSPARK_DRIVER_PYTHON": PYTHON, "TZ": "Asia/Shanghai"},
            task_id=stage,
            **kwargs,
        )

    # -- run time ------------------------------------------------------------------------------------------
    def _prepare(self, context) -> None:
        if not self.jars:  # default: the project's cached Delta jars (the same list the Spark session uses)
            from jobs.spark import delta_jar_paths

            jars = delta_jar_paths()
            missing = [str(p) for p in jars if not os.path.exists(p)]
            if missing:
                raise AirflowFailException(f"Delta jars missing ({', '.join(missing)}): run `make setup` once, "
                                           "or set the Variable screening_jars")
            self.jars = ",".join(str(p) for p in jars)
        extra = _spark_conf()
        if extra:
            self.conf = {**self.conf, **extra}
        python = self.env_vars["PYSPARK_PYTHON"]
        if shutil.which("spark-submit") is None:  # the project venv has it next to its python
            os.environ["PATH"] = os.path.dirname(python) + os.pathsep + os.environ.get("PATH", "")
        if not _connection_defined(CONN_ID):
            self.log.info("connection %s is not defined: Spark runs in local mode (local[*])", CONN_ID)
            os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = LOCAL_CONN
        dag_run = context["dag_run"]
        who = getattr(dag_run, "triggering_user_name", None) or "scheduler"
        self.env_vars = {**self.env_vars, "SCREENING_OPERATOR": f"airflow:{who}"}
        params = context["params"]
        gates = [g for g in (params.get("override_gates") or []) if g]
        if self.stage in GATE_STAGES and gates:
            reason = (params.get("override_reason") or "").strip()
            if not reason:
                raise AirflowFailException("override_gates needs override_reason (it is recorded in run_log)")
            for gate in gates:
                self.application_args = [*self.application_args, "--override-gate", gate]
            self.application_args = [*self.application_args, "--reason", reason]

    def execute(self, context) -> None:
        self._prepare(context)
        try:
            super().execute(context)
        except AirflowException as e:
            code = getattr(getattr(self._hook, "_submit_sp", None), "returncode", None)
            if isinstance(e, AirflowFailException) or code is None:  # ours, or no exit yet (e.g. a timeout)
                raise
            tail = list(getattr(self._hook, "_last_submit_log_lines", []) or [])
            raise self.failure(code, tail, run_id_of(context), context) from None

    def failure(self, code, tail: list[str], run_id: str, context) -> AirflowException:
        if code == EXIT_HALTED:
            gate, message = "GATE", "see the task log"
            for line in tail:
                m = re.search(r"halted by gate (\S+): (.*?)(?:\. Nothing was published.*)?$", line)
                if m:
                    gate, message = m.group(1), m.group(2)
            date = interval_end(context)
            return AirflowFailException(
                f"run {run_id} halted by data-quality gate {gate}: {message}. Nothing was published and the task "
                f"is not retried: an operator must look. To publish anyway, trigger {context['dag'].dag_id} for "
                f"{date.isoformat()} with conf {{\"override_gates\": [\"{gate}\"], \"override_reason\": \"...\"}} "
                f"(the same as `screening stage {self.stage.replace('_', '-')} ... --override-gate {gate} "
                f"--reason TEXT`)")
        if code == EXIT_LOCKED:
            return AirflowException(f"run {run_id}: the lake is locked by another run (exit 75); retried later")
        last = next((ln.strip() for ln in reversed(tail) if ln.strip() and not ln.startswith(("\t", " "))), "")
        return AirflowException(f"stage {self.stage} of run {run_id} failed (spark-submit exit {code}): "
                                f"{one_line(last) or 'see the Spark output above'}")


def _spark_conf() -> dict[str, str]:
    """The Variable screening_spark_conf (a JSON object of Spark settings), read when the task runs."""
    from airflow.sdk import Variable

    raw = Variable.get("screening_spark_conf", default=None)
    if not raw:
        return {}
    try:
        conf = json.loads(raw)
    except ValueError as e:
        raise AirflowFailException(f"Variable screening_spark_conf is not JSON ({e}): {raw[:200]}") from None
    if not isinstance(conf, dict):
        raise AirflowFailException("Variable screening_spark_conf must be a JSON object of Spark settings")
    return {str(k): str(v) for k, v in conf.items()}


def _connection_defined(conn_id: str) -> bool:
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except Exception:  # AirflowNotFoundException, or no way to ask: treat as not defined
        return False
    return True


def stage_tasks(mode: str, timeouts: dict[str, timedelta]) -> list[ScreeningStage]:
    """The stages in order, chained; one task per stage in `timeouts` (its execution timeout)."""
    tasks = [ScreeningStage(stage=s, mode=mode, execution_timeout=timeouts[s]) for s in STAGES if s in timeouts]
    for up, down in zip(tasks, tasks[1:], strict=False):
        up >> down
    return tasks


def doc(title: str, schedule_text: str, extra: str = "") -> str:
    return f"""
# {title}

{schedule_text} Each task is one stage of a screening run, run as its own `spark-submit` of the project's
`screening stage NAME` command (`jobs/cli.py`): **ingest** (new landing files → bronze, bad rows → rejects)
→ **dq_feeds** (data-quality gate on the deliveries) → **screen** (every rule at the as-of, into staging)
→ **dq_results** (gate on the screened reasons) → **publish** (gold tables, assignment and release lists,
exports; `run_log.status = completed` last){extra}.

* **as_of** = this run's data interval end in Asia/Shanghai (never the wall clock): clearing or re-triggering a
  date screens exactly the same cut. Run id in the lake: `{{mode}}-{{as_of:%Y%m%dT%H%M%S}}`.
* Landing / lake / python / jars come from the Variables `screening_landing`, `screening_lake`,
  `screening_python`, `screening_jars`; Spark's master from the connection `screening_spark` (local when unset).
* Every task uses the pool `screening_lake` (1 slot, shared with the other screening DAG): the nightly and the
  hourly DAG never write the lake at the same time. `max_active_runs=1`.

## When it fails
* **A data-quality gate halted the run** (task `dq_feeds`/`dq_results` failed, not retried, message
  "halted by data-quality gate ..."): nothing was published. Look at the gate's numbers in the log and in
  `run_log.dq_summary`; fix the feed and clear the run from `ingest`, or, when the data is right, publish anyway
  by triggering this date with conf `{{"override_gates": ["GATE"], "override_reason": "why"}}` (same as
  `screening stage ... --override-gate GATE --reason TEXT`; the override is recorded in `run_log`).
* **The lake is locked** (exit 75): another run is writing; the task retries by itself with backoff.
* **Anything else** (Spark error, timeout): the task retries with exponential backoff; when retries are used up
  read the Spark output in the task log, fix, and clear the failed task (its downstream tasks follow). Stages are
  idempotent for a run id, so clearing any task is safe.
"""
