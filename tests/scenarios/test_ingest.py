"""jobs.ingest: the landing contract of spec/feeds.md and the knowledge-time semantics of spec/rules.md
("Precise semantics": ties, late rows, two-event rows).

Spark/Delta is slow per operation, so one hand-made landing set is ingested once (module-scoped) and most tests
read that lake. It holds exactly one bad row per reject reason in REASONS, good rows around them, a file missing
a required column, a re-reported telecom stay, a tie on knowledge time and a two-event binding. Extra runs: a
re-run on the same landing, a re-delivery under a new name (both skip every file by hash) and one small lake
ingested with a floor (late rows).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from jobs.asof import as_of, as_of_for
from jobs.incremental import persons_as_of
from jobs.ingest.job import Ingestor
from jobs.ingest.validate import REASONS
from jobs.keys import person_key_py
from jobs.lake import Lake
from jobs.schemas import feed_spec
from tests.landing import resident_id, write_feed

# -- people and codes --------------------------------------------------------------------------------------
P1 = resident_id("11010119900101001")
P2 = resident_id("11010519850615002")
PX = resident_id("11010119900101100")  # check digit X, landed as a lowercase x
assert PX.endswith("X")
P_BAD_CHECKSUM = P1[:17] + str((int(P1[17]) + 1) % 10 if P1[17] != "X" else 0)
P_BAD_BIRTH = resident_id("11010119990230003")  # valid check digit, 1999-02-30 is no date
P_BAD_FORMAT = "1101011990010100"  # 16 digits
PHONE1, PHONE2 = "13800000001", "13900000002"


def line(feed: str, row: dict) -> str:
    """The raw text write_feed writes for `row` (no value here needs CSV quoting)."""
    return ",".join("" if row.get(c["name"]) is None else str(row[c["name"]]) for c in feed_spec(feed)["columns"])


def person(
    pid,
    name="张三",
    birth="1990-01-01",
    phone=PHONE1,
    community="110101001001",
    updated="2022-05-01T08:00:00",
):
    return dict(
        person_id=pid,
        name=name,
        birth_date=birth,
        phone=phone,
        community_code=community,
        hotel_id=None,
        hotel_county_code=None,
        updated_at=updated,
    )


def stay(
    rid,
    county="110101",
    first="2022-05-01T08:00:00",
    last="2022-05-01T10:00:00",
    reported="2022-05-01T10:05:00",
    phone=PHONE1,
):
    return dict(record_id=rid, phone=phone, county_code=county, first_seen=first, last_seen=last, reported_at=reported)


PERSONS = [  # persons/part-001.csv, line 2 onwards
    person(P1),  # 2 good
    person(PX.lower(), name="李四", birth="1990-01-01"),  # 3 good (x -> X)
    person(None, name="王五"),  # 4 missing_key
    person(resident_id("11010119900101004"), name=None),  # 5 missing_value
    person(resident_id("11010119900101005"), birth="19900101"),  # 6 bad_type
    person(P_BAD_FORMAT),  # 7 bad_id_format
    person(P_BAD_CHECKSUM),  # 8 bad_id_checksum
    person(P_BAD_BIRTH),  # 9 bad_id_birth_date
    person(resident_id("11010119900101009"), phone="23800000001"),  # 10 bad_phone
    person(resident_id("11010119900101010"), community="119999001001"),  # 11 unknown_community_code
    person(P2, name="赵六", birth="1985-06-15", phone=None, community=None),  # 12 good
]
STAYS_1 = [  # telecom_stays/part-001.csv
    stay("S1"),  # 2 good, first report of S1
    stay(
        "S2",
        county="110105",
        first="2022-05-01T09:00:00",
        last="2022-05-01T11:00:00",
        reported="2022-05-01T11:05:00",
    ),  # 3 good, tie with part-002 line 3
    stay("S3", county="119999"),  # 4 unknown_county_code
    stay(
        "S4", first="2022-05-01T12:00:00", last="2022-05-01T11:00:00", reported="2022-05-01T13:00:00"
    ),  # 5 end_before_start
    stay(
        "S5", first="2022-05-01T08:00:00", last="2022-05-01T12:00:00", reported="2022-05-01T11:00:00"
    ),  # 6 observed_after_knowledge
]
MALFORMED = "S6,13800000001,110101"  # telecom_stays/part-001.csv line 7: 3 of 6 fields
STAYS_2 = [  # telecom_stays/part-002.csv
    stay("S1", last="2022-05-01T12:00:00", reported="2022-05-01T12:05:00"),  # 2 S1 re-reported later
    stay(
        "S2",
        county="110102",
        first="2022-05-01T09:00:00",
        last="2022-05-01T11:00:00",
        reported="2022-05-01T11:05:00",
    ),  # 3 same key + time as part-001 line 3
]
BINDING = dict(person_id=P1, phone=PHONE1, bound_at="2022-05-02T09:00:00", unbound_at="2022-05-05T18:00:00")
SCAN = dict(scan_id="V1", person_id=P1, venue_id="VEN1", scan_type="checkin", scanned_at="2022-05-03T10:00:00")
SCANS = [
    SCAN,
    dict(SCAN, scan_id="V2", scan_type="walkin"),
]  # venue_scans/part-001.csv: 2 good, 3 unknown_enum
SCANS_NO_TYPE = [dict(SCAN, scan_id="V9")]  # venue_scans/part-002.csv lacks the required `scan_type` column
COMMUNITY = dict(
    community_code="110101001001",
    name="东华门社区",
    street_code="110101001",
    office_phone=None,
    updated_at="2022-04-01T08:00:00",
)
COMMUNITIES = [
    COMMUNITY,
    dict(COMMUNITY, community_code="110101001002", street_code="11010100"),
]  # 2 good, 3 bad street

# reason -> (file, line, raw row, detail) of the one row rejected for it
BAD_ROWS = {
    "malformed_row": ("telecom_stays/part-001.csv", 7, MALFORMED, "wrong number of fields or broken quoting"),
    "missing_key": ("persons/part-001.csv", 4, line("persons", PERSONS[2]), "person_id: key column is empty"),
    "missing_value": (
        "persons/part-001.csv",
        5,
        line("persons", PERSONS[3]),
        "name: required value is empty",
    ),
    "bad_type": (
        "persons/part-001.csv",
        6,
        line("persons", PERSONS[4]),
        "birth_date: not a valid date (19900101)",
    ),
    "bad_id_format": (
        "persons/part-001.csv",
        7,
        line("persons", PERSONS[5]),
        f"person_id: not 17 digits + check digit ({P_BAD_FORMAT})",
    ),
    "bad_id_checksum": (
        "persons/part-001.csv",
        8,
        line("persons", PERSONS[6]),
        f"person_id: check digit does not match ({P_BAD_CHECKSUM})",
    ),
    "bad_id_birth_date": (
        "persons/part-001.csv",
        9,
        line("persons", PERSONS[7]),
        f"person_id: digits 7-14 are not a real birth date ({P_BAD_BIRTH})",
    ),
    "bad_phone": (
        "persons/part-001.csv",
        10,
        line("persons", PERSONS[8]),
        "phone: not 11 digits starting with 1 (23800000001)",
    ),
    "unknown_county_code": (
        "telecom_stays/part-001.csv",
        4,
        line("telecom_stays", STAYS_1[2]),
        "county_code: not a real county code (119999)",
    ),
    "unknown_community_code": (
        "persons/part-001.csv",
        11,
        line("persons", PERSONS[9]),
        "community_code: not 12 digits over a real county code (119999001001)",
    ),
    "unknown_street_code": (
        "communities/part-001.csv",
        3,
        line("communities", COMMUNITIES[1]),
        "street_code: not 9 digits over a real county code (11010100)",
    ),
    "unknown_enum": (
        "venue_scans/part-001.csv",
        3,
        line("venue_scans", SCANS[1]),
        "scan_type: not one of checkin/payment (walkin)",
    ),
    "end_before_start": (
        "telecom_stays/part-001.csv",
        5,
        line("telecom_stays", STAYS_1[3]),
        "last_seen before first_seen (2022-05-01T11:00:00 < 2022-05-01T12:00:00)",
    ),
    "observed_after_knowledge": (
        "telecom_stays/part-001.csv",
        6,
        line("telecom_stays", STAYS_1[4]),
        "last_seen later than reported_at (2022-05-01T12:00:00 > 2022-05-01T11:00:00)",
    ),
}
FEEDS = ("persons", "telecom_stays", "venue_scans", "kit_bindings", "communities")
N_FILES = {"persons": 1, "telecom_stays": 2, "venue_scans": 2, "kit_bindings": 1, "communities": 1}


def quiet(*_):
    pass


def dt(s: str) -> datetime:
    return datetime.fromisoformat(s)


def build_landing(landing: Path) -> None:
    write_feed(landing, "persons", PERSONS)
    p = write_feed(landing, "telecom_stays", STAYS_1)
    with open(p, "a", encoding="utf-8", newline="") as f:
        f.write(MALFORMED + "\n")
    write_feed(landing, "telecom_stays", STAYS_2, name="part-002.csv")
    write_feed(landing, "venue_scans", SCANS)
    cols = [c["name"] for c in feed_spec("venue_scans")["columns"] if c["name"] != "scan_type"]
    write_feed(landing, "venue_scans", SCANS_NO_TYPE, name="part-002.csv", columns=cols)
    write_feed(landing, "kit_bindings", [BINDING])
    write_feed(landing, "communities", COMMUNITIES)


def snapshot(spark, lake: Lake) -> dict:
    """Delta versions and row counts of every table the landing set touches."""
    paths = {f: lake.bronze(f) for f in FEEDS} | {t: lake.gold(t) for t in ("rejects", "ingested_files")}
    return {
        name: (lake.version(spark, path), spark.read.format("delta").load(path).count()) for name, path in paths.items()
    }


@pytest.fixture(scope="module")
def env(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("ingest")
    landing, lake = root / "landing", Lake(root / "lake")
    build_landing(landing)
    reports = Ingestor(spark, lake, landing, run_id="r1", floor=None, log=quiet).run()
    rejects = [r.asDict() for r in lake.read_gold(spark, "rejects").collect()]
    bronze = {
        f: [r.asDict() for r in lake.read_bronze(spark, f).collect()]
        for f in ("persons", "telecom_stays", "venue_scans")
    }
    files = {r["file"]: r.asDict() for r in lake.read_gold(spark, "ingested_files").collect()}
    return dict(
        landing=landing,
        lake=lake,
        reports=reports,
        rejects=rejects,
        bronze=bronze,
        files=files,
        after_first=snapshot(spark, lake),
    )


@pytest.fixture(scope="module")
def rerun(spark, env):
    """A second run on the unchanged landing."""
    reports = Ingestor(spark, env["lake"], env["landing"], run_id="r2", floor=datetime(2022, 5, 10), log=quiet).run()
    return dict(reports=reports, before=env["after_first"], after=snapshot(spark, env["lake"]))


@pytest.fixture(scope="module")
def redelivered(spark, env, rerun):
    """persons/part-001.csv delivered again, byte for byte, as persons/part-007.csv."""
    shutil.copyfile(env["landing"] / "persons" / "part-001.csv", env["landing"] / "persons" / "part-007.csv")
    before = snapshot(spark, env["lake"])
    reports = Ingestor(spark, env["lake"], env["landing"], run_id="r3", floor=datetime(2022, 5, 11), log=quiet).run()
    files = sorted(r["file"] for r in env["lake"].read_gold(spark, "ingested_files").collect())
    return dict(reports=reports, before=before, after=snapshot(spark, env["lake"]), files=files)


# -- rejects ------------------------------------------------------------------------------------------------
def test_landing_set_has_exactly_one_bad_row_per_reason(env):
    assert set(BAD_ROWS) == set(REASONS)
    assert sorted(r["reason"] for r in env["rejects"]) == sorted([*REASONS, "missing_column"])
    assert {r["run_id"] for r in env["rejects"]} == {"r1"}


@pytest.mark.parametrize("reason", REASONS)
def test_bad_row_is_rejected_with_its_reason(env, reason):
    file, line_no, raw, detail = BAD_ROWS[reason]
    feed = file.split("/")[0]
    got = [r for r in env["rejects"] if r["reason"] == reason]
    assert got == [dict(feed=feed, file=file, line=line_no, raw_row=raw, reason=reason, detail=detail, run_id="r1")]


def test_file_missing_required_column_is_rejected_whole_and_others_load(env):
    header = ",".join(c["name"] for c in feed_spec("venue_scans")["columns"] if c["name"] != "scan_type")
    whole = [r for r in env["rejects"] if r["reason"] == "missing_column"]
    assert whole == [
        dict(
            feed="venue_scans",
            file="venue_scans/part-002.csv",
            line=0,
            raw_row=header,
            reason="missing_column",
            detail="missing required column(s): scan_type",
            run_id="r1",
        )
    ]
    rep = env["reports"]["venue_scans"]
    assert (rep.files, rep.skipped, rep.rows, rep.loaded, rep.rejected) == (2, 0, 2, 1, 1)
    assert rep.rejected_files == ["venue_scans/part-002.csv"]
    f = env["files"]
    assert {
        k: (f[k]["status"], f[k]["rows"], f[k]["rejected"])
        for k in ("venue_scans/part-001.csv", "venue_scans/part-002.csv")
    } == {"venue_scans/part-001.csv": ("loaded", 2, 1), "venue_scans/part-002.csv": ("rejected_file", 0, 0)}
    # nothing of the rejected file is in bronze; the other file of the feed and every other feed loaded
    assert [(r["scan_id"], r["_file"], r["_line"]) for r in env["bronze"]["venue_scans"]] == [
        ("V1", "venue_scans/part-001.csv", 2)
    ]
    assert sorted(f) == [
        "communities/part-001.csv",
        "kit_bindings/part-001.csv",
        "persons/part-001.csv",
        "telecom_stays/part-001.csv",
        "telecom_stays/part-002.csv",
        "venue_scans/part-001.csv",
        "venue_scans/part-002.csv",
    ]
    assert {k: r.files for k, r in env["reports"].items()} == N_FILES


def test_good_rows_of_a_file_with_bad_rows_are_loaded(env):
    persons = sorted((r["person_id"], r["_file"], r["_line"]) for r in env["bronze"]["persons"])
    assert persons == sorted(
        [(P1, "persons/part-001.csv", 2), (PX, "persons/part-001.csv", 3), (P2, "persons/part-001.csv", 12)]
    )
    stays = sorted((r["record_id"], r["_file"], r["_line"]) for r in env["bronze"]["telecom_stays"])
    assert stays == [
        ("S1", "telecom_stays/part-001.csv", 2),
        ("S1", "telecom_stays/part-002.csv", 2),
        ("S2", "telecom_stays/part-002.csv", 3),
    ]
    p2 = next(r for r in env["bronze"]["persons"] if r["person_id"] == P2)
    assert (
        p2["name"],
        p2["birth_date"].isoformat(),
        p2["phone"],
        p2["community_code"],
        p2["updated_at"],
        p2["_run_id"],
    ) == ("赵六", "1985-06-15", None, None, dt("2022-05-01T08:00:00"), "r1")
    rep = env["reports"]["persons"]
    assert (rep.files, rep.rows, rep.loaded, rep.rejected, rep.late) == (1, 11, 3, 8, 0)
    rep = env["reports"]["telecom_stays"]
    assert (rep.files, rep.rows, rep.loaded, rep.rejected) == (2, 8, 4, 4)
    assert (
        env["files"]["telecom_stays/part-001.csv"]["rows"],
        env["files"]["telecom_stays/part-001.csv"]["rejected"],
    ) == (6, 4)


def test_lowercase_x_check_digit_is_accepted_as_X(env):
    row = next(r for r in env["bronze"]["persons"] if r["_line"] == 3)
    assert (row["person_id"], row["name"]) == (PX, "李四")
    assert not [r for r in env["rejects"] if PX.lower() in (r["raw_row"] or "")]


# -- idempotence ----------------------------------------------------------------------------------------------
def test_reingesting_same_files_changes_nothing(rerun):
    assert rerun["after"] == rerun["before"]
    assert rerun["before"]["rejects"][1] == len(REASONS) + 1
    reports = rerun["reports"]
    assert {f: (r.files, r.skipped, r.rows, r.loaded, r.rejected) for f, r in reports.items()} == {
        f: (0, N_FILES[f], 0, 0, 0) for f in FEEDS
    }


def test_redelivered_identical_file_under_new_name_adds_nothing(redelivered):
    assert redelivered["after"] == redelivered["before"]
    rep = redelivered["reports"]["persons"]
    assert (rep.files, rep.skipped, rep.rows, rep.loaded) == (0, 2, 0, 0)
    assert "persons/part-007.csv" not in redelivered["files"]
    assert len(redelivered["files"]) == sum(N_FILES.values())


# -- knowledge time -------------------------------------------------------------------------------------------
def test_latest_knowledge_time_wins_per_key(spark, env):
    bronze = env["lake"].read_bronze(spark, "telecom_stays").where("record_id = 'S1'")
    cols = ["last_seen", "_source_known_at", "_known_at", "_file"]
    assert sorted(tuple(r[c] for c in cols) for r in bronze.collect()) == [
        (
            dt("2022-05-01T10:00:00"),
            dt("2022-05-01T10:05:00"),
            dt("2022-05-01T10:05:00"),
            "telecom_stays/part-001.csv",
        ),
        (
            dt("2022-05-01T12:00:00"),
            dt("2022-05-01T12:05:00"),
            dt("2022-05-01T12:05:00"),
            "telecom_stays/part-002.csv",
        ),
    ]
    cols = ["last_seen", "_valid_to", "_is_current"]
    after = as_of(bronze, "telecom_stays", datetime(2022, 5, 1, 13, 0)).collect()
    assert sorted(tuple(r[c] for c in cols) for r in after) == [
        (dt("2022-05-01T10:00:00"), dt("2022-05-01T12:05:00"), False),
        (dt("2022-05-01T12:00:00"), None, True),
    ]
    between = as_of(bronze, "telecom_stays", datetime(2022, 5, 1, 11, 0)).collect()
    assert [tuple(r[c] for c in cols) for r in between] == [(dt("2022-05-01T10:00:00"), None, True)]
    assert as_of(bronze, "telecom_stays", datetime(2022, 5, 1, 10, 4, 59)).count() == 0


def test_rows_of_some_phones_as_of_t_still_see_a_dwell_corrected_onto_another_phone(spark):
    """Hourly runs take the phone feeds as of T only for the affected people's phones (asof.as_of_for), without
    windowing the whole feed; a later version of a record on another phone must still end the earlier one."""
    a, b, c = "13700000001", "13700000002", "13700000003"
    rows = [
        ("D1", a, "G1", dt("2022-05-01T10:00:00"), "grid_dwells/part-001.csv", 1),
        ("D1", b, "G1", dt("2022-05-01T12:00:00"), "grid_dwells/part-002.csv", 1),  # the same dwell, another phone
        ("D2", a, "G2", dt("2022-05-01T11:00:00"), "grid_dwells/part-001.csv", 2),
        ("D3", c, "G1", dt("2022-05-01T11:00:00"), "grid_dwells/part-001.csv", 3),
        ("D4", a, "G3", dt("2022-05-01T13:00:01"), "grid_dwells/part-003.csv", 1),
    ]  # known after T
    raw = spark.createDataFrame(
        [r[:3] + (r[3], r[3]) + r[4:] for r in rows],
        "record_id string, phone string, "
        "grid_id string, _source_known_at timestamp, _known_at timestamp, _file string, _line int",
    )
    wanted = spark.createDataFrame([(a,)], "phone string")
    t = datetime(2022, 5, 1, 13, 0)
    got = as_of_for(raw, "grid_dwells", t, wanted, "phone")
    assert sorted((r["record_id"], r["phone"], r["_valid_to"], r["_is_current"]) for r in got.collect()) == [
        ("D1", a, dt("2022-05-01T12:00:00"), False),
        ("D2", a, None, True),
    ]
    assertDataFrameEqual(got, as_of(raw, "grid_dwells", t).join(wanted, "phone", "left_semi"))


def test_rows_of_some_phones_in_some_cells_as_of_t_still_see_a_dwell_corrected_out_of_the_cells(spark):
    """An hourly run takes its phones' dwells only in the cells a case phone dwelt in (incremental.restrict, as
    companion.dwells_in_case_cells): a dwell moved out of such a cell still ends its version inside it."""
    a, b = "13700000001", "13700000002"
    rows = [
        ("D1", a, "G1", dt("2022-05-01T10:00:00"), "grid_dwells/part-001.csv", 1),
        ("D1", a, "G9", dt("2022-05-01T12:00:00"), "grid_dwells/part-002.csv", 1),  # moved out of the case cell
        ("D2", a, "G9", dt("2022-05-01T11:00:00"), "grid_dwells/part-001.csv", 2),  # never in a case cell
        ("D3", a, "G2", dt("2022-05-01T11:00:00"), "grid_dwells/part-001.csv", 3),
        ("D4", b, "G1", dt("2022-05-01T11:00:00"), "grid_dwells/part-001.csv", 4),
    ]  # not a wanted phone
    raw = spark.createDataFrame(
        [r[:3] + (r[3], r[3]) + r[4:] for r in rows],
        "record_id string, phone string, "
        "grid_id string, _source_known_at timestamp, _known_at timestamp, _file string, _line int",
    )
    phones = spark.createDataFrame([(a,)], "phone string")
    cells = spark.createDataFrame([("G1",), ("G2",)], "grid_id string")
    t = datetime(2022, 5, 1, 13, 0)
    got = as_of_for(raw, "grid_dwells", t, cells, "grid_id", (phones, "phone"))
    assert sorted((r["record_id"], r["grid_id"], r["_valid_to"], r["_is_current"]) for r in got.collect()) == [
        ("D1", "G1", dt("2022-05-01T12:00:00"), False),
        ("D3", "G2", None, True),
    ]
    assertDataFrameEqual(
        got, as_of(raw, "grid_dwells", t).join(cells, "grid_id", "left_semi").join(phones, "phone", "left_semi")
    )


@pytest.mark.parametrize(("limit", "join"), [(500_000, "BroadcastHashJoin"), (0, "SortMergeJoin")])
def test_a_few_wanted_keys_are_broadcast_to_the_whole_feed_and_many_are_joined_by_sorting(
    spark, monkeypatch, limit, join
):
    """as_of_for looks its wanted phones and their record keys up in all of bronze: broadcast while they are few
    (jobs.spark.lookup), sorted and merged above the limit; the same rows either way. The planner's own size-based
    broadcast is off here, so only lookup's decision shows."""
    import jobs.spark

    monkeypatch.setattr(jobs.spark, "BROADCAST_ROWS", limit)
    a, b = "13700000001", "13700000002"
    rows = [
        ("D1", a, "G1", dt("2022-05-01T10:00:00"), "grid_dwells/part-001.csv", 1),
        ("D1", b, "G1", dt("2022-05-01T12:00:00"), "grid_dwells/part-002.csv", 1),
        ("D2", b, "G2", dt("2022-05-01T11:00:00"), "grid_dwells/part-001.csv", 2),
    ]
    raw = spark.createDataFrame(
        [r[:3] + (r[3], r[3]) + r[4:] for r in rows],
        "record_id string, phone string, "
        "grid_id string, _source_known_at timestamp, _known_at timestamp, _file string, _line int",
    )
    wanted = spark.createDataFrame([(a,), (a,)], "phone string")
    t = datetime(2022, 5, 1, 13, 0)
    before = spark.conf.get("spark.sql.autoBroadcastJoinThreshold")
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
    try:
        got = as_of_for(raw, "grid_dwells", t, wanted, "phone")
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            got.explain()  # the physical plan, on a classic session or a thin client alike
        plan = shown.getvalue()
        assert sorted((r["record_id"], r["phone"], r["_valid_to"]) for r in got.collect()) == [
            ("D1", a, dt("2022-05-01T12:00:00"))
        ]
    finally:
        spark.conf.set("spark.sql.autoBroadcastJoinThreshold", before)
    other = ({"BroadcastHashJoin", "SortMergeJoin"} - {join}).pop()
    assert join in plan and other not in plan


