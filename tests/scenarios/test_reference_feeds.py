"""The optional reference feeds `communities` and `facilities` (feeds.md): every reject reason they can produce, their
good rows in bronze, and their versions read as of T (a renamed community is named by the version known then).

One hand-made landing set, ingested once for the module: one bad row per (feed, reason), good rows around them,
a facilities file missing its required `kind` column, and a later delivery renaming a community.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from jobs.asof import as_of, current
from jobs.ingest.job import Ingestor
from jobs.lake import Lake
from jobs.schemas import feed_spec
from tests.landing import write_feed

pytestmark = pytest.mark.usefixtures("small_jobs")


def line(feed: str, row: dict) -> str:
    return ",".join("" if row.get(c["name"]) is None else str(row[c["name"]]) for c in feed_spec(feed)["columns"])


C = dict(
    community_code="110105001001",
    name="光华里社区",
    street_code="110105001",
    office_phone="13900000001",
    updated_at="2022-04-01T08:00:00",
)
COMMUNITIES = [  # communities/part-001.csv, line 2 onwards
    C,  # 2 good
    dict(C, community_code="110105001002", name="建外东里社区", office_phone=None),  # 3 good, no office phone
    dict(C, community_code=None),  # 4 missing_key
    dict(C, community_code="110105001003", name=None),  # 5 missing_value
    dict(C, community_code="110105001004", updated_at="2022-04-01"),  # 6 bad_type
    dict(C, community_code="110105001005", office_phone="010-6501234"),  # 7 bad_phone
    dict(C, community_code="119999001001"),  # 8 unknown_community_code
    dict(C, community_code="110105001006", street_code="11999900"),  # 9 unknown_street_code
]
RENAMED = [dict(C, name="光华里北社区", updated_at="2022-05-05T09:00:00")]  # communities/part-002.csv
F = dict(
    facility_id="HTL110101001",
    kind="hotel",
    name="长青大酒店(交道口店)",
    county_code="110101",
    contact_phone="13800000001",
    updated_at="2022-04-01T08:00:00",
)
FACILITIES = [  # facilities/part-001.csv
    F,  # 2 good
    dict(F, facility_id="LAB001", kind="lab", name="北京市东城区疾病预防控制中心实验室", contact_phone=None),  # 3 good
    dict(F, facility_id=None),  # 4 missing_key
    dict(F, facility_id="HTL110101002", county_code=None),  # 5 missing_value
    dict(F, facility_id="HTL110101003", updated_at="yesterday"),  # 6 bad_type
    dict(F, facility_id="HTL110101004", contact_phone="2380000000"),  # 7 bad_phone
    dict(F, facility_id="HTL119999001", county_code="119999"),  # 8 unknown_county_code
    dict(F, facility_id="CL001", kind="clinic"),  # 9 unknown_enum
]
MALFORMED = "SITE11010100101,test_site,东城区第1核酸采样点"  # facilities/part-001.csv line 10: 3 of 6 fields
NO_KIND = [dict(F, facility_id="HTL110101009")]  # facilities/part-002.csv lacks the required `kind` column

# (feed, reason) -> (file, line, raw row, detail)
BAD_ROWS = {
    ("communities", "missing_key"): (
        "communities/part-001.csv",
        4,
        line("communities", COMMUNITIES[2]),
        "community_code: key column is empty",
    ),
    ("communities", "missing_value"): (
        "communities/part-001.csv",
        5,
        line("communities", COMMUNITIES[3]),
        "name: required value is empty",
    ),
    ("communities", "bad_type"): (
        "communities/part-001.csv",
        6,
        line("communities", COMMUNITIES[4]),
        "updated_at: not a valid timestamp (2022-04-01)",
    ),
    ("communities", "bad_phone"): (
        "communities/part-001.csv",
        7,
        line("communities", COMMUNITIES[5]),
        "office_phone: not 11 digits starting with 1 (010-6501234)",
    ),
    ("communities", "unknown_community_code"): (
        "communities/part-001.csv",
        8,
        line("communities", COMMUNITIES[6]),
        "community_code: not 12 digits over a real county code (119999001001)",
    ),
    ("communities", "unknown_street_code"): (
        "communities/part-001.csv",
        9,
        line("communities", COMMUNITIES[7]),
        "street_code: not 9 digits over a real county code (11999900)",
    ),
    ("facilities", "missing_key"): (
        "facilities/part-001.csv",
        4,
        line("facilities", FACILITIES[2]),
        "facility_id: key column is empty",
    ),
    ("facilities", "missing_value"): (
        "facilities/part-001.csv",
        5,
        line("facilities", FACILITIES[3]),
        "county_code: required value is empty",
    ),
    ("facilities", "bad_type"): (
        "facilities/part-001.csv",
        6,
        line("facilities", FACILITIES[4]),
        "updated_at: not a valid timestamp (yesterday)",
    ),
    ("facilities", "bad_phone"): (
        "facilities/part-001.csv",
        7,
        line("facilities", FACILITIES[5]),
        "contact_phone: not 11 digits starting with 1 (2380000000)",
    ),
    ("facilities", "unknown_county_code"): (
        "facilities/part-001.csv",
        8,
        line("facilities", FACILITIES[6]),
        "county_code: not a real county code (119999)",
    ),
    ("facilities", "unknown_enum"): (
        "facilities/part-001.csv",
        9,
        line("facilities", FACILITIES[7]),
        "kind: not one of hotel/lab/test_site (clinic)",
    ),
    ("facilities", "malformed_row"): (
        "facilities/part-001.csv",
        10,
        MALFORMED,
        "wrong number of fields or broken quoting",
    ),
}


@pytest.fixture(scope="module")
def env(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    landing, lake = root / "landing", Lake(root / "lake")
    write_feed(landing, "communities", COMMUNITIES)
    write_feed(landing, "communities", RENAMED, name="part-002.csv")
    p = write_feed(landing, "facilities", FACILITIES)
    with open(p, "a", encoding="utf-8", newline="") as f:
        f.write(MALFORMED + "\n")
    cols = [c["name"] for c in feed_spec("facilities")["columns"] if c["name"] != "kind"]
    write_feed(landing, "facilities", NO_KIND, name="part-002.csv", columns=cols)
    reports = Ingestor(spark, lake, landing, run_id="r1", floor=None, log=lambda *_: None).run()
    return dict(lake=lake, reports=reports, rejects=[r.asDict() for r in lake.read_gold(spark, "rejects").collect()])


@pytest.mark.parametrize(("feed", "reason"), sorted(BAD_ROWS))
def test_a_bad_reference_row_is_rejected_with_its_reason(env, feed, reason):
    file, line_no, raw, detail = BAD_ROWS[(feed, reason)]
    got = [r for r in env["rejects"] if (r["feed"], r["reason"]) == (feed, reason)]
    assert got == [dict(feed=feed, file=file, line=line_no, raw_row=raw, reason=reason, detail=detail, run_id="r1")]


def test_a_facilities_file_without_the_kind_column_is_rejected_whole(env):
    whole = [(r["feed"], r["file"], r["line"], r["detail"]) for r in env["rejects"] if r["reason"] == "missing_column"]
    assert whole == [("facilities", "facilities/part-002.csv", 0, "missing required column(s): kind")]
    assert len(env["rejects"]) == len(BAD_ROWS) + 1  # nothing else is rejected


def test_good_reference_rows_reach_bronze_and_a_rename_is_a_version_read_as_of_t(spark, env):
    rep = {f: (r.files, r.rows, r.loaded, r.rejected) for f, r in env["reports"].items()}
    assert rep == {"communities": (2, 9, 3, 6), "facilities": (2, 9, 2, 7)}
    bronze = env["lake"].read_bronze(spark, "communities")

    def names(t):
        rows = current(as_of(bronze, "communities", t)).collect()
        return sorted((r["community_code"], r["name"], r["street_code"], r["office_phone"]) for r in rows)

    assert names(datetime(2022, 5, 5, 8, 59)) == [
        ("110105001001", "光华里社区", "110105001", "13900000001"),
        ("110105001002", "建外东里社区", "110105001", None),
    ]
    assert names(datetime(2022, 5, 5, 9, 0))[0] == ("110105001001", "光华里北社区", "110105001", "13900000001")
    facilities = env["lake"].read_bronze(spark, "facilities").collect()
    assert sorted((r["facility_id"], r["kind"], r["county_code"], r["contact_phone"]) for r in facilities) == [
        ("HTL110101001", "hotel", "110101", "13800000001"),
        ("LAB001", "lab", "110101", None),
    ]
