"""The failure and lateness notices (dags/screening_common.py, ScreeningWebhookNotifier): a webhook receiver on
127.0.0.1 (a free port, in a thread) gets exactly the JSON an operator reads, for a failed task, a timed-out run and
a missed deadline, each invoked as Airflow invokes it. No Spark, no metadata DB: the webhook is the Variable
screening_alert_webhook given as env AIRFLOW_VAR_SCREENING_ALERT_WEBHOOK, as an operator may give it."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pendulum
import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="screening-airflow-home-"))
sys.path.insert(0, str(DAGS))
import screening_common as common  # noqa: E402  (the DAG folder is on the path only for this)

UI = "http://airflow.example:8080"
LOGS = "/srv/airflow/logs"
NIGHT = "scheduled__2022-05-14T17:00:00+00:00"  # the run that screens as of 2022-05-16 01:00 Beijing time
RUN_URL = f"{UI}/dags/screening_nightly/runs/scheduled__2022-05-14T17%3A00%3A00%2B00%3A00"


class Receiver:
    """A tiny webhook: every POST's path, content type and JSON body, answered 204."""

    def __init__(self):
        self.posts: list[dict] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(
                    {"path": self.path, "type": self.headers["Content-Type"], "json": json.loads(body.decode("utf-8"))}
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: a free one
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/screening"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def webhook(monkeypatch):
    """The receiver, set as the webhook; the Airflow UI's address and log folder as a deployment sets them."""
    for proxy in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", UI)
    monkeypatch.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", LOGS)
    with Receiver() as receiver:
        monkeypatch.setenv("AIRFLOW_VAR_SCREENING_ALERT_WEBHOOK", receiver.url)
        yield receiver


def night_run(state="running"):
    """The DAG run of the night screened as of 2022-05-16 01:00 Beijing time, as a task's context holds it."""
    return SimpleNamespace(
        dag_id="screening_nightly",
        run_id=NIGHT,
        logical_date=pendulum.datetime(2022, 5, 14, 17, tz="UTC"),
        data_interval_start=pendulum.datetime(2022, 5, 14, 17, tz="UTC"),
        data_interval_end=pendulum.datetime(2022, 5, 15, 17, tz="UTC"),
        run_after=pendulum.datetime(2022, 5, 15, 17, tz="UTC"),
        state=state,
    )


def task_context(task_id: str, try_number: int, exception: Exception) -> dict:
    """What Airflow hands a task's on_failure_callback (the parts a notice reads, and a few it does not)."""
    dag_run = night_run()
    return {
        "dag": SimpleNamespace(dag_id="screening_nightly"),
        "ti": SimpleNamespace(
            dag_id="screening_nightly",
            task_id=task_id,
            run_id=NIGHT,
            try_number=try_number,
            map_index=-1,
            state="failed",
        ),
        "task": SimpleNamespace(task_id=task_id),
        "dag_run": dag_run,
        "run_id": NIGHT,
        "logical_date": dag_run.logical_date,
        "data_interval_start": dag_run.data_interval_start,
        "data_interval_end": dag_run.data_interval_end,
        "ds": "2022-05-15",
        "params": {"override_gates": None, "override_reason": None},
        "exception": exception,
    }


def test_a_failed_task_posts_its_notice_to_the_webhook(webhook):
    from airflow.sdk.exceptions import AirflowException

    notifier = common.ScreeningWebhookNotifier("task_failed")
    error = AirflowException(
        "stage screen of run nightly-20220516T010000 failed (screening exit 1):\n"
        "engine at sc://127.0.0.1:15002 does not answer"
    )
    notifier(task_context("screen", 4, error))  # as Airflow calls an on_failure_callback

    url = f"{RUN_URL}/tasks/screen?try_number=4"
    reason = (
        "stage screen of run nightly-20220516T010000 failed (screening exit 1): "
        "engine at sc://127.0.0.1:15002 does not answer"
    )
    assert webhook.posts == [
        {
            "path": "/hooks/screening",
            "type": "application/json; charset=utf-8",
            "json": {
                "event": "task_failed",
                "dag_id": "screening_nightly",
                "run_id": "scheduled__2022-05-14T17:00:00+00:00",
                "task_id": "screen",
                "try_number": 4,
                "logical_date": "2022-05-15T01:00:00+08:00",
                "as_of": "2022-05-16T01:00:00+08:00",
                "screening_run_id": "nightly-20220516T010000",
                "state": "failed",
                "reason": reason,
                "url": url,
                "log_hint": (
                    f"the task's log (try 4): {url}; on the Airflow host {LOGS}/dag_id=screening_nightly/"
                    "run_id=scheduled__2022-05-14T17:00:00+00:00/task_id=screen/attempt=4.log"
                ),
                "text": f"screening_nightly: task screen failed (try 4), screening run nightly-20220516T010000: "
                f"{reason} {url}",
            },
        }
    ]


def test_a_timed_out_run_posts_its_notice_and_a_run_failed_by_a_task_does_not_post_twice(webhook, caplog):
    notifier = common.ScreeningWebhookNotifier("run_failed")
    # what the DAG processor hands a DAG's on_failure_callback: the run's last task instance's context and a reason
    timed_out = {**task_context("screen", 1, None), "dag_run": night_run("failed"), "reason": "timed_out"}
    del timed_out["exception"]
    with caplog.at_level(logging.INFO, logger="screening.airflow"):
        notifier(timed_out)
        notifier({**timed_out, "reason": "task_failure"})

    assert [p["json"] for p in webhook.posts] == [
        {
            "event": "run_failed",
            "dag_id": "screening_nightly",
            "run_id": "scheduled__2022-05-14T17:00:00+00:00",
            "task_id": "screen",
            "try_number": 1,
            "logical_date": "2022-05-15T01:00:00+08:00",
            "as_of": "2022-05-16T01:00:00+08:00",
            "screening_run_id": "nightly-20220516T010000",
            "state": "failed",
            "reason": "timed_out",
            "url": RUN_URL,
            "log_hint": f"the run's tasks and their logs: {RUN_URL} (the last task: screen)",
            "text": f"screening_nightly: run failed (timed_out), screening run nightly-20220516T010000 {RUN_URL}",
        }
    ]
    assert any(r.getMessage().startswith("run_failed not posted (a task failed") for r in caplog.records)


def test_the_nightly_deadline_posts_a_lateness_notice_through_airflows_callback_runner(webhook):
    """The DeadlineAlert's callback as the executor runs it (airflow.sdk's execute_callback, what a LocalExecutor
    worker calls): the notifier class is imported by its path, built with the callback's kwargs and the context the
    scheduler made (the DAG run as JSON, the deadline), then called with that context."""
    import structlog
    from airflow.sdk.execution_time.callback_supervisor import execute_callback

    alert = common.nightly_deadline()
    assert (alert.callback.path, alert.callback.kwargs) == (
        "screening_common.ScreeningWebhookNotifier",
        {"event": "deadline_missed"},
    )
    context = {  # Deadline.handle_miss: DAGRunResponse of the run, dumped as JSON, and the deadline
        "dag_run": {
            "dag_run_id": NIGHT,
            "dag_id": "screening_nightly",
            "logical_date": "2022-05-14T17:00:00Z",
            "queued_at": "2022-05-15T17:00:03.120000Z",
            "start_date": "2022-05-15T17:00:04.500000Z",
            "end_date": None,
            "data_interval_start": "2022-05-14T17:00:00Z",
            "data_interval_end": "2022-05-15T17:00:00Z",
            "run_after": "2022-05-15T17:00:00Z",
            "run_type": "scheduled",
            "state": "running",
            "conf": {},
            "dag_display_name": "Screening nightly — 01:00 Beijing time",
        },
        "deadline": {"id": "0193f3d4-5f5e-7c1a-9d0e-4b5e6f708192", "deadline_time": "2022-05-15T22:00:03.120000Z"},
    }
    ok, error = execute_callback(
        alert.callback.path,
        {**alert.callback.kwargs, "context": context},
        dag_rel_path="screening_nightly.py",
        bundle_path=str(DAGS),
        log=structlog.get_logger("test"),
    )

    assert (ok, error) == (True, None)
    assert [p["json"] for p in webhook.posts] == [
        {
            "event": "deadline_missed",
            "dag_id": "screening_nightly",
            "run_id": "scheduled__2022-05-14T17:00:00+00:00",
            "task_id": None,
            "try_number": None,
            "logical_date": "2022-05-15T01:00:00+08:00",
            "as_of": "2022-05-16T01:00:00+08:00",
            "screening_run_id": "nightly-20220516T010000",
            "state": "running",
            "reason": "not done by 2022-05-16 06:00 Beijing time",
            "url": RUN_URL,
            "log_hint": f"the run is running; its tasks and their logs: {RUN_URL}",
            "text": "screening_nightly: run not done by 2022-05-16 06:00 Beijing time (it is running), screening run "
            f"nightly-20220516T010000 {RUN_URL}",
        }
    ]


def test_without_a_webhook_the_notice_is_only_logged(monkeypatch, caplog):
    monkeypatch.delenv("AIRFLOW_VAR_SCREENING_ALERT_WEBHOOK", raising=False)
    monkeypatch.setattr(common, "post_json", lambda *a, **k: pytest.fail("posted with no webhook set"))
    with caplog.at_level(logging.INFO, logger="screening.airflow"):
        common.ScreeningWebhookNotifier("task_failed")(task_context("publish", 1, RuntimeError("boom")))
    [line] = [r.getMessage() for r in caplog.records if r.name == "screening.airflow"]
    assert line.startswith("notice (no webhook: set the Variable screening_alert_webhook to post it): ")
    assert "screening_nightly: task publish failed (try 1), screening run nightly-20220516T010000: boom" in line


def test_an_unreachable_webhook_is_logged_and_changes_nothing(monkeypatch, caplog):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_VAR_SCREENING_ALERT_WEBHOOK", f"http://user:secret@127.0.0.1:{port}/t0ken")
    with caplog.at_level(logging.INFO, logger="screening.airflow"):
        common.ScreeningWebhookNotifier("task_failed")(task_context("ingest", 2, RuntimeError("boom")))  # no raise
    [line] = [r.getMessage() for r in caplog.records if r.name == "screening.airflow"]
    assert line.startswith(f"notice task_failed NOT delivered to the webhook at 127.0.0.1:{port} (")
    assert "secret" not in line and "t0ken" not in line  # the webhook's credentials stay out of the log


def test_an_unknown_notice_is_refused_when_the_dag_is_defined():
    with pytest.raises(ValueError, match="unknown notice 'late'"):
        common.ScreeningWebhookNotifier("late")
