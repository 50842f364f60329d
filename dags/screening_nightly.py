"""screening_nightly: the nightly screening run at 01:00 Asia/Shanghai (Beijing time), then table maintenance."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable
from screening_common import (
    MACROS,
    NIGHTLY_RUN_TIMEOUT,
    PARAMS,
    TZ,
    default_args,
    doc,
    end_date,
    nightly_catchup,
    nightly_deadline,
    run_failure_callbacks,
    stage_tasks,
    start_date,
)

with DAG(
    dag_id="screening_nightly",
    # The Dags list shows the cron in the UI's time zone (UTC by default): the name says the local time.
    dag_display_name="Screening nightly — 01:00 Beijing time",
    description=(
        "Screens everyone as of 01:00 Beijing time (Asia/Shanghai; 17:00 UTC the day before), every night, then "
        "OPTIMIZE/VACUUM. Late notice if not done by 06:00, failed at 09:00."
    ),
    schedule=CronDataIntervalTimetable("0 1 * * *", timezone=TZ),  # 01:00 in Asia/Shanghai, not in UTC
    start_date=start_date(),
    end_date=end_date(),
    catchup=nightly_catchup(),  # missed nights run one by one, oldest first (max_active_runs=1)
    max_active_runs=1,
    dagrun_timeout=NIGHTLY_RUN_TIMEOUT,
    deadline=nightly_deadline(),
    user_defined_macros=MACROS,
    default_args=default_args(retries=3, retry_delay=timedelta(minutes=5), max_retry_delay=timedelta(hours=1)),
    params=PARAMS,
    on_failure_callback=run_failure_callbacks(),
    tags=["screening", "nightly", "spark"],
    doc_md=doc(
        "Nightly screening (01:00 Asia/Shanghai)",
        "Runs every night at 01:00 Beijing time (Asia/Shanghai; the cron `0 1 * * *` is in that time zone, 17:00 "
        "UTC the day before) and screens everyone as of that instant; nights missed while Airflow was down are "
        "caught up one by one, oldest first.",
        " → **maintain** (OPTIMIZE and VACUUM of every table, keeping the audit window for time travel)",
        " A run not done 5 hours after it was queued (06:00 Beijing time for the 01:00 run) posts "
        "`deadline_missed` and goes on; at 8 hours (09:00) `dagrun_timeout` fails it (`run_failed`, reason "
        "timed_out): clear it to finish it.",
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