def test_rows_of_some_people_as_of_t_still_see_a_scan_corrected_onto_another_person(spark):
    """The same for the person feeds, taken as of T only for the affected people (incremental.persons_as_of)."""
    p1, p2 = resident_id("11010519850101001"), resident_id("11010519850101002")
    rows = [
        ("S1", p1, dt("2022-05-01T10:00:00"), "venue_scans/part-001.csv", 1),
        ("S1", p2, dt("2022-05-01T12:00:00"), "venue_scans/part-002.csv", 1),  # the same scan, another person
        ("S2", p1, dt("2022-05-01T11:00:00"), "venue_scans/part-001.csv", 2),
    ]
    raw = spark.createDataFrame(
        [r[:2] + (r[2], r[2]) + r[3:] for r in rows],
        "scan_id string, person_id string, _source_known_at timestamp, _known_at timestamp, _file string, _line int",
    )
    keys = spark.createDataFrame([(person_key_py(p1),)], "person_key string")
    got = persons_as_of(raw, "venue_scans", datetime(2022, 5, 1, 13, 0), keys).collect()
    assert sorted((r["scan_id"], r["person_id"], r["_valid_to"], r["_is_current"]) for r in got) == [
        ("S1", p1, dt("2022-05-01T12:00:00"), False),
        ("S2", p1, None, True),
    ]


