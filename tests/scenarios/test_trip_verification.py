"""Scenario tests of trip verification as rules.md's "Precise semantics" (Entries) states it: which declaration is
judged for no_pre_entry_nat, a declared entry later than the declaration, and a retroactive `low` that
withdraws T, 3e and no_pre_entry_nat instead of erasing them. One small hand-made landing, its own people and
cities per story, screened at a few as-of instants as a run reads bronze; each test asserts exact reasons."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.landing import briefs_at, resident_id, screened_stories, write_feed

STORIES = (
    "later_trip",
    "boards_later",
    "boards_later_tested",
    "lifted_t",
    "lifted_nat",
    "lifted_3e",
    "kept_t",
    "two_trips",
)
P = {name: resident_id(f"11010519850202{n:03d}") for n, name in enumerate(STORIES, start=1)}
PH = {name: f"136{n:08d}" for n, name in enumerate(STORIES, start=1)}
CITY = {
    "later_trip": "1301",
    "boards_later": "1301",
    "boards_later_tested": "1301",
    "lifted_t": "1302",
    "lifted_nat": "1303",
    "kept_t": "1305",
    "two_trips": "1301",
}


def dt(s: str) -> datetime:
    return datetime.fromisoformat(s)


def starred_stay(rid, who, first="2022-05-03T08:00:00", last="2022-05-03T16:00:00", reported="2022-05-03T17:00:00"):
    return {
        "record_id": rid,
        "phone": PH[who],
        "county_code": CITY[who] + "02",
        "first_seen": first,
        "last_seen": last,
        "reported_at": reported,
    }


def declaration(did, who, declared, counties="", entered=None):
    return {
        "declaration_id": did,
        "person_id": P[who],
        "declared_at": declared,
        "counties": counties,
        "entered_beijing_at": entered,
    }


def build(landing) -> None:
    write_feed(
        landing,
        "kit_bindings",
        [{"person_id": P[n], "phone": PH[n], "bound_at": "2021-01-01T00:00:00"} for n in STORIES],
    )
    write_feed(
        landing,
        "risk_announcements",
        [
            {
                "announcement_id": f"a-{c}",
                "area_code": f"{c}02001001",
                "risk_level": "medium",
                "effective_from": "2022-05-01T00:00:00",
                "announced_at": "2022-05-01T00:00:00",
            }
            for c in ("1301", "1302", "1303", "1304", "1305")
        ]
        + [
            # retroactive lifts from May 1, announced May 7 10:00: nobody was ever at risk there
            {
                "announcement_id": f"a-{c}-low",
                "area_code": f"{c}02001001",
                "risk_level": "low",
                "effective_from": "2022-05-01T00:00:00",
                "announced_at": "2022-05-07T10:00:00",
            }
            for c in ("1302", "1303", "1304")
        ]
        + [
            # a lift from May 10 (after the stay), announced May 7: the stay stays starred
            {
                "announcement_id": "a-1305-low",
                "area_code": "130502001001",
                "risk_level": "low",
                "effective_from": "2022-05-10T00:00:00",
                "announced_at": "2022-05-07T10:00:00",
            }
        ],
    )
    write_feed(
        landing,
        "telecom_stays",
        [
            starred_stay("s-later", "later_trip"),
            starred_stay("s-board", "boards_later"),
            starred_stay("s-boardt", "boards_later_tested"),
            starred_stay("s-lift", "lifted_t"),
            starred_stay("s-liftn", "lifted_nat"),
            starred_stay("s-kept", "kept_t"),
            starred_stay("s-trip1", "two_trips"),
            starred_stay("s-trip2", "two_trips", "2022-05-08T08:00:00", "2022-05-08T16:00:00", "2022-05-08T17:00:00"),
            # back in Beijing on May 4 12:00 (an observed entry) and starred again on May 8
            {
                "record_id": "s-home",
                "phone": PH["two_trips"],
                "county_code": "110105",
                "first_seen": "2022-05-04T12:00:00",
                "last_seen": "2022-05-04T12:30:00",
                "reported_at": "2022-05-04T13:00:00",
            },
        ],
    )
    write_feed(
        landing,
        "tickets",
        [
            # an entry to Beijing before the starred stay: it fails the "after the starred presence" filter
            {
                "ticket_id": "t-before",
                "person_id": P["boards_later"],
                "mode": "train",
                "origin_county": "120101",
                "dest_county": "110105",
                "depart_at": "2022-04-28T08:00:00",
                "arrive_at": "2022-04-28T10:00:00",
                "status": "issued",
                "status_at": "2022-04-20T09:00:00",
            },
        ],
    )
    write_feed(
        landing,
        "trip_declarations",
        [
            # releases T (no entry yet: nothing else); the second declaration is for a trip to Tianjin, never starred
            declaration("td-first", "later_trip", "2022-05-04T10:00:00"),
            declaration(
                "td-tianjin", "later_trip", "2022-05-09T10:00:00", counties="120101", entered="2022-05-09T08:00:00"
            ),
            # declared on May 5 before boarding a train that arrives on May 6 20:00
            declaration("td-board", "boards_later", "2022-05-05T10:00:00", entered="2022-05-06T20:00:00"),
            declaration("td-boardt", "boards_later_tested", "2022-05-05T10:00:00", entered="2022-05-06T20:00:00"),
            declaration("td-liftn", "lifted_nat", "2022-05-05T10:00:00", entered="2022-05-04T20:00:00"),
            declaration("td-lift3e", "lifted_3e", "2022-05-05T10:00:00", counties="130402"),
            # declared on May 9 after both trips; entered May 4 12:00 (observed) after the first
            declaration("td-two", "two_trips", "2022-05-09T10:00:00"),
        ],
    )
    write_feed(
        landing,
        "nat_results",
        [  # sampled May 5 12:00 (after entry - 48 h), uploaded before the entry
            {
                "sample_id": "n-boardt",
                "person_id": P["boards_later_tested"],
                "lab_id": "lab1",
                "sampled_at": "2022-05-05T12:00:00",
                "result": "negative",
                "platform": "beijing",
                "reported_at": "2022-05-06T10:00:00",
            },
        ],
    )


@pytest.fixture(scope="module")
def at(spark, tmp_path_factory):
    reasons = screened_stories(spark, tmp_path_factory.mktemp("trip"), build, P)

    return briefs_at(reasons)


MAY6, MAY7, MAY8, MAY10 = ("2022-05-06T01:00:00", "2022-05-07T01:00:00", "2022-05-08T01:00:00", "2022-05-10T01:00:00")
T_RAISED = dt("2022-05-03T17:00:00")


def declared(city: str, at_: str) -> tuple:
    return ("T", "declaration_required", f"city={city}", "released", T_RAISED, dt(at_), "declared")


# --- which declaration is judged ---------------------------------------------------------------------------
def test_declaration_for_a_later_trip_to_a_city_never_starred_raises_no_pre_entry_nat(at):
    assert at(MAY10)["later_trip"] == [declared("1301", "2022-05-04T10:00:00")]


def test_no_pre_entry_nat_of_a_reason_raised_twice_takes_the_first_entry_after_the_presence_that_raised_it(at):
    # starred on May 3, back in Beijing on May 4 12:00 without a NAT, starred again on May 8 (the T reason still
    # open absorbs it), declared on May 9: judged against the presence that raised the reason (rules.md, Entries)
    assert at(MAY10)["two_trips"] == [
        ("4", "entry_72h", "entry=2022-05-04T12:00:00", "active", dt("2022-05-04T13:00:00"), None, None),
        ("4", "no_pre_entry_nat", "declaration=td-two", "active", dt("2022-05-09T10:00:00"), None, None),
        declared("1301", "2022-05-09T10:00:00"),
    ]


# --- a declared entry later than the declaration ---------------------------------------------------------------
def test_declared_entry_after_the_declaration_raises_no_pre_entry_nat_at_the_entry(at):
    # declared May 5 10:00 with an arrival on May 6 20:00; an earlier entry (April 28) is not after the presence
    before_entry = [
        ("4", "entry_72h", "entry=2022-04-28T10:00:00", "active", dt("2022-04-28T10:00:00"), None, None),
        declared("1301", "2022-05-05T10:00:00"),
    ]
    assert at(MAY6)["boards_later"] == before_entry
    assert at(MAY7)["boards_later"] == [
        before_entry[0],
        ("4", "no_pre_entry_nat", "declaration=td-board", "active", dt("2022-05-06T20:00:00"), None, None),
        before_entry[1],
    ]


def test_negative_nat_known_before_the_declared_entry_prevents_no_pre_entry_nat(at):
    assert at(MAY10)["boards_later_tested"] == [declared("1301", "2022-05-05T10:00:00")]


# --- a retroactive low withdraws -------------------------------------------------------------------------------
def test_retroactive_low_under_a_starred_stay_withdraws_the_declaration_prompt_when_known(at):
    active = ("T", "declaration_required", "city=1302", "active", T_RAISED, None, None)
    assert at(MAY7)["lifted_t"] == [active]  # what the run of May 7 01:00 published
    assert at(MAY10)["lifted_t"] == [
        (
            "T",
            "declaration_required",
            "city=1302",
            "released",
            T_RAISED,
            dt("2022-05-07T10:00:00"),
            "evidence_withdrawn",
        )
    ]


def test_retroactive_low_withdraws_no_pre_entry_nat_when_known(at):
    nat_active = ("4", "no_pre_entry_nat", "declaration=td-liftn", "active", dt("2022-05-05T10:00:00"), None, None)
    assert at(MAY7)["lifted_nat"] == [nat_active, declared("1303", "2022-05-05T10:00:00")]
    assert at(MAY10)["lifted_nat"] == [
        (
            "4",
            "no_pre_entry_nat",
            "declaration=td-liftn",
            "released",
            dt("2022-05-05T10:00:00"),
            dt("2022-05-07T10:00:00"),
            "evidence_withdrawn",
        ),
        declared("1303", "2022-05-05T10:00:00"),
    ]


def test_retroactive_low_withdraws_declared_risk_county_when_known(at):
    assert at(MAY7)["lifted_3e"] == [
        ("3", "declared_risk_county", "county=130402", "active", dt("2022-05-05T10:00:00"), None, None)
    ]
    assert at(MAY10)["lifted_3e"] == [
        (
            "3",
            "declared_risk_county",
            "county=130402",
            "released",
            dt("2022-05-05T10:00:00"),
            dt("2022-05-07T10:00:00"),
            "evidence_withdrawn",
        )
    ]


def test_low_effective_after_the_stay_leaves_the_declaration_prompt_standing(at):
    assert at(MAY10)["kept_t"] == [("T", "declaration_required", "city=1305", "active", T_RAISED, None, None)]
