"""Policy versions: numbers come from policy.toml, the run uses the version in force at its as-of."""

from __future__ import annotations

from datetime import datetime

import pytest

from jobs import ROOT
from jobs.keys import person_key_py
from jobs.lake import Lake
from jobs.policy import load_versions, policy_at
from jobs.run import run
from tests.landing import resident_id, write_feed

BASE = (ROOT / "policy.toml").read_text(encoding="utf-8")
V2 = BASE.split("\n[[version]]\n", 1)[1].replace('id = "2022-01-v1"', 'id = "2022-07-16-no-popup-1"').replace(
    "effective_from = 2021-01-01T00:00:00", "effective_from = 2022-05-12T00:00:00").replace(
    'popups_enabled = ["1", "2", "3", "4", "5", "T"]', 'popups_enabled = ["2", "3", "4", "5", "T"]').replace(
    "quarantine_days = 21", "quarantine_days = 14")


def test_policy_version_in_force_at_as_of_is_used(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(BASE + "\n[[version]]\n" + V2, encoding="utf-8")
    assert policy_at(datetime(2022, 5, 11, 23, 59), path).id == "2022-01-v1"
    p2 = policy_at(datetime(2022, 5, 12), path)
    assert (p2.id, p2.quarantine_days, p2.enabled("1")) == ("2022-07-16-no-popup-1", 14, False)


def test_policy_file_holds_every_rules_md_number():
    p = load_versions()[0]
    assert (p.window_days, p.quarantine_days, p.trigger_hours, p.pre_entry_nat_hours, p.colocation_minutes) == (14, 21, 72, 48, 30)
    assert (p.companion_grid_m, p.companion_overlap_minutes, p.companion_dwell_hours, p.trip_min_stay_hours) == (800, 10, 30, 4)
    assert p.display_order == ("2", "3", "1", "5", "4", "T") and p.home_prefix == "11"
    assert len(p.drug_categories) == 4 and len(p.symptom_categories) == 11


@pytest.mark.slow
def test_switching_popup_1_off_between_two_runs_releases_active_1_reasons(spark, tmp_path, monkeypatch):
    path = tmp_path / "policy.toml"
    path.write_text(BASE + "\n[[version]]\n" + V2, encoding="utf-8")
    monkeypatch.setenv("SCREENING_POLICY", str(path))
    who = resident_id("11010519800101001")
    land = tmp_path / "landing"
    write_feed(land, "kit_bindings", [{"person_id": who, "phone": "13911112222", "bound_at": "2021-01-01T00:00:00"}])
    write_feed(land, "telecom_stays", [{"record_id": "s1", "phone": "13911112222", "county_code": "140105",
                                        "first_seen": "2022-05-08T08:00:00", "last_seen": "2022-05-08T20:00:00",
                                        "reported_at": "2022-05-08T21:00:00"}])
    write_feed(land, "case_reports", [{"case_id": "c1", "county_code": "140105", "case_type": "local",
                                       "case_date": "2022-05-08", "reported_at": "2022-05-09T08:00:00"}])
    lake = Lake(tmp_path / "lake")
    quiet = lambda *_: None  # noqa: E731
    assert run(str(land), str(lake.root), datetime(2022, 5, 10), log=quiet) == 0
    assert run(str(land), str(lake.root), datetime(2022, 5, 13), log=quiet) == 0
    rows = lake.read_gold(spark, "popup_reasons").where(f"person_key = '{person_key_py(who)}'").collect()
    assert [(r.popup_code, r.status, r.raised_at, r.released_at, r.release_basis, r.release_run_id) for r in rows] == [
        ("1", "released", datetime(2022, 5, 9, 8), datetime(2022, 5, 13), "evidence_withdrawn", "nightly-20220513T000000")]
    assert "2022-07-16-no-popup-1" in rows[0].release_detail
    log = {r.run_id: r.policy_version for r in lake.read_gold(spark, "run_log").collect()}
    assert log == {"nightly-20220510T000000": "2022-01-v1", "nightly-20220513T000000": "2022-07-16-no-popup-1"}
    released = lake.read_gold(spark, "release_list").collect()
    assert [(r.run_id, r.release_basis, r.person_green) for r in released] == [("nightly-20220513T000000", "evidence_withdrawn", True)]
