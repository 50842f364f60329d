"""Hourly runs screen only who can have changed (jobs/incremental.py): an active person is screened when a release
of theirs falls due or a row behind their reasons changed, and a correction counts with every version of its key.

One tiny lake: a nightly run at F, then corrections land and the hourly run at T goes stage by stage (each stage
its own context, as Airflow runs them). The same lake copied after F and screened by a nightly run at T is the
reference: hourly = nightly, row for row."""

from __future__ import annotations

import shutil
from datetime import datetime

import pytest

from jobs.keys import person_key_py
from jobs.lake import Lake
from jobs.run import run, run_stage
from tests.landing import dwell, resident_id, write_feed

NAMES = [
    "due",
    "idle",
    "moved_case_dwell",
    "phone_corrected",
    "own_dwell_moved",
    "coloc",
    "case_s",
    "scan_owner",
    "scan_other",
    "in_district",
    "out_county",
]
P = {n: resident_id(f"11010519870202{i:03d}") for i, n in enumerate(NAMES, 1)}
PH = {n: f"1370000{i:04d}" for i, n in enumerate(NAMES, 1)}
CA, CP, CQ = "13800000101", "13800000102", "13800000103"
F_RUN, T_RUN = datetime(2022, 5, 15, 11, 0), datetime(2022, 5, 15, 12, 0)
FIX = "2022-05-15T11:30:00"  # when the corrections with a knowledge time of their own became known


def scan(sid: str, who: str, venue: str, at: str) -> dict:
    return {"scan_id": sid, "person_id": P[who], "venue_id": venue, "scan_type": "checkin", "scanned_at": at}


def case(cid: str, reported: str, phone: str | None = None, person: str | None = None, county: str = "110105") -> dict:
    return {
        "case_id": cid,
        "phone": phone,
        "person_id": person,
        "county_code": county,
        "case_type": "local",
        "case_date": "2022-05-05",
        "reported_at": reported,
    }


