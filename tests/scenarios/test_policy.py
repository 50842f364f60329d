"""Policy versions: numbers come from policy.toml, the run uses the version in force at its as-of."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from jobs import ROOT
from jobs.keys import person_key_py
from jobs.lake import Lake
from jobs.policy import load_versions, policy_at
from jobs.run import run
from tests.landing import resident_id, write_feed

BASE = (ROOT / "policy.toml").read_text(encoding="utf-8")
V2 = (
    BASE.split("\n[[version]]\n", 1)[1]
    .replace('id = "2022-01-v1"', 'id = "2022-07-16-no-popup-1"')
    .replace("effective_from = 2021-01-01T00:00:00", "effective_from = 2022-05-12T00:00:00")
    .replace('popups_enabled = ["1", "2", "3", "4", "5", "T"]', 'popups_enabled = ["2", "3", "4", "5", "T"]')
    .replace("quarantine_days = 21", "quarantine_days = 14")
)


def test_policy_version_in_force_at_as_of_is_used(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(BASE + "\n[[version]]\n" + V2, encoding="utf-8")
    assert policy_at(datetime(2022, 5, 11, 23, 59), path).id == "2022-01-v1"
    p2 = policy_at(datetime(2022, 5, 12), path)
    assert (p2.id, p2.quarantine_days, p2.enabled("1")) == ("2022-07-16-no-popup-1", 14, False)


def test_policy_file_holds_every_rules_md_number():
    p = load_versions()[0]
    assert (p.window_days, p.quarantine_days, p.trigger_hours, p.pre_entry_nat_hours, p.colocation_minutes) == (
        14,
        21,
        72,
        48,
        30,
    )
    assert (p.companion_grid_m, p.companion_overlap_minutes, p.companion_dwell_hours, p.trip_min_stay_hours) == (
        800,
        10,
        30,
        4,
    )
    assert p.display_order == ("2", "3", "1", "5", "4", "T") and p.home_prefix == "11"
    assert len(p.drug_categories) == 4 and len(p.symptom_categories) == 11


def version(vid: str, effective: str, **changes) -> str:
    """A policy version: the base with another id, effective_from and `changes` (key = TOML value)."""
    v = (
        BASE.split("\n[[version]]\n", 1)[1]
        .replace('id = "2022-01-v1"', f'id = "{vid}"')
        .replace("effective_from = 2021-01-01T00:00:00", f"effective_from = {effective}")
    )
    for key, value in changes.items():
        line = next(x for x in v.splitlines() if x.startswith(f"{key} "))
        v = v.replace(line, f"{key} = {value}")
    return "\n[[version]]\n" + v


def one_case_county_story(land, who: str, stay_day: str = "2022-05-08") -> None:
    """One person in 140105 on `stay_day`, where a local case is reported on May 9 08:00."""
    write_feed(land, "kit_bindings", [{"person_id": who, "phone": "13911112222", "bound_at": "2021-01-01T00:00:00"}])
    write_feed(
        land,
        "telecom_stays",
        [
            {
                "record_id": "s1",
                "phone": "13911112222",
                "county_code": "140105",
                "first_seen": f"{stay_day}T08:00:00",
                "last_seen": f"{stay_day}T20:00:00",
                "reported_at": f"{stay_day}T21:00:00",
            }
        ],
    )
    write_feed(
        land,
        "case_reports",
        [
            {
                "case_id": "c1",
                "county_code": "140105",
                "case_type": "local",
                "case_date": "2022-05-08",
                "reported_at": "2022-05-09T08:00:00",
            }
        ],
    )


def reasons_of(spark, lake: Lake, who: str) -> list[tuple]:
    rows = lake.read_gold(spark, "popup_reasons").where(f"person_key = '{person_key_py(who)}'").collect()
    return sorted((r.popup_code, r.status, r.raised_at, r.released_at, r.release_basis, r.release_run_id) for r in rows)


QUIET = lambda *_: None  # noqa: E731


@pytest.mark.slow
def test_switching_popup_1_off_releases_active_1_reasons_at_the_versions_effective_from(spark, tmp_path, monkeypatch):
    path = tmp_path / "policy.toml"
    path.write_text(BASE + "\n[[version]]\n" + V2, encoding="utf-8")
    monkeypatch.setenv("SCREENING_POLICY", str(path))
    who = resident_id("11010519800101001")
    land = tmp_path / "landing"
    one_case_county_story(land, who)
    lake = Lake(tmp_path / "lake")
    assert run(str(land), str(lake.root), datetime(2022, 5, 10), log=QUIET) == 0
    assert run(str(land), str(lake.root), datetime(2022, 5, 13), log=QUIET) == 0
    # released when the version took effect (May 12 00:00), by the first run after it
    assert reasons_of(spark, lake, who) == [
        (
            "1",
            "released",
            datetime(2022, 5, 9, 8),
            datetime(2022, 5, 12),
            "evidence_withdrawn",
            "nightly-20220513T000000",
        )
    ]
    detail = lake.read_gold(spark, "popup_reasons").first().release_detail
    assert detail == "no longer produced under policy 2022-07-16-no-popup-1, in force from 2022-05-12 00:00"
    log = {r.run_id: r.policy_version for r in lake.read_gold(spark, "run_log").collect()}
    assert log == {"nightly-20220510T000000": "2022-01-v1", "nightly-20220513T000000": "2022-07-16-no-popup-1"}
    released = lake.read_gold(spark, "release_list").collect()
    assert [(r.run_id, r.release_basis, r.person_green) for r in released] == [
        ("nightly-20220513T000000", "evidence_withdrawn", True)
    ]


@pytest.mark.slow
def test_retroactive_policy_version_takes_effect_at_the_first_run_that_sees_it_and_run_log_says_so(
    spark, tmp_path, monkeypatch
):
    path = tmp_path / "policy.toml"
    path.write_text(BASE, encoding="utf-8")
    monkeypatch.setenv("SCREENING_POLICY", str(path))
    who = resident_id("11010519800101002")
    land = tmp_path / "landing"
    one_case_county_story(land, who)
    lake = Lake(tmp_path / "lake")
    assert run(str(land), str(lake.root), datetime(2022, 5, 10), log=QUIET) == 0
    # a version effective May 9 is added after the May 10 run published ① (raised May 9 08:00)
    path.write_text(
        BASE + version("2022-05-09-no-popup-1", "2022-05-09T00:00:00", popups_enabled='["2", "3", "4", "5", "T"]'),
        encoding="utf-8",
    )
    assert run(str(land), str(lake.root), datetime(2022, 5, 11), log=QUIET) == 0
    assert run(str(land), str(lake.root), datetime(2022, 5, 12), log=QUIET) == 0
    assert reasons_of(spark, lake, who) == [
        (
            "1",
            "released",
            datetime(2022, 5, 9, 8),
            datetime(2022, 5, 11),
            "evidence_withdrawn",
            "nightly-20220511T000000",
        )
    ]
    applied = {r.run_id: json.loads(r.policy_applied) for r in lake.read_gold(spark, "run_log").collect()}
    assert applied["nightly-20220511T000000"][-1] == {
        "id": "2022-05-09-no-popup-1",
        "effective_from": "2022-05-09T00:00:00",
        "applied_from": "2022-05-11T00:00:00",
        "note": "effective_from 2022-05-09 00:00 is before the last completed run's as-of 2022-05-10 00:00: applied "
        "from 2022-05-11 00:00, as published facts stand",
    }
    # later runs keep the date the first one gave it
    assert [v["applied_from"] for v in applied["nightly-20220512T000000"]] == [
        "2021-01-01T00:00:00",
        "2022-05-11T00:00:00",
    ]


@pytest.mark.slow
def test_window_shortened_releases_who_left_longer_ago_than_the_new_window_at_its_effective_from(
    spark, tmp_path, monkeypatch
):
    path = tmp_path / "policy.toml"
    path.write_text(BASE + version("2022-05-12-7d", "2022-05-12T00:00:00", window_days=7), encoding="utf-8")
    monkeypatch.setenv("SCREENING_POLICY", str(path))
    early, late = resident_id("11010519800101003"), resident_id("11010519800101004")
    land = tmp_path / "landing"
    one_case_county_story(land, early, stay_day="2022-05-02")  # 7 days later: May 9 20:00, before the switch
    write_feed(
        land,
        "kit_bindings",
        [{"person_id": late, "phone": "13911113333", "bound_at": "2021-01-01T00:00:00"}],
        name="part-002.csv",
    )
    write_feed(
        land,
        "telecom_stays",
        [
            {
                "record_id": "s2",
                "phone": "13911113333",
                "county_code": "140105",
                "first_seen": "2022-05-08T08:00:00",
                "last_seen": "2022-05-08T20:00:00",
                "reported_at": "2022-05-08T21:00:00",
            }
        ],
        name="part-002.csv",
    )
    lake = Lake(tmp_path / "lake")
    assert run(str(land), str(lake.root), datetime(2022, 5, 10), log=QUIET) == 0
    assert run(str(land), str(lake.root), datetime(2022, 5, 16), log=QUIET) == 0
    assert reasons_of(spark, lake, early) == [
        (
            "1",
            "released",
            datetime(2022, 5, 9, 8),
            datetime(2022, 5, 12),
            "evidence_withdrawn",
            "nightly-20220516T000000",
        )
    ]
    # left May 8 20:00: 7 days later is after the switch, so the shorter window releases it then, as left_14d
    assert reasons_of(spark, lake, late) == [
        ("1", "released", datetime(2022, 5, 9, 8), datetime(2022, 5, 15, 20), "left_14d", "nightly-20220516T000000")
    ]


def test_a_version_is_dated_by_its_effective_from_unless_a_completed_run_had_passed_it(tmp_path):
    from jobs.policy import applied_from, spans

    path = tmp_path / "policy.toml"
    path.write_text(
        BASE + version("v-ahead", "2022-05-12T00:00:00") + version("v-late", "2022-05-09T00:00:00"), encoding="utf-8"
    )
    # a new lake: every version from its effective_from; v-late is superseded by v-ahead on May 12
    fresh = applied_from(datetime(2022, 5, 13), {}, None, path)
    assert [(v["id"], v["applied_from"]) for v in fresh] == [
        ("2022-01-v1", datetime(2021, 1, 1)),
        ("v-late", datetime(2022, 5, 9)),
        ("v-ahead", datetime(2022, 5, 12)),
    ]
    assert [(s.policy.id, s.start, s.stop, s.next_id) for s in spans(fresh, datetime(2022, 5, 13))] == [
        ("2022-01-v1", None, datetime(2022, 5, 9), "v-late"),
        ("v-late", datetime(2022, 5, 9), datetime(2022, 5, 12), "v-ahead"),
        ("v-ahead", datetime(2022, 5, 12), None, None),
    ]
    # first seen by a run after one completed at May 10: v-late takes effect at this run's as-of (May 11) and
    # v-ahead, still ahead, at its own
    seen = applied_from(datetime(2022, 5, 11), {"2022-01-v1": datetime(2021, 1, 1)}, datetime(2022, 5, 10), path)
    assert [(v["id"], v["applied_from"], v["note"] is not None) for v in seen] == [
        ("2022-01-v1", datetime(2021, 1, 1), False),
        ("v-late", datetime(2022, 5, 11), True),
    ]
    # a later run keeps what was recorded
    later = applied_from(
        datetime(2022, 5, 13),
        {"2022-01-v1": datetime(2021, 1, 1), "v-late": datetime(2022, 5, 11)},
        datetime(2022, 5, 11),
        path,
    )
    assert [(v["id"], v["applied_from"]) for v in later] == [
        ("2022-01-v1", datetime(2021, 1, 1)),
        ("v-late", datetime(2022, 5, 11)),
        ("v-ahead", datetime(2022, 5, 12)),
    ]


def test_only_versions_within_the_rules_reach_are_evaluated_the_oldest_governing_all_before(tmp_path):
    from jobs.policy import applied_from, spans

    path = tmp_path / "policy.toml"
    path.write_text(
        BASE + version("v-may", "2022-05-01T00:00:00") + version("v-sep", "2022-09-01T00:00:00"), encoding="utf-8"
    )
    got = spans(applied_from(datetime(2022, 9, 10), {}, None, path), datetime(2022, 9, 10))
    # reach: 2 x max(14 days, 14 days, 21 + 1 days) = 44 days back, to July 28
    assert [(s.policy.id, s.start, s.stop) for s in got] == [
        ("v-may", None, datetime(2022, 9, 1)),
        ("v-sep", datetime(2022, 9, 1), None),
    ]