def test_tie_on_knowledge_time_later_file_wins(env):
    rows = [r for r in env["bronze"]["telecom_stays"] if r["record_id"] == "S2"]
    assert [(r["county_code"], r["_file"], r["_line"], r["_source_known_at"]) for r in rows] == [
        ("110102", "telecom_stays/part-002.csv", 3, dt("2022-05-01T11:05:00"))
    ]


def test_late_row_counts_from_previous_run_as_of(spark, tmp_path):
    floor = datetime(2022, 5, 4, 0, 0)
    landing, lake = tmp_path / "landing", Lake(tmp_path / "lake")
    write_feed(landing, "venue_scans", [SCAN, dict(SCAN, scan_id="V2", scanned_at="2022-05-04T08:00:00")])
    reports = Ingestor(spark, lake, landing, run_id="late", floor=floor, log=quiet).run()
    rows = lake.read_bronze(spark, "venue_scans").collect()
    assert sorted((r["scan_id"], r["scanned_at"], r["_source_known_at"], r["_known_at"]) for r in rows) == [
        ("V1", dt("2022-05-03T10:00:00"), dt("2022-05-03T10:00:00"), floor),  # late
        ("V2", dt("2022-05-04T08:00:00"), dt("2022-05-04T08:00:00"), dt("2022-05-04T08:00:00")),
    ]
    rep = reports["venue_scans"]
    assert (rep.files, rep.loaded, rep.late) == (1, 2, 1)
    files = lake.read_gold(spark, "ingested_files").collect()
    assert [(r["file"], r["effective_floor"], r["run_id"]) for r in files] == [
        ("venue_scans/part-001.csv", floor, "late")
    ]
    # a run cut between the row's own time and the floor does not see it (what was published stays published)
    seen = as_of(lake.read_bronze(spark, "venue_scans"), "venue_scans", datetime(2022, 5, 3, 23, 59, 59)).collect()
    assert seen == []


