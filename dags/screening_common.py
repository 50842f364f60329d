"""What the two screening DAGs share (not a DAG itself): the engine and stage operators, defaults and configuration.

Parse time stays light: only Airflow and the Spark provider are imported, nothing is read from disk, the
metadata DB or Variables. Everything that depends on the deployment is resolved when a task runs:

| what | Airflow Variable (or env `AIRFLOW_VAR_<NAME>`) | default |
|---|---|---|
| how stages run: `connect` (thin clients of the warm engine) or `submit` (a `spark-submit` each) | `screening_engine` | `connect` |
| the engine's address (`connect`) | `screening_spark_remote` | `sc://127.0.0.1:15002` |
| landing folder | `screening_landing` | `<project>/demo/landing` |
| lake folder | `screening_lake` | `<project>/demo/lake` |
| Python with the `jobs` package (the stage commands; driver and executors with `submit`) | `screening_python` | `<project>/.venv/bin/python` |
| Delta jars (comma separated; `submit`) | `screening_jars` | `<project>/.cache/jars/` (as `make setup` fetched them) |
| driver memory (`submit`; with `connect` the heap of an engine the `engine` task starts) | `screening_driver_memory` | `2g` (`submit`), the engine's own default (`connect`) |
| more Spark settings (JSON object, e.g. executor memory and cores on a cluster; `submit`) | `screening_spark_conf` | `{}` |
| Spark master (`submit`) | connection `screening_spark` (e.g. `AIRFLOW_CONN_SCREENING_SPARK`) | `local[*]` when it is not defined |
| where failure and lateness notices are posted (JSON, `ScreeningWebhookNotifier`) | `screening_alert_webhook` | none: notices are only logged |

`as_of` is the run's data interval end in Asia/Shanghai, never the wall clock, so a rerun or a backfill of a
date screens exactly what the scheduled run screened (run id `{mode}-{as_of:%Y%m%dT%H%M%S}`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections import deque
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import (
    BaseHook,
    BaseNotifier,
    BaseOperator,
    DeadlineAlert,
    DeadlineReference,
    Param,
    SyncCallback,
    Variable,
)
from airflow.sdk.exceptions import AirflowException, AirflowFailException

TZ = pendulum.timezone("Asia/Shanghai")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the project (dags/ is inside it)
APPLICATION = os.path.join(ROOT, "jobs", "cli.py")  # the `screening` command; spark-submit runs it as a script
CONN_ID = "screening_spark"
LOCAL_CONN = json.dumps({"conn_type": "spark", "host": "local[*]"})
POOL = "screening_lake"  # ONE slot, shared by every task of both DAGs: one writer of the lake at a time
POOL_SLOTS = 1
EXIT_HALTED = 3  # jobs.run.EXIT_HALTED: a data-quality gate stopped the run
EXIT_LOCKED = 75  # jobs.run.EXIT_LOCKED: another run holds the lake
ENGINE_TASK = "engine"
ENGINE_POOL = "default_pool"  # not the lake's slot: the engine task never writes the lake (see ScreeningEngine)
ENGINE_TIMEOUT = timedelta(minutes=10)  # a cold engine answers in 10-40 s, at most 3 minutes (jobs.engine)
ENGINES = ("connect", "submit")  # the Variable screening_engine
DEFAULT_REMOTE = "sc://127.0.0.1:15002"  # the Variable screening_spark_remote (jobs.engine.DEFAULT_PORT)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
STAGES = ("ingest", "dq_feeds", "screen", "dq_results", "publish", "maintain")  # jobs.run.STAGES
GATE_STAGES = ("dq_feeds", "dq_results")  # jobs.run.GATE_STAGES

# Lateness. docs/scaling.md sets the targets at Beijing scale: a nightly run under 1 hour, an hourly run under 10
# minutes. Neither policy.toml nor the SCREENING_* settings hold run-time limits, so they are named here:
# - NIGHTLY_DONE_WITHIN: the nightly's DeadlineAlert. Not done 5 hours after it was queued, that is by 06:00 Beijing
#   time for the 01:00 run (five times the target: room for retries and a late feed, and still before the
#   community workers' day starts with the lists), it posts a `deadline_missed` notice; the run goes on.
# - NIGHTLY_RUN_TIMEOUT: the nightly's dagrun_timeout. Its stage timeouts add up to 6 h 40 min; at 8 hours (09:00
#   for the 01:00 run) the run is failed, which posts a `run_failed` notice (reason timed_out), and the lake's
#   pool slot goes back to the day's hourly runs. Stages are idempotent: clearing the run later finishes it.
# - HOURLY_RUN_TIMEOUT: the hourly's dagrun_timeout. Its stage timeouts add up to 1 h 40 min; a run still going
#   after 2 hours is stuck: it is failed (a `run_failed` notice) and the next hour's run takes in everything new.
NIGHTLY_DONE_WITHIN = timedelta(hours=5)
NIGHTLY_RUN_TIMEOUT = timedelta(hours=8)
HOURLY_RUN_TIMEOUT = timedelta(hours=2)
ALERT_WEBHOOK = "screening_alert_webhook"  # the Variable (env AIRFLOW_VAR_SCREENING_ALERT_WEBHOOK) notices go to
ALERT_TIMEOUT_S = 10  # seconds to deliver a notice; an unreachable webhook is logged, never fails the task


def variable(name: str, default: str) -> str:
    """A template reading Airflow Variable `name` when the task runs (env AIRFLOW_VAR_<NAME> works too)."""
    return "{{ var.value.get(" + repr(name) + ", " + repr(default) + ") }}"


LANDING = variable("screening_landing", os.path.join(ROOT, "demo", "landing"))
LAKE = variable("screening_lake", os.path.join(ROOT, "demo", "lake"))
PYTHON = variable("screening_python", os.path.join(ROOT, ".venv", "bin", "python"))
JARS = variable("screening_jars", "")
DRIVER_MEMORY = variable("screening_driver_memory", "2g")
# The run's as-of (`run_as_of`), as local time with its offset (the `screening` command accepts ISO-8601).
AS_OF = "{{ shanghai(run_as_of(data_interval_end if data_interval_end is defined else None, dag_run, dag)) }}"


def in_shanghai(t):
    """An aware datetime in Asia/Shanghai. Airflow hands `run_after` over as a plain datetime, not a pendulum one
    (a UI trigger without a logical date failed on `.in_timezone`)."""
    return pendulum.instance(t).in_timezone(TZ)


def shanghai(t) -> str:
    """ISO-8601 in Asia/Shanghai of an aware datetime (the `--as-of` argument)."""
    return in_shanghai(t).isoformat()


def last_tick(timetable, t):
    """The latest time at or before `t` the cron timetable fires (its expression in its time zone)."""
    from croniter import croniter  # Airflow's own dependency; only when a task renders, not at parse time

    local = pendulum.instance(t).in_timezone(timetable.timezone).replace(microsecond=0) + timedelta(seconds=1)
    return pendulum.instance(croniter(timetable.expression, local).get_prev(datetime)).in_timezone(TZ)


def run_as_of(data_interval_end, dag_run, dag):
    """The instant a run screens as of: its data interval end. A manual run with a logical date screens as of the
    last schedule time at or before that date, as a UI or REST trigger's data interval ends; `airflow dags trigger
    --logical-date` gives the run a data interval ending at the trigger moment instead, which would screen today.
    A run triggered without a logical date has no data interval: its run_after (fixed when it was created).
    Without the DAG (a deadline's context has none) the data interval end stands."""
    logical = _field(dag_run, "logical_date")
    if dag is not None and logical is not None and _state(_field(dag_run, "run_type"), "") == "manual":
        return last_tick(dag.timetable, logical)
    return data_interval_end or _field(dag_run, "run_after")


MACROS = {"shanghai": shanghai, "run_as_of": run_as_of}  # the DAGs' user_defined_macros

# Both optional: a type that admits null is what Airflow's Trigger form takes as "not required" (any other type
# is required, and the Trigger button stays disabled until it is filled in). Given, they are validated: a list of
# gate names, a text. Null or an empty list means no override; gates without a reason fail the gate stages
# (ScreeningStage._prepare).
PARAMS = {
    "override_gates": Param(
        None,
        type=["null", "array"],
        items={"type": "string"},
        description="data-quality gates to let through (`screening --override-gate`); leave empty for a normal run",
    ),
    "override_reason": Param(
        None, type=["null", "string"], description="why (recorded in run_log); needed with override_gates"
    ),
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
    """The run's as-of (`run_as_of`, as the AS_OF template renders it)."""
    return run_as_of(context.get("data_interval_end"), context.get("dag_run"), context["dag"])


def screening_run_id(dag_id: str, as_of) -> str:
    """The pipeline's run id of a run of DAG `dag_id` screening as of `as_of`, as `jobs.run.RunContext.run_id`
    makes it."""
    return f"{dag_id.removeprefix('screening_')}-{in_shanghai(as_of):%Y%m%dT%H%M%S}"


def run_id_of(context) -> str:
    """The pipeline's run id of this Airflow run, as `jobs.run.RunContext.run_id` makes it."""
    return screening_run_id(context["dag"].dag_id, interval_end(context))


def one_line(text: object) -> str:
    return " ".join(str(text).split())[:500]


# -- notices: failure and lateness, posted as JSON to a webhook --------------------------------------------------
NOTICES = {
    "task_failed": "a task failed for good (its retries used up, or a data-quality gate halted the run)",
    "run_failed": "a DAG run failed without a task failing: dagrun_timeout (reason timed_out) or a deadlock",
    "deadline_missed": "the nightly was not done in time (DeadlineAlert); the run goes on",
}


def _field(obj, name: str):
    """`obj.name`, or `obj[name]` when obj is a dict (a deadline's context holds the DAG run as a JSON dict)."""
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _time(value) -> pendulum.DateTime | None:
    """An instant in Asia/Shanghai from a datetime, an ISO-8601 text (UTC when it has no offset) or a POSIX time."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return pendulum.from_timestamp(value, tz=TZ)
    if isinstance(value, str):
        return pendulum.parse(value).in_timezone(TZ)
    return in_shanghai(value)


def _state(value, default: str) -> str:
    value = getattr(value, "value", value)  # an Airflow state enum
    return str(value) if value else default


def _airflow_ui() -> str:
    """The Airflow UI's address: `[api] base_url`, else this machine's API server port."""
    from airflow.sdk.configuration import conf  # when a notice is made, not when the DAG files are parsed

    base = conf.get("api", "base_url", fallback=None) or f"http://localhost:{conf.get('api', 'port', fallback='8080')}"
    return base.rstrip("/")


def _log_folder() -> str:
    from airflow.sdk.configuration import conf

    return conf.get("logging", "base_log_folder", fallback="logs")


def notice(event: str, context) -> dict:
    """The JSON a notice posts: what happened to which run (Airflow's and the pipeline's), when, why, where to look.

    `context` is what Airflow hands the callback: a task's context (task_failed), a DAG run's (run_failed: the
    run's last task instance, when there is one, and `reason`), or a DeadlineAlert's (deadline_missed: the DAG run
    as a JSON dict and `deadline`). Times are ISO-8601 in Asia/Shanghai."""
    if event not in NOTICES:
        raise ValueError(f"unknown notice {event!r}: one of {', '.join(NOTICES)}")
    ti = context.get("ti")
    dag_run = context.get("dag_run")
    dag_id = _field(ti, "dag_id") or _field(context.get("dag"), "dag_id") or _field(dag_run, "dag_id") or "?"
    run_id = _field(ti, "run_id") or context.get("run_id") or _field(dag_run, "run_id") or _field(dag_run, "dag_run_id")
    task_id = _field(ti, "task_id") if event != "deadline_missed" else None
    try_number = _field(ti, "try_number") if task_id else None
    logical_date = _time(context.get("logical_date") or _field(dag_run, "logical_date"))
    # the as-of the tasks screen (AS_OF)
    end = context.get("data_interval_end") or _field(dag_run, "data_interval_end")
    as_of = _time(run_as_of(end, dag_run, context.get("dag")))
    ui = _airflow_ui()
    run_url = f"{ui}/dags/{dag_id}/runs/{quote(str(run_id or ''), safe='')}"
    if event == "task_failed":
        state = _state(_field(ti, "state"), "failed")
        reason = one_line(context.get("exception") or "see the task log")
        url = f"{run_url}/tasks/{task_id}" + (f"?try_number={try_number}" if try_number else "")
        log_hint = (
            f"the task's log (try {try_number}): {url}; on the Airflow host "
            f"{_log_folder()}/dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt={try_number}.log"
        )
        what = f"task {task_id} failed" + (f" (try {try_number})" if try_number else "")
    elif event == "run_failed":
        state = _state(_field(dag_run, "state"), "failed")
        reason = one_line(context.get("reason") or "the run failed")
        url = run_url
        log_hint = f"the run's tasks and their logs: {url}" + (f" (the last task: {task_id})" if task_id else "")
        what = f"run failed ({reason})"
    else:
        state = _state(_field(dag_run, "state"), "running")
        due = _time(_field(context.get("deadline"), "deadline_time"))
        reason = f"not done by {due:%Y-%m-%d %H:%M} Beijing time" if due else "not done by its deadline"
        url = run_url
        log_hint = f"the run is {state}; its tasks and their logs: {url}"
        what = f"run {reason} (it is {state})"
    run = screening_run_id(dag_id, as_of) if as_of and dag_id.startswith("screening_") else None
    return {
        "event": event,
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "try_number": try_number,
        "logical_date": logical_date.isoformat() if logical_date else None,
        "as_of": as_of.isoformat() if as_of else None,
        "screening_run_id": run,
        "state": state,
        "reason": reason,
        "url": url,
        "log_hint": log_hint,
        "text": f"{dag_id}: {what}"
        + (f", screening run {run}" if run else "")
        + (f": {reason}" if event == "task_failed" else "")
        + f" {url}",
    }


def alert_webhook() -> str | None:
    """The webhook notices are posted to: the Variable screening_alert_webhook (or env
    AIRFLOW_VAR_SCREENING_ALERT_WEBHOOK), read when a notice is sent; None when unset, empty or unreadable."""
    try:
        return _variable(ALERT_WEBHOOK)
    except Exception as e:  # no metadata DB / API to ask from here: as if unset, and say so
        log.warning("cannot read the Variable %s (%s): notices are only logged", ALERT_WEBHOOK, one_line(e))
        return None


def post_json(url: str, payload: dict, timeout: float = ALERT_TIMEOUT_S) -> int:
    """POST `payload` as JSON (UTF-8) to `url`; the HTTP status. Raises on a refused connection or an HTTP error."""
    import urllib.request  # when a notice is sent, not when the DAG files are parsed

    request = urllib.request.Request(
        url,
        data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "screening-airflow"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


class ScreeningWebhookNotifier(BaseNotifier):
    """Posts a notice (`notice()`: DAG, Airflow run, task, logical date, as-of, state, reason, link and log hint)
    as JSON to the webhook in the Variable screening_alert_webhook; with no webhook it only logs the notice (logger
    `screening.airflow`). A notice that cannot be delivered is logged as an error and changes nothing else: the
    task or run has failed (or is late) either way.

    `event` is one of NOTICES: `task_failed` (every task's on_failure_callback: called once the task failed for
    good, not on a retry), `run_failed` (each DAG's on_failure_callback; a run failed by a task is not posted again,
    its task's notice says more) or `deadline_missed` (the nightly's DeadlineAlert, run by the executor through
    SyncCallback: Airflow passes `context` to the constructor, then calls the notifier with it)."""

    template_fields = ()

    def __init__(self, event: str, context=None):
        super().__init__(context)
        if event not in NOTICES:
            raise ValueError(f"unknown notice {event!r}: one of {', '.join(NOTICES)}")
        self.event = event

    def render_template_fields(self, context, jinja_env=None) -> None:
        """Nothing to render (no template fields). Not BaseNotifier's: a DAG run's callback may be handed a
        serialized DAG, which has no template environment (`airflow dags test` failed on it)."""

    def notify(self, context) -> None:
        payload = notice(self.event, context)
        if self.event == "run_failed" and payload["reason"] == "task_failure":
            log.info("run_failed not posted (a task failed: its own notice says which and why): %s", payload["text"])
            return
        url = alert_webhook()
        if not url:
            log.info("notice (no webhook: set the Variable %s to post it): %s", ALERT_WEBHOOK, payload["text"])
            return
        parts = urlsplit(url)  # only its host is logged: a webhook's path or user part often holds its token
        where = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        try:
            status = post_json(url, payload)
        except Exception as e:
            log.error(
                "notice %s NOT delivered to the webhook at %s (%s): %s", self.event, where, one_line(e), payload["text"]
            )
            return
        log.info("notice %s posted to the webhook at %s (HTTP %s): %s", self.event, where, status, payload["text"])


def under_dags_test() -> bool:
    """Whether this process is `airflow dags test` (scripts/airflow.sh dags test ..., the Airflow end-to-end test)."""
    return os.path.basename(sys.argv[0]) == "airflow" and sys.argv[1:3] == ["dags", "test"]


def nightly_deadline() -> DeadlineAlert | None:
    """The nightly's lateness notice: NIGHTLY_DONE_WITHIN after the run was queued (06:00 Beijing time for the 01:00
    run), a run not done posts `deadline_missed`. The executor runs it (SyncCallback): the DAG folder, where this
    module is, is then on its path; the triggerer's (AsyncCallback) is not. Airflow drops the deadline of a run
    that succeeds; a run that failed before it still gets the notice (its night is still not published).

    None under `airflow dags test`: there a run that succeeds crashes the command on a DAG with a deadline
    (apache/airflow#73428, open in 3.3.2: `dag.test()` leaves the alerts serialized where their ids are expected),
    and a test run is never queued, so Airflow would skip this deadline anyway. Drop the exception once a release
    has the fix."""
    if under_dags_test():
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=NIGHTLY_DONE_WITHIN,
        callback=SyncCallback(ScreeningWebhookNotifier, kwargs={"event": "deadline_missed"}),
        name="screening_nightly not done by 06:00 Beijing time",
    )


def log_task_failure(context) -> None:
    """on_failure_callback of every task: who, which run, which as-of, why, in one line."""
    ti = context["ti"]
    log.error(
        "screening task %s.%s failed (Airflow run %s, screening run %s, try %s): %s",
        ti.dag_id,
        ti.task_id,
        ti.run_id,
        run_id_of(context),
        ti.try_number,
        one_line(context.get("exception")),
    )


def log_run_failure(context) -> None:
    """on_failure_callback of each DAG: the run and Airflow's reason (e.g. a failed task, a dagrun timeout)."""
    dag_run = context.get("dag_run")
    log.error(
        "screening DAG run %s of %s failed: %s",
        getattr(dag_run, "run_id", None) or context.get("run_id") or "?",
        getattr(dag_run, "dag_id", None) or _field(context.get("dag"), "dag_id") or "?",
        one_line(context.get("reason") or "a task failed"),
    )


def run_failure_callbacks() -> list:
    """on_failure_callback of each DAG: the log line, then the `run_failed` notice."""
    return [log_run_failure, ScreeningWebhookNotifier("run_failed")]


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
        # once a task has failed for good: the log line, then the `task_failed` notice (not on a retry)
        "on_failure_callback": [log_task_failure, ScreeningWebhookNotifier("task_failed")],
    }


def _variable(name: str) -> str | None:
    """An Airflow Variable (or env AIRFLOW_VAR_<NAME>) read when the task runs; None when unset or empty."""
    value = Variable.get(name, default=None)
    return value.strip() if value and value.strip() else None


def engine_choice() -> str:
    """The Variable screening_engine: `connect` (default: each stage a thin client of the warm engine) or
    `submit` (each stage its own spark-submit)."""
    value = (_variable("screening_engine") or "connect").lower()
    if value not in ENGINES:
        raise AirflowFailException(f"Variable screening_engine is {value!r}: it must be connect or submit")
    return value


def spark_remote() -> str:
    """The Variable screening_spark_remote: the engine's Spark Connect address."""
    return _variable("screening_spark_remote") or DEFAULT_REMOTE


def host_port(url: str) -> tuple[str, int]:
    """Host and port of an `sc://host:port[/;params]` address (Spark Connect's default port when none)."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port or 15002
    except ValueError:  # a port that is not a number
        host = None
    if parts.scheme != "sc" or not host:
        raise AirflowFailException(f"Variable screening_spark_remote is {url!r}: it must look like sc://host:port")
    return host, port