def build(landing) -> None:
    """Cases in 110105 and venues in 110106: a case in Beijing makes no one who was in its district a case-county
    contact (① is for counties outside Beijing), so `in_district` is not screened when c-P is corrected."""
    write_feed(
        landing,
        "kit_bindings",
        [{"person_id": P[n], "phone": PH[n], "bound_at": "2021-01-01T00:00:00"} for n in NAMES if n != "case_s"],
    )
    write_feed(
        landing,
        "border_port_counties",
        [{"county_code": "152501", "port_name": "二连浩特", "valid_from": "2020-01-01"}],
    )
    write_feed(
        landing,
        "telecom_stays",
        [  # ⑤: `due` left 14 days before T, `idle` only 5
            {
                "record_id": "s-due",
                "phone": PH["due"],
                "county_code": "152501",
                "first_seen": "2022-05-01T08:00:00",
                "last_seen": "2022-05-01T12:00:00",
                "reported_at": "2022-05-01T13:00:00",
            },
            {
                "record_id": "s-idle",
                "phone": PH["idle"],
                "county_code": "152501",
                "first_seen": "2022-05-10T08:00:00",
                "last_seen": "2022-05-10T12:00:00",
                "reported_at": "2022-05-10T13:00:00",
            },
            {
                "record_id": "s-in",
                "phone": PH["in_district"],
                "county_code": "110105",
                "first_seen": "2022-05-09T08:00:00",
                "last_seen": "2022-05-09T12:00:00",
                "reported_at": "2022-05-09T13:00:00",
            },
            {
                "record_id": "s-out",
                "phone": PH["out_county"],
                "county_code": "130203",
                "first_seen": "2022-05-12T08:00:00",
                "last_seen": "2022-05-12T12:00:00",
                "reported_at": "2022-05-12T13:00:00",
            },
        ],
    )
    write_feed(
        landing,
        "case_reports",
        [
            case("c-A", "2022-05-08T09:00:00", phone=CA),
            case("c-P", "2022-05-08T09:00:00", phone=CP),
            case("c-S", "2022-05-06T09:00:00", person=P["case_s"]),
        ],
    )
    write_feed(
        landing,
        "grid_dwells",
        [  # each case phone 31 h in a cell; each person 30 minutes beside it
            dwell(CA, "G10", "2022-05-08T00:00:00", "2022-05-09T07:00:00", "2022-05-09T08:00:00", rid="gd-a10"),
            dwell(
                PH["moved_case_dwell"],
                "G10",
                "2022-05-08T10:00:00",
                "2022-05-08T10:30:00",
                "2022-05-08T11:00:00",
                rid="gd-m10",
            ),
            dwell(CP, "G20", "2022-05-08T00:00:00", "2022-05-09T07:00:00", "2022-05-09T08:00:00", rid="gd-p20"),
            dwell(
                PH["phone_corrected"],
                "G20",
                "2022-05-08T10:00:00",
                "2022-05-08T10:30:00",
                "2022-05-08T11:00:00",
                rid="gd-c20",
            ),
            dwell(CA, "G30", "2022-05-10T00:00:00", "2022-05-11T07:00:00", "2022-05-11T08:00:00", rid="gd-a30"),
            dwell(
                PH["own_dwell_moved"],
                "G30",
                "2022-05-10T10:00:00",
                "2022-05-10T10:30:00",
                "2022-05-10T11:00:00",
                rid="gd-o30",
            ),
        ],
    )
    write_feed(
        landing,
        "venues",
        [
            {
                "venue_id": v,
                "name": n,
                "county_code": "110106",
                "community_code": "110106001001",
                "grid_id": "G9",
                "updated_at": "2022-01-01T00:00:00",
            }
            for v, n in (("v-cafe", "咖啡馆"), ("v-tea", "茶馆"), ("v-bar", "酒吧"))
        ],
    )
    write_feed(
        landing,
        "venue_scans",
        [  # ③c: beside the case at the cafe and at the bar
            scan("sc-case", "case_s", "v-cafe", "2022-05-04T10:00:00"),
            scan("sc-col", "coloc", "v-cafe", "2022-05-04T10:20:00"),
            scan("sc-case2", "case_s", "v-bar", "2022-05-05T10:00:00"),
            scan("sc-own", "scan_owner", "v-bar", "2022-05-05T10:10:00"),
        ],
    )


def correct(landing) -> None:
    """What lands between F and T: no row of `due`, `idle`, or of anyone but `scan_other` is new."""
    write_feed(
        landing,
        "grid_dwells",
        [
            dwell(
                CA, "G11", "2022-05-08T00:00:00", "2022-05-09T07:00:00", FIX, rid="gd-a10"
            ),  # the case's dwell: another cell
            dwell(PH["own_dwell_moved"], "G31", "2022-05-10T10:00:00", "2022-05-10T10:30:00", FIX, rid="gd-o30"),
        ],  # own dwell
        name="part-002.csv",
    )
    write_feed(
        landing,
        "case_reports",
        [
            case("c-P", FIX, phone=CQ),  # the case's phone; a case where out_county was
            case("c-X", FIX, county="130203"),
        ],
        name="part-002.csv",
    )
    write_feed(
        landing,
        "venue_scans",
        [  # re-deliveries: the case's scan at another venue, a scan's person
            scan("sc-case", "case_s", "v-tea", "2022-05-04T10:00:00"),
            scan("sc-own", "scan_other", "v-bar", "2022-05-05T10:10:00"),
        ],
        name="part-002.csv",
    )


def reasons(spark, lake: Lake) -> dict[str, list[tuple]]:
    names = {person_key_py(p): n for n, p in P.items()}
    out: dict[str, list[tuple]] = {n: [] for n in NAMES}
    for r in lake.read_gold(spark, "popup_reasons").collect():
        out[names[r["person_key"]]].append(
            (
                r["reason_type"],
                r["cause"],
                r["status"],
                r["raised_at"],
                r["released_at"],
                r["release_basis"],
                r["release_eligible_at"],
                r["evidence"],
            )
        )
    return {n: sorted(v) for n, v in out.items()}