def test_row_known_exactly_at_the_floor_is_not_late_and_one_second_before_is(spark, tmp_path):
    # both sides of the floor: ingest skips its late count (a Spark job) when no row is known before it
    floor = datetime(2022, 5, 4, 0, 0)
    at_floor = [
        dict(SCAN, scan_id="V3", scanned_at="2022-05-04T00:00:00"),
        dict(SCAN, scan_id="V4", scanned_at="2022-05-04T08:00:00"),
    ]
    before = [dict(SCAN, scan_id="V5", scanned_at="2022-05-03T23:59:59")]
    cases = (
        ("at", at_floor, 0, [("V3", floor), ("V4", dt("2022-05-04T08:00:00"))]),
        ("before", before, 1, [("V5", floor)]),
    )  # a late row counts from the floor
    for name, rows, late, known in cases:
        landing, lake = tmp_path / name / "landing", Lake(tmp_path / name / "lake")
        write_feed(landing, "venue_scans", rows)
        rep = Ingestor(spark, lake, landing, run_id=name, floor=floor, log=quiet).run()["venue_scans"]
        assert (rep.loaded, rep.late) == (len(rows), late)
        assert sorted((r["scan_id"], r["_known_at"]) for r in lake.read_bronze(spark, "venue_scans").collect()) == known


