"""screening_hourly: an hourly screening run at :10 past every hour (Asia/Shanghai, Beijing time), no maintenance."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable
from screening_common import (
    HOURLY_RUN_TIMEOUT,
    MACROS,
    PARAMS,
    TZ,
    default_args,
    doc,
    end_date,
    run_failure_callbacks,
    stage_tasks,
    start_date,
)

with DAG(
    dag_id="screening_hourly",
    # The Dags list shows the cron in the UI's time zone (UTC by default): the name says the local time.
    dag_display_name="Screening hourly — :10 past every hour, Beijing time",
    description=(
        "Screens everyone at 10 past every hour, Beijing time (Asia/Shanghai), taking in what landed since the last "
        "run; no catch-up, no maintenance. Failed after 2 hours."
    ),
    schedule=CronDataIntervalTimetable("10 * * * *", timezone=TZ),  # :10 in Asia/Shanghai
    start_date=start_date(),
    end_date=end_date(),
    catchup=False,  # each run takes in everything new since the last one: a missed hour needs no run of its own
    max_active_runs=1,
    dagrun_timeout=HOURLY_RUN_TIMEOUT,
    user_defined_macros=MACROS,
    default_args=default_args(retries=2, retry_delay=timedelta(minutes=2), max_retry_delay=timedelta(minutes=15)),
    params=PARAMS,
    on_failure_callback=run_failure_callbacks(),
    tags=["screening", "hourly", "spark"],
    doc_md=doc(
        "Hourly screening (every hour at :10, Asia/Shanghai)",
        "Runs at 10 past every hour, Beijing time (Asia/Shanghai), and screens everyone as of that instant, so new "
        "assignments and releases reach the lists within the hour. A missed hour is not caught up: the next run "
        "takes in everything that landed meanwhile. Table maintenance is the nightly DAG's.",
        lateness=" A run still going after 2 hours (`dagrun_timeout`) is failed (`run_failed`, reason timed_out); "
        "the next hour's run takes in everything new.",
    ),
):
    stage_tasks(
        "hourly",
        {
            "ingest": timedelta(minutes=20),
            "dq_feeds": timedelta(minutes=10),
            "screen": timedelta(minutes=30),
            "dq_results": timedelta(minutes=10),
            "publish": timedelta(minutes=20),
        },
    )
