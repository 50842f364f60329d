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
from jobs.run import EXIT_LOCKED, lake_lock, run
from tests.landing import resident_id, write_feed


def test_second_run_on_a_busy_lake_refuses_with_who_holds_it(spark, tmp_path):
    lake = Lake(tmp_path / "lake")
    said = []
    with lake_lock(lake, "nightly-20220515T010000"):
        rc = run(str(tmp_path / "landing"), str(lake.root), datetime(2022, 5, 15, 1, 10), mode="hourly", log=said.append)
    assert rc == EXIT_LOCKED
    assert said == [f"run hourly-20220515T011000 not started: lake {lake.root} is busy: nightly-20220515T010000 "
                    f"(pid {os.getpid()}) is writing it; try again when it has finished"]
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
    write_feed(landing, "persons", [
        dict(person_id=pid, name="张三", birth_date="1990-01-01", phone="13800000001", community_code="110101001001",
             updated_at="2022-05-01T08:00:00"),
        dict(person_id=pid[:17], name="坏行", birth_date="1990-01-01", updated_at="2022-05-01T08:00:00")])
    from jobs.run import ingest_only

    ingest_only(str(landing), str(tmp_path / "lake"), log=lambda *_: None)
    for d in ("bronze", "rejects"):
        mode = stat.S_IMODE((tmp_path / "lake" / d).stat().st_mode)
        assert mode == 0o700, (d, oct(mode))