def test_header_only_file_is_registered_with_no_rows_and_leaves_bronze_untouched(spark, tmp_path):
    """Half the files of a quiet hour hold a header only: they are registered (and skipped by hash later) but
    need no bronze commit. A line of more than spaces after the header is still read, and rejected here."""
    landing, lake = tmp_path / "landing", Lake(tmp_path / "lake")
    write_feed(landing, "venue_scans", [SCAN])
    Ingestor(spark, lake, landing, run_id="r1", floor=None, log=quiet).run()
    version = lake.version(spark, lake.bronze("venue_scans"))
    blank = write_feed(landing, "venue_scans", [], name="part-002.csv")
    with open(blank, "a", encoding="utf-8", newline="") as f:
        f.write("  \r\n\n \n")  # blank lines: read_raw skips them too
    write_feed(landing, "persons", [])  # a feed whose first file is header-only
    tab = write_feed(landing, "kit_bindings", [])
    with open(tab, "a", encoding="utf-8", newline="") as f:
        f.write("\t\n")
    reports = Ingestor(spark, lake, landing, run_id="r2", floor=None, log=quiet).run()
    assert lake.version(spark, lake.bronze("venue_scans")) == version
    assert not lake.exists(lake.bronze("persons"))
    files = {
        r["file"]: (r["rows"], r["rejected"], r["status"])
        for r in lake.read_gold(spark, "ingested_files").where("run_id = 'r2'").collect()
    }
    assert files == {
        "venue_scans/part-002.csv": (0, 0, "loaded"),
        "persons/part-001.csv": (0, 0, "loaded"),
        "kit_bindings/part-001.csv": (1, 1, "loaded"),
    }
    assert [(r["file"], r["line"], r["reason"]) for r in lake.read_gold(spark, "rejects").collect()] == [
        ("kit_bindings/part-001.csv", 2, "malformed_row")
    ]
    assert [(reports[f].files, reports[f].rows, reports[f].loaded) for f in ("venue_scans", "persons")] == [
        (1, 0, 0)
    ] * 2
    again = Ingestor(spark, lake, landing, run_id="r3", floor=None, log=quiet).run()
    assert (again["venue_scans"].skipped, again["persons"].skipped, again["persons"].files) == (2, 1, 0)


