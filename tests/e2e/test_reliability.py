"""Reliability and personal-data guards that need no full run: one writer per lake, the production key
profile, file modes of the personal bronze tables."""

from __future__ import annotations

import logging
import os
import stat
from datetime import datetime

import pytest

from jobs import keys
from jobs.lake import Lake
from jobs.run import EXIT_LOCKED, run
from jobs.runlog import lake_lock
from tests.landing import resident_id, write_feed


def test_second_run_on_a_busy_lake_refuses_with_who_holds_it(spark, tmp_path):
    lake = Lake(tmp_path / "lake")
    said = []
    with lake_lock(lake, "nightly-20220515T010000"):
        rc = run(
            str(tmp_path / "landing"), str(lake.root), datetime(2022, 5, 15, 1, 10), mode="hourly", log=said.append
        )
    assert rc == EXIT_LOCKED
    assert said == [
        f"run hourly-20220515T011000 not started: lake {lake.root} is busy: nightly-20220515T010000 "
        f"(pid {os.getpid()}) is writing it; try again when it has finished"
    ]
    assert not (lake.root / "gold").exists()  # nothing was written by the refused run


def test_production_profile_refuses_to_start_without_a_real_key(monkeypatch):
    monkeypatch.setenv("SCREENING_PROFILE", "production")
    for key in (None, keys.DEV_KEY, "short-secret"):
        if key is None:
            monkeypatch.delenv("SCREENING_PII_KEY", raising=False)
        else:
            monkeypatch.setenv("SCREENING_PII_KEY", key)
        with pytest.raises(SystemExit, match="SCREENING_PROFILE=production needs SCREENING_PII_KEY"):
            keys.pii_key()
    monkeypatch.setenv("SCREENING_PII_KEY", "x" * 40)
    assert keys.pii_key() == b"x" * 40


def test_development_key_warns_loudly_once(monkeypatch, caplog):
    monkeypatch.delenv("SCREENING_PROFILE", raising=False)
    monkeypatch.delenv("SCREENING_PII_KEY", raising=False)
    monkeypatch.setattr(keys, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="screening"):
        assert keys.pii_key() == keys.DEV_KEY.encode()
        assert keys.pii_key() == keys.DEV_KEY.encode()
    mine = [r.getMessage() for r in caplog.records if r.name == "screening"]
    assert len(mine) == 1 and "PUBLIC development key" in mine[0]


def test_bronze_and_rejects_are_readable_only_by_the_pipeline_user(spark, tmp_path):
    landing = tmp_path / "landing"
    pid = resident_id("11010119900101001")
    write_feed(
        landing,
        "persons",
        [
            dict(
                person_id=pid,
                name="张三",
                birth_date="1990-01-01",
                phone="13800000001",
                community_code="110101001001",
                updated_at="2022-05-01T08:00:00",
            ),
            dict(person_id=pid[:17], name="坏行", birth_date="1990-01-01", updated_at="2022-05-01T08:00:00"),
        ],
    )
    from jobs.run import ingest_only

    ingest_only(str(landing), str(tmp_path / "lake"), log=lambda *_: None)
    for d in ("bronze", "rejects"):
        mode = stat.S_IMODE((tmp_path / "lake" / d).stat().st_mode)
        assert mode == 0o700, (d, oct(mode))


# -- two writers on one Delta table (another tool, or storage where the lake lock cannot hold) --------------
def test_merges_racing_on_one_table_are_each_applied_exactly_once(spark, tmp_path, caplog):
    from concurrent.futures import ThreadPoolExecutor

    from pyspark.sql.types import LongType, StructField, StructType

    schema = StructType([StructField("k", LongType()), StructField("v", LongType())])
    lake, path = Lake(tmp_path / "lake"), str(tmp_path / "lake" / "gold" / "t")
    lake.append(spark, path, schema, spark.createDataFrame([(k, 0) for k in range(5)], schema))

    def bump(writer: int) -> None:  # every existing row +1, and one new row of this writer
        source = spark.createDataFrame([(k, 0) for k in range(5)] + [(100 + writer, 0)], schema)
        lake.merge(spark, path, schema, source, ["k"], update_set={"v": "t.v + 1"})

    with caplog.at_level(logging.WARNING, logger="screening"), ThreadPoolExecutor(3) as pool:
        list(pool.map(bump, range(3)))
    got = sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())
    assert got == [(k, 3) for k in range(5)] + [(100, 0), (101, 0), (102, 0)]  # no update lost or doubled
    retried = [r.getMessage() for r in caplog.records if "another writer committed first" in r.getMessage()]
    assert all(m.startswith(f"merge into {path}: Concurrent") for m in retried), retried


