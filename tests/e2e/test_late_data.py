"""Late and out-of-order data (rules.md, "Precise semantics: effective knowledge time"): a row whose file is first
ingested after an earlier run's as-of already passed the row's knowledge time counts from the as-of of the last
run before the one that ingested it. Late data changes the future, never what was published.

Three nightly runs on one small hand-made landing: 05-02 01:00, then files that should have been there land,
05-03 01:00, then 05-15 01:00.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from jobs.keys import person_key_py
from jobs.lake import Lake, delta_version
from jobs.run import run
from tests.landing import resident_id, write_feed

pytestmark = pytest.mark.slow

T1, T2, T3 = datetime(2022, 5, 2, 1), datetime(2022, 5, 3, 1), datetime(2022, 5, 15, 1)
P_NAT = resident_id("11010119800101011")  # ④ antivirals; the negative NAT result is uploaded a day late
P_SCAN = resident_id("11010519850202012")  # scanned at a venue; its area is upgraded a week back, landed late
P_STAY = resident_id("11010619900303013")  # in a case county; the stay is re-reported with a later end, late
PHONE_STAY = "13900000013"
CASE_COUNTY = "130203"
COMMUNITY = "110105001001"


def dt(s: str) -> datetime:
    return datetime.fromisoformat(s)


def quiet(*_):
    pass


def on_time(landing) -> None:
    write_feed(
        landing,
        "drug_purchases",
        [
            dict(
                purchase_id="DP-L1",
                person_id=P_NAT,
                pharmacy_id="PH1",
                drug_category="antiviral",
                purchased_at="2022-05-01T09:00:00",
            )
        ],
    )
    write_feed(
        landing,
        "nat_samples",
        [dict(sample_id="S-L1", person_id=P_NAT, site_id="SITE1", lab_id="LAB1", sampled_at="2022-05-01T15:00:00")],
    )
    write_feed(
        landing,
        "venues",
        [
            dict(
                venue_id="V-L1",
                name="超市",
                county_code="110105",
                community_code=COMMUNITY,
                building_id="B1",
                grid_id="G1",
                updated_at="2022-01-01T00:00:00",
            )
        ],
    )
    write_feed(
        landing,
        "venue_scans",
        [
            dict(
                scan_id="SC-L1",
                person_id=P_SCAN,
                venue_id="V-L1",
                scan_type="checkin",
                scanned_at="2022-04-28T10:00:00",
            )
        ],
    )
    write_feed(landing, "kit_bindings", [dict(person_id=P_STAY, phone=PHONE_STAY, bound_at="2021-01-01T00:00:00")])
    write_feed(
        landing,
        "case_reports",
        [
            dict(
                case_id="C-L1",
                person_id=resident_id("13020319700101099"),
                phone="13800000099",
                county_code=CASE_COUNTY,
                case_type="local",
                case_date="2022-05-01",
                reported_at="2022-05-01T12:00:00",
            )
        ],
    )
    write_feed(
        landing,
        "telecom_stays",
        [
            dict(
                record_id="R-L1",
                phone=PHONE_STAY,
                county_code=CASE_COUNTY,
                first_seen="2022-04-30T08:00:00",
                last_seen="2022-04-30T10:00:00",
                reported_at="2022-04-30T11:00:00",
            )
        ],
    )


def late(landing) -> None:
    """Rows known before T1 whose files land only after the T1 run."""
    write_feed(
        landing,
        "nat_results",
        [
            dict(
                sample_id="S-L1",
                person_id=P_NAT,
                lab_id="LAB1",
                sampled_at="2022-05-01T15:00:00",
                result="negative",
                platform="beijing",
                reported_at="2022-05-01T20:00:00",
            )
        ],
        name="late.csv",
    )
    write_feed(
        landing,
        "risk_announcements",
        [
            dict(
                announcement_id="RA-L1",
                area_code=COMMUNITY,
                risk_level="medium",
                effective_from="2022-04-25T00:00:00",
                announced_at="2022-05-01T12:00:00",
            )
        ],
        name="late.csv",
    )
    write_feed(
        landing,
        "telecom_stays",
        [  # the open stay re-reported: it went on until 20:00
            dict(
                record_id="R-L1",
                phone=PHONE_STAY,
                county_code=CASE_COUNTY,
                first_seen="2022-04-30T08:00:00",
                last_seen="2022-04-30T20:00:00",
                reported_at="2022-04-30T21:00:00",
            )
        ],
        name="late.csv",
    )


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("late")
    landing, lake = root / "landing", Lake(root / "lake")
    on_time(landing)
    snaps = {}

    def snap(name):
        return [r.asDict() for r in lake.read_gold(spark, name).collect()]

    assert run(str(landing), str(lake.root), T1, log=quiet) == 0
    snaps["t1_reasons"] = snap("popup_reasons")
    snaps["t1_version"] = delta_version(lake.gold("popup_reasons"))
    late(landing)
    assert run(str(landing), str(lake.root), T2, log=quiet) == 0
    snaps["t2_reasons"] = snap("popup_reasons")
    assert run(str(landing), str(lake.root), T3, log=quiet) == 0
    for name in ("popup_reasons", "assignment_list", "release_list", "run_log"):
        snaps[name] = snap(name)
    snaps["lake"] = lake
    return snaps


def reasons(rows, pid):
    key = person_key_py(pid)
    return sorted(
        (
            r["popup_code"],
            r["reason_type"],
            r["cause"],
            r["status"],
            r["raised_at"],
            r["released_at"],
            r["release_basis"],
        )
        for r in rows
        if r["person_key"] == key
    )


def test_nat_result_uploaded_a_day_late_releases_4_from_the_previous_runs_as_of(runs):
    assert reasons(runs["t1_reasons"], P_NAT) == [
        ("4", "drug_purchase", "purchase=DP-L1", "active", dt("2022-05-01T09:00:00"), None, None)
    ]
    # known (reported) at 05-01 20:00, but the T1 run could not see it: it counts from T1, not from 20:00
    assert reasons(runs["t2_reasons"], P_NAT) == [
        ("4", "drug_purchase", "purchase=DP-L1", "released", dt("2022-05-01T09:00:00"), T1, "nat_negative")
    ]
    rel = [(r["run_id"], r["released_at"]) for r in runs["release_list"] if r["person_key"] == person_key_py(P_NAT)]
    assert rel == [("nightly-20220503T010000", T1)]


def test_announcement_effective_a_week_back_landed_late_raises_3_at_the_previous_runs_as_of(runs):
    assert reasons(runs["t1_reasons"], P_SCAN) == []
    (r,) = [r for r in runs["t2_reasons"] if r["person_key"] == person_key_py(P_SCAN)]
    assert (r["popup_code"], r["reason_type"], r["status"], r["raised_at"]) == ("3", "risk_area_visit", "active", T1)
    (item,) = json.loads(r["evidence"])["items"]
    assert (item["record_id"], item["announcement_id"], item["retroactive"]) == ("SC-L1", "RA-L1", True)
    assign = [
        (a["run_id"], a["raised_at"]) for a in runs["assignment_list"] if a["person_key"] == person_key_py(P_SCAN)
    ]
    assert assign == [("nightly-20220503T010000", T1)]


def test_stay_re_reported_with_a_later_end_moves_the_release_of_1_and_keeps_the_reason(runs):
    first = [r for r in runs["t1_reasons"] if r["person_key"] == person_key_py(P_STAY) and r["popup_code"] == "1"]
    assert [(r["status"], r["raised_at"], r["release_eligible_at"]) for r in first] == [
        ("active", dt("2022-05-01T12:00:00"), dt("2022-05-14T10:00:00"))
    ]
    second = [r for r in runs["t2_reasons"] if r["person_key"] == person_key_py(P_STAY) and r["popup_code"] == "1"]
    # the same reason (same key, same raised_at), now released 14 days after the later end
    assert [(r["reason_key"], r["status"], r["raised_at"], r["release_eligible_at"]) for r in second] == [
        (first[0]["reason_key"], "active", dt("2022-05-01T12:00:00"), dt("2022-05-14T20:00:00"))
    ]
    assert reasons(runs["popup_reasons"], P_STAY) == [
        (
            "1",
            "case_county",
            f"county={CASE_COUNTY}",
            "released",
            dt("2022-05-01T12:00:00"),
            dt("2022-05-14T20:00:00"),
            "left_14d",
        )
    ]


def test_late_rows_are_counted_and_published_lists_are_never_rewritten(runs):
    logs = {r["run_id"]: r for r in runs["run_log"]}
    assert json.loads(logs["nightly-20220503T010000"]["dq_summary"])["late_rows"] == 3
    assert json.loads(logs["nightly-20220502T010000"]["dq_summary"]).get("late_rows", 0) == 0
    # what T1 published stays as it was: its assignments are still there, unchanged, and nothing of T1 was released
    t1 = sorted((r["person_key"], r["reason_key"], r["raised_at"]) for r in runs["t1_reasons"])
    assert (
        sorted(
            (a["person_key"], a["reason_key"], a["raised_at"])
            for a in runs["assignment_list"]
            if a["run_id"] == "nightly-20220502T010000"
        )
        == t1
    )
    assert [r for r in runs["release_list"] if r["run_id"] == "nightly-20220502T010000"] == []


def test_explain_and_sql_of_a_past_run_show_what_the_tables_said_then(spark, runs):
    from jobs.explain import gather
    from jobs.sql import run_sql

    lake = runs["lake"]

    def stay(at):  # the ① reason of the re-reported stay, as `screening explain --as-of` shows it
        return [
            (r["status"], r["release_eligible_at"], r["released_at"])
            for r in gather(spark, lake, P_STAY, at=at)["reasons"]
            if r["popup_code"] == "1"
        ]

    assert stay(T1) == [("active", dt("2022-05-14T10:00:00"), None)]  # before the re-report landed
    assert stay(T2) == [("active", dt("2022-05-14T20:00:00"), None)]
    assert stay(None) == [("released", None, dt("2022-05-14T20:00:00"))]  # a due time only while active
    # `screening sql --as-of-version popup_reasons=N`, N the version the T1 run left: what T1 published, row for row
    then = run_sql(spark, lake, "SELECT * FROM popup_reasons", versions={"popup_reasons": runs["t1_version"]})
    order = lambda r: (r["person_key"], r["reason_key"])  # noqa: E731
    assert sorted((r.asDict() for r in then.collect()), key=order) == sorted(runs["t1_reasons"], key=order)