def test_a_small_delivery_is_ingested_without_generated_code_and_a_large_one_with_it(spark, tmp_path, monkeypatch):
    """Compiling the generated code of ingest's plans costs more than it saves on an hour's few rows; a day's
    delivery is compiled. Either way the same rows load."""
    from jobs.ingest import job

    chosen = []
    real = job.interpreted

    def spy(spark_, on=True):
        chosen.append(on)
        return real(spark_, on)

    monkeypatch.setattr(job, "interpreted", spy)
    landing, lake = tmp_path / "landing", Lake(tmp_path / "lake")
    write_feed(landing, "venue_scans", [SCAN])
    Ingestor(spark, lake, landing, run_id="r1", floor=None, log=quiet).run()
    write_feed(landing, "persons", [person(P1)])
    # the new delivery (the persons file; the scans are known) is as large as the limit: no longer small
    monkeypatch.setattr(job, "SMALL_DELIVERY_BYTES", (landing / "persons" / "part-001.csv").stat().st_size)
    reports = Ingestor(spark, lake, landing, run_id="r2", floor=None, log=quiet).run()
    assert chosen == [True, False]
    assert (reports["venue_scans"].skipped, reports["persons"].loaded) == (1, 1)


def test_redelivery_merge_reads_only_the_days_that_can_hold_its_versions(spark, tmp_path):
    """A version matches only its own knowledge time, so the merge leaves the days of older rows unread (a file
    moved away does not fail it) and still applies a same-time redelivery, also one of an old row."""
    landing, lake = tmp_path / "landing", Lake(tmp_path / "lake")
    table = Path(lake.bronze("venue_scans"))

    def ingest(run_id, name, rows):
        write_feed(landing, "venue_scans", rows, name=name)
        Ingestor(spark, lake, landing, run_id=run_id, floor=None, log=quiet).run()

    old, new = SCAN, dict(SCAN, scan_id="V2", scanned_at="2022-05-05T09:00:00")
    ingest("r1", "part-001.csv", [old])
    [old_file] = table.glob("_known_date=2022-05-03/*.parquet")
    ingest("r2", "part-002.csv", [new])
    old_file.rename(tmp_path / "aside.parquet")
    ingest("r3", "part-003.csv", [dict(new, venue_id="VEN7")])  # would fail reading the missing file
    (tmp_path / "aside.parquet").rename(old_file)
    ingest("r4", "part-004.csv", [dict(old, venue_id="VEN8")])
    rows = lake.read_bronze(spark, "venue_scans").collect()
    assert sorted((r["scan_id"], r["venue_id"], r["_file"]) for r in rows) == [
        ("V1", "VEN8", "venue_scans/part-004.csv"),
        ("V2", "VEN7", "venue_scans/part-003.csv"),
    ]


