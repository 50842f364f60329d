"""screening_nightly: the nightly screening run at 01:00 Asia/Shanghai, then table maintenance."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable
from screening_common import (
    MACROS,
    PARAMS,
    TZ,
    default_args,
    doc,
    end_date,
    log_run_failure,
    nightly_catchup,
    stage_tasks,
    start_date,
)

with DAG(
    dag_id="screening_nightly",
    schedule=CronDataIntervalTimetable("0 1 * * *", timezone=TZ),
    start_date=start_date(),
    end_date=end_date(),
    catchup=nightly_catchup(),  # missed nights run one by one, oldest first (max_active_runs=1)
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=8),
    user_defined_macros=MACROS,
    default_args=default_args(retries=3, retry_delay=timedelta(minutes=5), max_retry_delay=timedelta(hours=1)),
    params=PARAMS,
    on_failure_callback=log_run_failure,
    tags=["screening", "nightly", "spark"],
    doc_md=doc(
        "Nightly screening (01:00 Asia/Shanghai)",
        "Runs every night at 01:00 local time and screens everyone as of that instant; nights missed while "
        "Airflow was down are caught up one by one, oldest first.",
        " → **maintain** (OPTIMIZE and VACUUM of every table, keeping the audit window for time travel)",
    ),
):
    stage_tasks(
        "nightly",
        {
            "ingest": timedelta(hours=1),
            "dq_feeds": timedelta(minutes=30),
            "screen": timedelta(hours=2),
            "dq_results": timedelta(minutes=30),
            "publish": timedelta(hours=1),
            "maintain": timedelta(hours=1, minutes=30),
        },
    )
