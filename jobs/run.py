"""A screening run end to end: ingest → screen at as-of → publish gold tables → run_log.

This is the thin I/O layer around the pure jobs; the Airflow DAGs call the same functions.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

from pyspark.sql import functions as F

from jobs import schemas
from jobs.ingest.job import Ingestor
from jobs.lake import Lake
from jobs.spark import get_spark


def last_completed_as_of(spark, lake: Lake) -> datetime | None:
    runs = lake.read_gold(spark, "run_log").where(F.col("status") == "completed")
    row = runs.orderBy(F.col("finished_at").desc()).select("as_of").first()
    return row["as_of"] if row else None


def print_ingest(reports, log=print) -> None:
    log(f"{'feed':<22}{'files':>6}{'skipped':>8}{'rows':>9}{'loaded':>9}{'rejected':>9}{'late':>6}")
    for feed, r in sorted(reports.items()):
        log(f"{feed:<22}{r.files:>6}{r.skipped:>8}{r.rows:>9}{r.loaded:>9}{r.rejected:>9}{r.late:>6}")
    tot = [sum(getattr(r, k) for r in reports.values()) for k in ("files", "skipped", "rows", "loaded", "rejected", "late")]
    log(f"{'total':<22}" + "".join(f"{v:>{w}}" for v, w in zip(tot, (6, 8, 9, 9, 9, 6), strict=True)))


def ingest_only(landing: str, lake_dir: str, log=print) -> dict:
    spark = get_spark("screening-ingest")
    lake = Lake(lake_dir)
    floor = last_completed_as_of(spark, lake)
    run_id = "ingest-" + time.strftime("%Y%m%dT%H%M%S")  # operational id only; results never depend on it
    reports = Ingestor(spark, lake, landing, run_id, floor, log=log).run()
    print_ingest(reports, log)
    log(f"rejects: {lake.gold('rejects')}  bronze: {lake.root / 'bronze'}")
    return reports


def run(landing: str, lake_dir: str, as_of: datetime, mode: str = "nightly", log=print) -> int:
    from jobs.screen import screen_and_publish

    spark = get_spark(f"screening-{mode}")
    lake = Lake(lake_dir)
    run_id = f"{mode}-{as_of:%Y%m%dT%H%M%S}"
    started = datetime.now()
    floor = last_completed_as_of(spark, lake)
    log(f"run {run_id}: ingesting {landing}")
    reports = Ingestor(spark, lake, landing, run_id, floor, log=log).run()
    print_ingest(reports, log)
    result = screen_and_publish(spark, lake, as_of, run_id, mode, log=log)
    row = {
        "run_id": run_id, "mode": mode, "as_of": as_of, "started_at": started, "finished_at": datetime.now(),
        "status": "completed", "policy_version": result["policy_version"],
        "input_versions": json.dumps({f: lake.version(spark, lake.bronze(f)) for f in schemas.FEEDS}),
        "rows_in": json.dumps({f: r.loaded for f, r in reports.items()}),
        "rows_rejected": json.dumps({f: r.rejected for f, r in reports.items()}),
        "rows_out": json.dumps(result["rows_out"]),
        "dq_summary": json.dumps({"late_rows": sum(r.late for r in reports.values())}),
    }
    lake.merge(spark, lake.gold("run_log"), schemas.gold_schema("run_log"),
               spark.createDataFrame([row], schemas.gold_schema("run_log")), ["run_id"])
    return 0