def test_a_write_that_keeps_losing_the_commit_race_fails_with_a_clear_message():
    from delta.exceptions import ConcurrentAppendException

    from jobs.lake import committed

    tries, slept = [], []

    def write():
        tries.append(1)
        raise ConcurrentAppendException(message="Files were added to the root of the table by a concurrent update.")

    with pytest.raises(RuntimeError) as e:
        committed(write, "merge into /lake/gold/popup_reasons", attempts=3, sleep=slept.append)
    assert str(e.value) == (
        "merge into /lake/gold/popup_reasons: another writer kept committing to this table "
        "first (3 tries); nothing of this write was applied. Rerun when the other writer is "
        "done. Last conflict: ConcurrentAppendException"
    )
    assert len(tries) == 3 and slept == [1.0, 2.0]


def test_a_write_that_lost_one_race_is_redone_once():
    from delta.exceptions import ConcurrentDeleteReadException

    from jobs.lake import committed

    tries = []

    def write():
        tries.append(1)
        if len(tries) == 1:
            raise ConcurrentDeleteReadException(message="This transaction attempted to read a deleted file.")
        return "done"

    assert committed(write, "append to t", sleep=lambda _: None) == "done" and len(tries) == 2


def test_each_stage_adds_its_fields_to_the_one_run_log_row_of_its_run_and_leaves_other_runs_alone(spark, tmp_path):
    from jobs.runlog import RunContext, run_log_row, write_run_log

    lake = Lake(tmp_path / "lake")
    other = RunContext(spark, lake, "", datetime(2022, 5, 14, 1, 0), "nightly")
    write_run_log(other, status="completed", policy_version="v1")
    ctx = RunContext(spark, lake, "", datetime(2022, 5, 15, 1, 0), "nightly")
    write_run_log(ctx, rows_in='{"persons": 3}')
    write_run_log(ctx, policy_version="v2")
    later = RunContext(spark, lake, "", datetime(2022, 5, 15, 1, 0), "nightly")  # the next stage's process
    write_run_log(later, status="completed")
    rows = {r["run_id"]: r for r in lake.read_gold(spark, "run_log").collect()}
    assert sorted(rows) == ["nightly-20220514T010000", "nightly-20220515T010000"]
    got = rows["nightly-20220515T010000"]
    assert (got["status"], got["rows_in"], got["policy_version"]) == ("completed", '{"persons": 3}', "v2")
    assert (rows["nightly-20220514T010000"]["status"], rows["nightly-20220514T010000"]["policy_version"]) == (
        "completed",
        "v1",
    )
    assert run_log_row(later) == got.asDict()


def test_a_conflict_reported_by_spark_connect_is_redone_like_a_classic_one():
    from jobs.lake import committed

    class ConnectError(Exception):  # what a thin client raises: an error condition, no Delta class
        def getCondition(self):
            return "DELTA_CONCURRENT_APPEND.WITH_PARTITION_HINT"

    tries = []

    def write():
        tries.append(1)
        if len(tries) == 1:
            raise ConnectError("[DELTA_CONCURRENT_APPEND.WITH_PARTITION_HINT] Files were added ...")
        return "done"

    assert committed(write, "append to t", sleep=lambda _: None) == "done" and len(tries) == 2
    with pytest.raises(ValueError):  # anything else is not retried
        committed(lambda: (_ for _ in ()).throw(ValueError("bad")), "append to t", sleep=lambda _: None)