class Subprocesses:
    """Run a command, its output (stdout and stderr) line by line into the task log; a killed task (timeout, mark
    failed) interrupts it (SIGINT: a thin client ends its session on the engine) and kills it if it lingers."""

    TAIL = 50  # lines kept for the failure message
    _proc: subprocess.Popen | None = None

    def _run_command(self, cmd: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
        self.log.info("running %s", shlex.join(cmd))
        tail: deque[str] = deque(maxlen=self.TAIL)
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._proc = proc
        try:
            for line in proc.stdout:
                line = line.rstrip("\n")
                self.log.info("%s", line)
                tail.append(line)
            return proc.wait(), list(tail)
        finally:
            self._end_command()

    def _end_command(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        self.log.warning("interrupting pid %s", proc.pid)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def child_env(**extra: str) -> dict[str, str]:
    """This worker's environment for a command, without a Spark gateway or an engine address of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY") and k != "SCREENING_SPARK_REMOTE"}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def last_line(tail: list[str]) -> str:
    """The last line worth quoting: not blank, not a traceback or stack frame (those are indented)."""
    return next((ln.strip() for ln in reversed(tail) if ln.strip() and not ln.startswith(("\t", " "))), "")


class ScreeningEngine(Subprocesses, BaseOperator):
    """Task `engine`, upstream of ingest: the warm engine (a Spark Connect server, `screening engine`) answers.

    With `screening_engine=connect`: when nothing answers at `screening_spark_remote` and that address is on this
    machine (127.0.0.1 / localhost), it starts the engine (`screening engine start --port P`; the state folder is
    env SCREENING_ENGINE_HOME when set) and waits until it answers; an engine elsewhere is only checked, and the task
    fails in one line when it does not answer. With `submit` it does nothing. It takes a slot of `default_pool`,
    not the lake's: it never touches the lake, and a check of a few seconds (a start: under a minute, at most 3)
    should not queue behind the other DAG's run nor hold that run back.
    """

    ui_color = "#e8eef4"
    template_fields = ("python",)
    PROBE = (
        "import sys\nfrom pyspark.sql import SparkSession\n"
        "s = SparkSession.builder.remote(sys.argv[1]).create()\n"
        "ok = s.range(1).count() == 1\ns.stop()\nsys.exit(0 if ok else 1)\n"
    )
    PROBE_TIMEOUT_S = 60

    def __init__(self, **kwargs):
        kwargs.setdefault("execution_timeout", ENGINE_TIMEOUT)
        super().__init__(task_id=ENGINE_TASK, **{**kwargs, "pool": ENGINE_POOL})
        self.python = PYTHON

    def execute(self, context) -> None:
        if engine_choice() == "submit":
            self.log.info("Variable screening_engine is submit: each stage starts its own Spark; no engine needed")
            return
        url = spark_remote()
        host, port = host_port(url)
        if self._answers(url, host, port):
            self.log.info("the engine at %s answers", url)
            return
        if host not in LOCAL_HOSTS:
            raise AirflowException(
                f"the engine at {url} does not answer: start it there (`screening engine start`) "
                "or set the Variable screening_spark_remote"
            )
        self.log.info("nothing answers at %s: starting the engine on this machine", url)
        cmd = [self.python, "-m", "jobs.cli", "engine", "start", "--port", str(port)]
        memory = _variable("screening_driver_memory")
        if memory:
            cmd += ["--driver-memory", memory]
        code, tail = self._run_command(cmd, child_env())
        if code != 0:
            raise AirflowException(
                f"the engine at {url} could not be started (exit {code}): "
                f"{one_line(last_line(tail)) or 'see the log above'}"
            )

    def _answers(self, url: str, host: str, port: int) -> bool:
        """The port is open and a client session runs a query (the port opens before the server serves)."""
        try:
            socket.create_connection((host, port), timeout=3).close()
        except OSError:
            return False
        try:
            res = subprocess.run(
                [self.python, "-c", self.PROBE, url],
                cwd=ROOT,
                env=child_env(),
                capture_output=True,
                text=True,
                timeout=self.PROBE_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return False
        return res.returncode == 0

    def on_kill(self) -> None:
        self._end_command()


class ScreeningStage(Subprocesses, SparkSubmitOperator):
    """One stage of a screening run: `screening stage NAME --landing --lake --as-of --mode`.

    With `screening_engine=connect` (the default) the command runs as `<screening_python> -m jobs.cli stage ...`
    in the project folder with SCREENING_SPARK_REMOTE set: a thin client of the warm engine, seconds per stage
    instead of a JVM each. With `submit` it is `spark-submit jobs/cli.py stage ...` (connection screening_spark).
    Exit 3 (a data-quality gate halted the run) fails the task at once, without retries, and says how to override;
    exit 75 (the lake is locked by another run) is retried with backoff; anything else is retried too.
    """

    ui_color = "#e8f4ea"

    def __init__(self, *, stage: str, mode: str, **kwargs):
        self.stage, self.mode = stage, mode
        self.engine = None  # resolved when the task runs
        super().__init__(
            application=APPLICATION,
            application_args=[
                "stage",
                stage.replace("_", "-"),
                "--landing",
                LANDING,
                "--lake",
                LAKE,
                "--as-of",
                AS_OF,
                "--mode",
                mode,
            ],
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
        """What both ways share: who runs it (SCREENING_OPERATOR) and the gate overrides of the run's conf."""
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

    def _prepare_submit(self) -> None:
        if not self.jars:  # default: the project's cached Delta jars (the same list the Spark session uses)
            # imported when the task runs: parsing the DAG files imports no pipeline code
            from jobs.spark import delta_jar_paths

            jars = delta_jar_paths()
            missing = [str(p) for p in jars if not os.path.exists(p)]
            if missing:
                raise AirflowFailException(
                    f"Delta jars missing ({', '.join(missing)}): run `make setup` once, "
                    "or set the Variable screening_jars"
                )
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

    def execute(self, context) -> None:
        self.engine = engine_choice()
        self._prepare(context)
        if self.engine == "connect":
            self._execute_connect(context)
            return
        self._prepare_submit()
        try:
            super().execute(context)
        except AirflowException as e:
            code = getattr(getattr(self._hook, "_submit_sp", None), "returncode", None)
            if isinstance(e, AirflowFailException) or code is None:  # ours, or no exit yet (e.g. a timeout)
                raise
            tail = list(getattr(self._hook, "_last_submit_log_lines", []) or [])
            raise self.failure(code, tail, run_id_of(context), context) from None

    def _execute_connect(self, context) -> None:
        url = spark_remote()
        host_port(url)  # a malformed address fails here, in one line
        if _variable("screening_spark_conf"):
            self.log.info("Variable screening_spark_conf is for spark-submit: the engine has its own settings")
        cmd = [self.env_vars["PYSPARK_PYTHON"], "-m", "jobs.cli", *self.application_args]
        self.log.info("stage %s: a thin client of the engine at %s", self.stage, url)
        code, tail = self._run_command(cmd, child_env(**self.env_vars, SCREENING_SPARK_REMOTE=url))
        if code != 0:
            raise self.failure(code, tail, run_id_of(context), context)

    def on_kill(self) -> None:
        if self.engine == "submit":
            super().on_kill()
        else:
            self._end_command()

    def failure(self, code, tail: list[str], run_id: str, context) -> AirflowException:
        if code == EXIT_HALTED:
            gate, message = "GATE", "see the task log"
            for line in tail:
                m = re.search(r"halted by gate (\S+): (.*?)(?:\. Nothing was published.*)?$", line)
                if m:
                    gate, message = m.group(1), m.group(2)
            # Airflow keeps one run per logical date, and this run's may be the as-of itself: a minute after it
            # is a free date that screens the same as-of (`run_as_of`: the last schedule time at or before it)
            date = in_shanghai(interval_end(context)) + timedelta(minutes=1)
            return AirflowFailException(
                f"run {run_id} halted by data-quality gate {gate}: {message}. Nothing was published and the task "
                f"is not retried: an operator must look. To publish anyway, trigger {context['dag'].dag_id} with "
                f"the logical date {date.isoformat()} (it screens the same as-of) and conf "
                f'{{"override_gates": ["{gate}"], "override_reason": "..."}} '
                f"(the same as `screening stage {self.stage.replace('_', '-')} ... --override-gate {gate} "
                f"--reason TEXT`)"
            )
        if code == EXIT_LOCKED:
            return AirflowException(f"run {run_id}: the lake is locked by another run (exit 75); retried later")
        runner = "spark-submit" if self.engine == "submit" else "screening"
        return AirflowException(
            f"stage {self.stage} of run {run_id} failed ({runner} exit {code}): "
            f"{one_line(last_line(tail)) or 'see the output above'}"
        )


def _spark_conf() -> dict[str, str]:
    """The Variable screening_spark_conf (a JSON object of Spark settings), read when the task runs."""
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
    try:
        BaseHook.get_connection(conn_id)
    except Exception:  # AirflowNotFoundException, or no way to ask: treat as not defined
        return False
    return True


def stage_tasks(mode: str, timeouts: dict[str, timedelta]) -> list[BaseOperator]:
    """The `engine` task, then the stages in order, chained; one task per stage in `timeouts` (its execution
    timeout)."""
    tasks = [
        ScreeningEngine(),
        *(ScreeningStage(stage=s, mode=mode, execution_timeout=timeouts[s]) for s in STAGES if s in timeouts),
    ]
    for up, down in zip(tasks, tasks[1:], strict=False):
        up >> down
    return tasks


def doc(title: str, schedule_text: str, extra: str = "", lateness: str = "") -> str:
    return f"""
# {title}

{schedule_text} The first task, **engine**, makes sure the warm engine answers (one Spark Connect server,
`screening engine start`) and starts it when it is on this machine and down. Each following task is one stage of a
screening run, the project's `screening stage NAME` command (`jobs/cli.py`) run as a thin client of the engine:
**ingest** (new landing files → bronze, bad rows → rejects) → **dq_feeds** (data-quality gate on the deliveries)
→ **screen** (every rule at the as-of, into staging) → **dq_results** (gate on the screened reasons)
→ **publish** (gold tables, assignment and release lists, exports; `run_log.status = completed` last){extra}.

* **as_of** = this run's data interval end in Asia/Shanghai (never the wall clock): clearing or re-triggering a
  date screens exactly the same cut. Run id in the lake: `{{mode}}-{{as_of:%Y%m%dT%H%M%S}}`.
* Variable `screening_engine`: `connect` (default, thin clients of the engine at `screening_spark_remote`,
  default `sc://127.0.0.1:15002`) or `submit` (each stage its own `spark-submit`, master from the connection
  `screening_spark`, local when unset; the engine task then does nothing). Landing / lake / python come from
  the Variables `screening_landing`, `screening_lake`, `screening_python`.
* Every stage task uses the pool `screening_lake` (1 slot, shared with the other screening DAG): the nightly and
  the hourly DAG never write the lake at the same time. The engine task writes nothing and takes
  `default_pool`. `max_active_runs=1`.

## When it fails
* **A data-quality gate halted the run** (task `dq_feeds`/`dq_results` failed, not retried, message
  "halted by data-quality gate ..."): nothing was published. Look at the gate's numbers in the log and in
  `run_log.dq_summary`; fix the feed and clear the run from `ingest`, or, when the data is right, publish anyway
  by triggering this date with conf `{{"override_gates": ["GATE"], "override_reason": "why"}}` (same as
  `screening stage ... --override-gate GATE --reason TEXT`; the override is recorded in `run_log`). In the
  Trigger form both are optional: leave them empty for a normal run.
* **The lake is locked** (exit 75): another run is writing; the task retries by itself with backoff.
* **The engine does not answer** (task `engine` failed, or a stage's last line "engine at ... does not answer"):
  on this machine `screening engine status` says whether it runs and where its log is (state folder
  `SCREENING_ENGINE_HOME`, `.engine/` by default); `screening engine start` starts it; elsewhere start it there. Then clear the failed task. `screening_engine=submit`
  runs the stages without it.
* **Anything else** (Spark error, timeout): the task retries with exponential backoff; when retries are used up
  read the command's output in the task log, fix, and clear the failed task (its downstream tasks follow). Stages
  are idempotent for a run id, so clearing any task is safe.

## Notices
A task that fails for good (retries used up, or a gate halt) posts a `task_failed` notice; a run that fails
without a failed task (its `dagrun_timeout`) posts `run_failed`.{lateness} Each is one JSON object (DAG, Airflow
run, task, logical date, as-of, screening run id, state, reason, a link to the task's log or the run) posted to
the webhook in the Variable `screening_alert_webhook` (env `AIRFLOW_VAR_SCREENING_ALERT_WEBHOOK`); with no webhook
set the notice is only logged (logger `screening.airflow`).
"""