def test_bronze_keeps_file_statistics_on_times_and_run_only_so_one_runs_rows_skip_other_runs_files(spark, tmp_path):
    """The feed checks read one run's rows: they skip the files other runs wrote (a file moved away does not fail
    the read). Identifiers get no statistics."""
    landing, lake = tmp_path / "landing", Lake(tmp_path / "lake")
    table = Path(lake.bronze("venue_scans"))
    write_feed(landing, "venue_scans", [SCAN], name="part-001.csv")
    Ingestor(spark, lake, landing, run_id="r1", floor=None, log=quiet).run()
    [r1_file] = table.glob("*/*.parquet")
    write_feed(landing, "venue_scans", [dict(SCAN, scan_id="V2")], name="part-002.csv")
    Ingestor(spark, lake, landing, run_id="r2", floor=None, log=quiet).run()

    stats = [
        json.loads(json.loads(line)["add"]["stats"])
        for log in sorted((table / "_delta_log").glob("*.json"))
        for line in log.read_text().splitlines()
        if '"add"' in line
    ]
    assert [sorted(st["minValues"]) for st in stats] == [["_known_at", "_run_id", "_source_known_at", "scanned_at"]] * 2
    r1_file.rename(tmp_path / "aside.parquet")
    rows = lake.read_bronze(spark, "venue_scans").where("_run_id = 'r2'").collect()
    assert [(r["scan_id"], r["_file"]) for r in rows] == [("V2", "venue_scans/part-002.csv")]


