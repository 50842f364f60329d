"""Nightly table maintenance (jobs/maintenance.py): compaction, VACUUM, and time travel kept for the audit window."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

from jobs import maintenance
from jobs.lake import Lake


def history(spark, path: str) -> list[str]:
    return [r["operation"] for r in spark.sql(f"DESCRIBE HISTORY delta.`{path}`").orderBy("version").collect()]


def test_maintenance_compacts_and_vacuums_only_where_it_can_change_something(spark, tmp_path):
    lake = Lake(tmp_path / "lake")
    path = lake.gold("assignment_list")
    for i in range(3):  # three nightly appends: three small files
        spark.createDataFrame([(i, f"run-{i}")], "n int, run_id string").write.format("delta").mode("append").save(path)
    staging = str(lake.root / "staging" / "run-x" / "reasons")
    spark.createDataFrame([(1,)], "n int").write.format("delta").save(staging)
    small = sorted(Path(path).glob("*.parquet"))

    versions = maintenance.run(spark, lake, SimpleNamespace(audit_window_days=30), log=lambda *_: None)

    assert list(versions) == [path]  # every table of the lake, never a run's staging
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()
    assert detail["numFiles"] == 1
    assert {
        k: detail["properties"][k] for k in ("delta.logRetentionDuration", "delta.deletedFileRetentionDuration")
    } == {"delta.logRetentionDuration": "interval 30 days", "delta.deletedFileRetentionDuration": "interval 30 days"}
    # every file is younger than the window, so VACUUM could delete nothing: it is not run
    assert history(spark, path)[3:] == ["SET TBLPROPERTIES", "OPTIMIZE"]

    # the next night the compacted file was last modified 31 days ago: VACUUM runs (nothing is left to compact, the
    # properties are right). It keeps that file, which the table still reads, and the files it replaced, which
    # are younger than the window: every earlier version still reads
    (compacted,) = set(Path(path).glob("*.parquet")) - set(small)
    old = time.time() - 31 * 86400
    os.utime(compacted, (old, old))
    maintenance.run(spark, lake, SimpleNamespace(audit_window_days=30), log=lambda *_: None)
    assert history(spark, path)[5:] == ["VACUUM START", "VACUUM END"]
    assert sorted(Path(path).glob("*.parquet")) == sorted([*small, compacted])
    for v in range(3):
        rows = spark.read.format("delta").option("versionAsOf", v).load(path).orderBy("n").collect()
        assert [r["n"] for r in rows] == list(range(v + 1))


def test_vacuum_removes_only_files_older_than_the_audit_window(spark, tmp_path):
    lake = Lake(tmp_path / "lake")
    path = lake.gold("run_log")
    spark.createDataFrame([(1,)], "n int").write.format("delta").save(path)
    spark.createDataFrame([(2,)], "n int").write.format("delta").mode("overwrite").save(path)
    maintenance.run(spark, lake, SimpleNamespace(audit_window_days=0), log=lambda *_: None)
    # a window of 0 days lets VACUUM drop the overwritten file: version 0 no longer reads
    files = sorted(p.name for p in (lake.root / "gold" / "run_log").glob("*.parquet"))
    assert len(files) == 1
    assert [r["n"] for r in spark.read.format("delta").load(path).collect()] == [2]