@pytest.fixture(scope="module")
def lakes(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("incremental")
    landing, hourly, nightly = root / "landing", root / "hourly", root / "nightly"
    build(landing)
    assert run(str(landing), str(hourly), F_RUN, log=lambda *_: None) == 0
    shutil.copytree(hourly, nightly)
    before = reasons(spark, Lake(hourly))
    correct(landing)
    said: list[str] = []
    for stage in ("ingest", "dq_feeds", "screen", "dq_results", "publish"):
        assert run_stage(stage, str(landing), str(hourly), T_RUN, mode="hourly", log=said.append) == 0, stage
    assert run(str(landing), str(nightly), T_RUN, log=lambda *_: None) == 0
    return before, said, reasons(spark, Lake(hourly)), reasons(spark, Lake(nightly)), hourly


def test_hourly_run_after_corrections_ends_in_the_nightly_state(lakes):
    _, _, hourly, nightly, _ = lakes
    assert hourly == nightly


def test_before_the_corrections_everyone_but_scan_other_has_one_active_reason(lakes):
    before = lakes[0]
    assert {n: [(r[0], r[2]) for r in rs] for n, rs in before.items()} == {
        "due": [("border_county", "active")],
        "idle": [("border_county", "active")],
        "moved_case_dwell": [("companion", "active")],
        "phone_corrected": [("companion", "active")],
        "own_dwell_moved": [("companion", "active")],
        "coloc": [("case_colocation", "active")],
        "case_s": [],
        "scan_owner": [("case_colocation", "active")],
        "scan_other": [],
        "in_district": [],
        "out_county": [],
    }


def test_hourly_run_screens_due_releases_and_whoever_a_correction_touched_but_not_the_idle(lakes):
    said = lakes[1]
    # everyone but `idle` and `in_district`: `due` by its release time, `out_county` by the new case in its
    # county, the rest by a corrected row (case_s scanned the venues)
    assert [x for x in said if x.startswith("hourly: ")] == [
        "hourly: 9 people to screen (changes since 2022-05-15 11:00:00)"
    ]
    assert lakes[2]["in_district"] == []


def test_a_case_outside_beijing_raises_1_for_who_was_in_its_county(lakes):
    assert [(r[0], r[1], r[2], r[3]) for r in lakes[2]["out_county"]] == [
        ("case_county", "county=130203", "active", datetime(2022, 5, 15, 11, 30))
    ]


def test_a_release_that_falls_due_is_made_without_any_new_row(lakes):
    hourly = lakes[2]
    assert [(r[2], r[4], r[5]) for r in hourly["due"]] == [("released", T_RUN, "left_14d")]
    # not screened, and not released as "no longer produced" by the publish stage, which is another context
    assert [(r[2], r[6]) for r in hourly["idle"]] == [("active", datetime(2022, 5, 24, 12, 0))]
    assert hourly["idle"] == lakes[0]["idle"]


def test_a_case_dwell_moved_to_another_cell_withdraws_the_companion_reason_of_the_old_cell(lakes):
    (r,) = lakes[2]["moved_case_dwell"]
    assert (r[1], r[2], r[4], r[5]) == ("case=c-A", "released", datetime(2022, 5, 15, 11, 30), "evidence_withdrawn")


def test_a_case_report_whose_phone_is_corrected_withdraws_the_old_phones_companions(lakes):
    (r,) = lakes[2]["phone_corrected"]
    assert (r[1], r[2], r[4], r[5]) == ("case=c-P", "released", datetime(2022, 5, 15, 11, 30), "evidence_withdrawn")


def test_own_dwell_corrected_out_of_the_case_cell_withdraws_the_companion_reason(lakes):
    (r,) = lakes[2]["own_dwell_moved"]
    assert (r[1], r[2], r[4], r[5]) == ("case=c-A", "released", datetime(2022, 5, 15, 11, 30), "evidence_withdrawn")


# A scan's knowledge time is its scan time, so its correction is a re-delivery with the same knowledge time: it
# overwrites the row in bronze (feeds.md), as if the first delivery had never been. The reasons it held are no
# longer produced and are released by the run that sees it; the new person's counts from the scan's time.
def test_a_case_scan_redelivered_at_another_venue_releases_the_colocation_there(lakes):
    (r,) = lakes[2]["coloc"]
    assert (r[1], r[2], r[4], r[5]) == ("case=c-S", "released", T_RUN, "evidence_withdrawn")


def test_a_scan_redelivered_for_another_person_moves_the_colocation_to_them(lakes):
    hourly = lakes[2]
    assert [(r[1], r[2], r[4], r[5]) for r in hourly["scan_owner"]] == [
        ("case=c-S", "released", T_RUN, "evidence_withdrawn")
    ]
    assert [(r[1], r[2], r[3]) for r in hourly["scan_other"]] == [("case=c-S", "active", datetime(2022, 5, 6, 9, 0))]


def test_bronze_writes_give_a_redelivered_rows_old_and_new_images_or_none_when_unrecorded(spark, tmp_path):
    """What ingest wrote since a version, from the change data feed; a lake whose bronze predates it: None (the
    hourly run then screens everyone)."""
    from jobs import incremental
    from jobs.ingest.job import Ingestor

    landing, lake = tmp_path / "landing", Lake(tmp_path / "lake")
    first = scan("sc-1", "coloc", "v-cafe", "2022-05-04T10:00:00")
    write_feed(landing, "venue_scans", [first])
    Ingestor(spark, lake, landing, run_id="r1", floor=None, log=lambda *_: None).run()
    v1 = lake.version(spark, lake.bronze("venue_scans"))
    write_feed(
        landing,
        "venue_scans",
        [dict(first, venue_id="v-tea"), scan("sc-2", "coloc", "v-bar", "2022-05-05T10:00:00")],
        name="part-002.csv",
    )
    Ingestor(spark, lake, landing, run_id="r2", floor=None, log=lambda *_: None).run()
    written = incremental.bronze_writes(spark, lake, {"venue_scans": v1})
    assert sorted(
        (r["_change_type"], r["scan_id"], r["venue_id"], r["_run_id"]) for r in written["venue_scans"].collect()
    ) == [
        ("insert", "sc-2", "v-bar", "r2"),
        ("update_postimage", "sc-1", "v-tea", "r2"),
        ("update_preimage", "sc-1", "v-cafe", "r1"),
    ]
    assert written["tickets"].count() == 0  # no table yet
    spark.sql(
        f"ALTER TABLE delta.`{lake.bronze('venue_scans')}` SET TBLPROPERTIES ('delta.enableChangeDataFeed' = 'false')"
    )
    v2 = lake.version(spark, lake.bronze("venue_scans"))
    spark.createDataFrame(
        lake.read_bronze(spark, "venue_scans").limit(1).collect(), lake.read_bronze(spark, "venue_scans").schema
    ).write.format("delta").mode("append").save(lake.bronze("venue_scans"))  # a write that recorded no changes
    assert incremental.bronze_writes(spark, lake, {"venue_scans": v2}) is None


def test_a_quiet_hour_screens_nobody_stages_no_reason_and_changes_no_reason(spark, lakes, tmp_path):
    from jobs.run import staged_schema

    landing, lake = lakes[4].parent / "landing", Lake(tmp_path / "hourly")
    shutil.copytree(lakes[4], lake.root)
    t = datetime(2022, 5, 15, 12, 10)  # nothing landed and nothing falls due since T_RUN
    said: list[str] = []
    assert run(str(landing), str(lake.root), t, mode="hourly", log=said.append) == 0
    assert [x for x in said if x.startswith("hourly: ")] == [
        "hourly: 0 people to screen (changes since 2022-05-15 12:00:00)"
    ]
    assert reasons(spark, lake) == lakes[2]
    # the empty frame it staged has the columns a screen stages (a full screen of the same lake, staged only)
    assert run_stage("screen", str(landing), str(lake.root), t, mode="nightly", log=lambda *_: None) == 0
    full = spark.read.format("delta").load(str(lake.root / "staging" / "nightly-20220515T121000" / "popup_reasons"))
    assert full.count() > 0
    assert sorted((f.name, f.dataType.simpleString()) for f in full.schema.fields) == sorted(
        (f.name, f.dataType.simpleString()) for f in staged_schema().fields
    )