def test_two_event_row_end_known_at_its_own_time(spark, env):
    bronze = env["lake"].read_bronze(spark, "kit_bindings")
    cols = ["person_id", "phone", "bound_at", "unbound_at", "_known_at", "_end_known_at"]
    assert [tuple(r[c] for c in cols) for r in bronze.collect()] == [
        (
            P1,
            PHONE1,
            dt("2022-05-02T09:00:00"),
            dt("2022-05-05T18:00:00"),
            dt("2022-05-02T09:00:00"),
            dt("2022-05-05T18:00:00"),
        )
    ]
    before_start = as_of(bronze, "kit_bindings", datetime(2022, 5, 2, 8, 59, 59)).collect()
    assert before_start == []
    before_end = as_of(bronze, "kit_bindings", datetime(2022, 5, 5, 17, 59, 59)).collect()
    assert [tuple(r[c] for c in cols) for r in before_end] == [
        (P1, PHONE1, dt("2022-05-02T09:00:00"), None, dt("2022-05-02T09:00:00"), None)
    ]
    at_end = as_of(bronze, "kit_bindings", datetime(2022, 5, 5, 18, 0)).collect()
    assert [tuple(r[c] for c in cols) for r in at_end] == [
        (
            P1,
            PHONE1,
            dt("2022-05-02T09:00:00"),
            dt("2022-05-05T18:00:00"),
            dt("2022-05-02T09:00:00"),
            dt("2022-05-05T18:00:00"),
        )
    ]


def test_row_known_after_as_of_is_not_seen(spark, env):
    bronze = env["lake"].read_bronze(spark, "venue_scans")
    assert as_of(bronze, "venue_scans", datetime(2022, 5, 3, 9, 59, 59)).collect() == []
    seen = as_of(bronze, "venue_scans", datetime(2022, 5, 3, 10, 0)).collect()
    assert [(r["scan_id"], r["person_id"], r["scanned_at"], r["_is_current"]) for r in seen] == [
        ("V1", P1, dt("2022-05-03T10:00:00"), True)
    ]


def test_bronze_is_laid_out_by_the_day_its_rows_became_known(spark, tmp_path):
    landing, lake = tmp_path / "landing", Lake(tmp_path / "lake")
    write_feed(landing, "venue_scans", [SCAN, dict(SCAN, scan_id="V2", scanned_at="2022-05-05T23:30:00")])
    Ingestor(spark, lake, landing, run_id="r1", floor=None, log=quiet).run()
    table = Path(lake.bronze("venue_scans"))
    assert lake.partition_columns(spark, str(table)) == ["_known_date"]
    assert sorted(p.name for p in table.glob("_known_date=*")) == ["_known_date=2022-05-03", "_known_date=2022-05-05"]
    rows = lake.read_bronze(spark, "venue_scans").select("scan_id", "_known_date").collect()
    assert sorted((r["scan_id"], r["_known_date"].isoformat()) for r in rows) == [
        ("V1", "2022-05-03"),
        ("V2", "2022-05-05"),  # 23:30 in Beijing is still the 5th (the session's zone)
    ]


def test_a_bronze_table_from_before_the_day_layout_keeps_taking_deliveries(spark, tmp_path):
    """A lake made before `_known_date` existed: ingest merges into it without the column, and a redelivery
    still replaces its row instead of adding one."""
    landing, lake = tmp_path / "landing", Lake(tmp_path / "lake")
    write_feed(landing, "venue_scans", [SCAN], name="part-001.csv")
    Ingestor(spark, lake, landing, run_id="r1", floor=None, log=quiet).run()
    path = lake.bronze("venue_scans")
    old_layout = spark.read.format("delta").load(path).drop("_known_date")
    old_layout.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path + "-old")
    shutil.rmtree(path)
    Path(path + "-old").rename(path)
    write_feed(landing, "venue_scans", [dict(SCAN, venue_id="VEN8")], name="part-002.csv")
    write_feed(landing, "venue_scans", [dict(SCAN, scan_id="V3")], name="part-003.csv")
    Ingestor(spark, lake, landing, run_id="r2", floor=None, log=quiet).run()
    assert lake.partition_columns(spark, path) == []
    rows = lake.read_bronze(spark, "venue_scans").collect()
    assert "_known_date" not in rows[0].asDict()
    assert sorted((r["scan_id"], r["venue_id"], r["_file"]) for r in rows) == [
        ("V1", "VEN8", "venue_scans/part-002.csv"),
        ("V3", "VEN1", "venue_scans/part-003.csv"),
    ]
