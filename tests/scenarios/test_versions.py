"""Scenario tests of records that come in versions or twice: re-reported open stays, corrected case reports and
announcements, refunded tickets, a NAT result on both platforms, a phone both bound and registered to its owner,
a lift inside a stay, and ① holds that end at one instant (rules.md, "A person's state", "Precise semantics").
One small hand-made landing, its own people and places per story, screened at a few as-of instants as a run
reads bronze. Each test asserts the exact reasons of its people."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.landing import briefs_at, resident_id, screened_stories, write_feed

STORIES = (
    "lift_span",
    "lift_cleared",
    "case_person",
    "colocated",
    "scanned",
    "county_visitor",
    "two_stays",
    "two_links_short",
    "two_links_long",
    "open_stay",
    "reentry",
    "two_tickets",
    "declared_early",
    "nat_twice",
)
P = {name: resident_id(f"11010519800101{n:03d}") for n, name in enumerate(STORIES, start=1)}
PH = {name: f"137{n:08d}" for n, name in enumerate(STORIES, start=1)}
OUT = "310101"  # 黄浦区, Shanghai: outside the home region


def dt(s: str) -> datetime:
    return datetime.fromisoformat(s)


def stay(rid, who, county, first, last, reported):
    return {
        "record_id": rid,
        "phone": PH[who],
        "county_code": county,
        "first_seen": first,
        "last_seen": last,
        "reported_at": reported,
    }


def ticket(tid, who, depart, arrive, status, status_at):
    return {
        "ticket_id": tid,
        "person_id": P[who],
        "mode": "train",
        "origin_county": OUT,
        "dest_county": "110105",
        "depart_at": depart,
        "arrive_at": arrive,
        "status": status,
        "status_at": status_at,
    }


def case(cid, county, case_type, reported, person=None, case_date="2022-05-02"):
    return {
        "case_id": cid,
        "person_id": person,
        "county_code": county,
        "case_type": case_type,
        "case_date": case_date,
        "reported_at": reported,
    }


def announcement(aid, area, level, effective, announced):
    return {
        "announcement_id": aid,
        "area_code": area,
        "risk_level": level,
        "effective_from": effective,
        "announced_at": announced,
    }


def build(landing) -> None:
    write_feed(
        landing,
        "kit_bindings",
        [{"person_id": P[n], "phone": PH[n], "bound_at": "2021-01-01T00:00:00"} for n in STORIES],
    )
    # the usual case: a person's own phone is also registered to their ID
    write_feed(
        landing,
        "phone_registrations",
        [
            {"phone": PH[n], "person_id": P[n], "registered_at": "2020-01-01T00:00:00"}
            for n in ("two_links_short", "two_links_long")
        ],
    )
    write_feed(
        landing,
        "telecom_stays",
        [
            # 3b in 110108, high from May 1, lifted May 3: a stay May 2-20 known only on May 20; a stay May 2-4
            stay("s-span", "lift_span", "110108", "2022-05-02T00:00:00", "2022-05-20T00:00:00", "2022-05-20T00:00:00"),
            stay(
                "s-liftc", "lift_cleared", "110108", "2022-05-02T00:00:00", "2022-05-04T00:00:00", "2022-05-04T01:00:00"
            ),
            # ① in 130203, whose only case is corrected to imported; in 130204, two stays
            stay(
                "s-cc", "county_visitor", "130203", "2022-05-01T08:00:00", "2022-05-01T12:00:00", "2022-05-01T13:00:00"
            ),
            stay("s-tie1", "two_stays", "130204", "2022-05-01T08:00:00", "2022-05-02T00:00:00", "2022-05-02T01:00:00"),
            stay("s-tie2", "two_stays", "130204", "2022-05-05T08:00:00", "2022-05-06T00:00:00", "2022-05-06T01:00:00"),
            # trip card, city 1301 starred: 2.5 h and 4.5 h with a phone both bound and registered
            stay(
                "s-dbl",
                "two_links_short",
                "130102",
                "2022-05-03T08:00:00",
                "2022-05-03T10:30:00",
                "2022-05-03T11:00:00",
            ),
            stay(
                "s-dbl4",
                "two_links_long",
                "130102",
                "2022-05-03T08:00:00",
                "2022-05-03T12:30:00",
                "2022-05-03T13:00:00",
            ),
            # an open stay of 3 h in all, re-reported each hour
            stay("s-open", "open_stay", "130102", "2022-05-03T08:00:00", "2022-05-03T09:00:00", "2022-05-03T09:00:00"),
            stay("s-open", "open_stay", "130102", "2022-05-03T08:00:00", "2022-05-03T10:00:00", "2022-05-03T10:00:00"),
            stay("s-open", "open_stay", "130102", "2022-05-03T08:00:00", "2022-05-03T11:00:00", "2022-05-03T11:00:00"),
            # a Beijing entry on May 5 10:00 whose stay stays open and is re-reported for three days
            stay("s-tj", "reentry", "120101", "2022-05-04T08:00:00", "2022-05-05T08:00:00", "2022-05-05T09:00:00"),
            stay("s-bj", "reentry", "110105", "2022-05-05T10:00:00", "2022-05-05T12:00:00", "2022-05-05T13:00:00"),
            stay("s-bj", "reentry", "110105", "2022-05-05T10:00:00", "2022-05-06T12:00:00", "2022-05-06T13:00:00"),
            stay("s-bj", "reentry", "110105", "2022-05-05T10:00:00", "2022-05-08T12:00:00", "2022-05-08T13:00:00"),
            # starred presence of 6 h before a declaration
            stay(
                "s-decl",
                "declared_early",
                "130102",
                "2022-05-03T08:00:00",
                "2022-05-03T14:00:00",
                "2022-05-03T15:00:00",
            ),
        ],
    )
    write_feed(
        landing,
        "tickets",
        [
            ticket(
                "t-phantom",
                "two_tickets",
                "2022-05-05T06:00:00",
                "2022-05-05T10:00:00",
                "issued",
                "2022-05-02T09:00:00",
            ),
            ticket(
                "t-real", "two_tickets", "2022-05-05T14:00:00", "2022-05-05T20:00:00", "issued", "2022-05-02T10:00:00"
            ),
            {
                **ticket(
                    "t-later",
                    "declared_early",
                    "2022-05-07T06:00:00",
                    "2022-05-07T10:00:00",
                    "issued",
                    "2022-05-04T09:00:00",
                ),
                "origin_county": "130102",
            },
        ],
    )
    write_feed(
        landing,
        "tickets",
        [
            ticket(
                "t-phantom",
                "two_tickets",
                "2022-05-05T06:00:00",
                "2022-05-05T10:00:00",
                "refunded",
                "2022-05-03T09:00:00",
            ),
        ],
        name="part-002.csv",
    )
    write_feed(
        landing,
        "case_reports",
        [
            case("c-coloc", "110105", "local", "2022-05-05T09:00:00", person=P["case_person"], case_date="2022-05-04"),
            case("c-county", "130203", "local", "2022-05-02T10:00:00"),
            case("c-tie", "130204", "local", "2022-05-01T12:00:00", case_date="2022-05-01"),
        ],
    )
    write_feed(
        landing,
        "case_reports",
        [
            case(
                "c-coloc", "110105", "imported", "2022-05-08T09:00:00", person=P["case_person"], case_date="2022-05-04"
            ),
            case("c-county", "130203", "imported", "2022-05-03T10:00:00"),
        ],
        name="part-002.csv",
    )
    write_feed(
        landing,
        "risk_announcements",
        [
            announcement("a-108", "110108", "high", "2022-05-01T00:00:00", "2022-05-01T00:00:00"),
            announcement("a-108-low", "110108", "low", "2022-05-03T00:00:00", "2022-05-03T00:00:00"),
            announcement("a-shop", "110106001001", "medium", "2022-05-01T00:00:00", "2022-05-01T00:00:00"),
            announcement("a-1301", "130102001001", "medium", "2022-05-01T00:00:00", "2022-05-01T00:00:00"),
        ],
    )
    write_feed(
        landing,
        "risk_announcements",
        [  # corrected: it was another community
            announcement("a-shop", "110106009009", "medium", "2022-05-01T00:00:00", "2022-05-03T10:00:00"),
        ],
        name="part-002.csv",
    )
    write_feed(
        landing,
        "venues",
        [
            {
                "venue_id": "v-cafe",
                "name": "咖啡馆",
                "county_code": "110105",
                "community_code": "110105003001",
                "grid_id": "G1",
                "updated_at": "2022-01-01T00:00:00",
            },
            {
                "venue_id": "v-shop",
                "name": "超市",
                "county_code": "110106",
                "community_code": "110106001001",
                "grid_id": "G2",
                "updated_at": "2022-01-01T00:00:00",
            },
        ],
    )
    write_feed(
        landing,
        "venue_scans",
        [
            {
                "scan_id": "sc-case",
                "person_id": P["case_person"],
                "venue_id": "v-cafe",
                "scan_type": "checkin",
                "scanned_at": "2022-05-04T10:00:00",
            },
            {
                "scan_id": "sc-near",
                "person_id": P["colocated"],
                "venue_id": "v-cafe",
                "scan_type": "payment",
                "scanned_at": "2022-05-04T10:10:00",
            },
            {
                "scan_id": "sc-shop",
                "person_id": P["scanned"],
                "venue_id": "v-shop",
                "scan_type": "checkin",
                "scanned_at": "2022-05-02T10:00:00",
            },
        ],
    )
    write_feed(
        landing,
        "verifications",
        [
            {
                "verification_id": "vf-lift",
                "person_id": P["lift_cleared"],
                "community_code": "110105001001",
                "verified_at": "2022-05-05T10:00:00",
                "outcome": "cleared",
                "commitment_signed": "false",
                "operator_id": "op1",
            },
        ],
    )
    write_feed(
        landing,
        "trip_declarations",
        [
            {
                "declaration_id": "td-early",
                "person_id": P["declared_early"],
                "declared_at": "2022-05-06T10:00:00",
                "counties": "130104",
            },
        ],
    )
    write_feed(
        landing,
        "drug_purchases",
        [
            {
                "purchase_id": "d-twice",
                "person_id": P["nat_twice"],
                "pharmacy_id": "ph1",
                "drug_category": "antipyretic",
                "purchased_at": "2022-05-08T10:00:00",
            },
        ],
    )
    write_feed(
        landing,
        "nat_results",
        [  # one sample on both platforms
            {
                "sample_id": "n-twice",
                "person_id": P["nat_twice"],
                "lab_id": "lab1",
                "sampled_at": "2022-05-08T12:00:00",
                "result": "negative",
                "platform": "national",
                "reported_at": "2022-05-09T10:00:00",
            },
            {
                "sample_id": "n-twice",
                "person_id": P["nat_twice"],
                "lab_id": "lab1",
                "sampled_at": "2022-05-08T12:00:00",
                "result": "negative",
                "platform": "beijing",
                "reported_at": "2022-05-09T18:00:00",
            },
        ],
    )


@pytest.fixture(scope="module")
def at(spark, tmp_path_factory):
    reasons = screened_stories(spark, tmp_path_factory.mktemp("versions"), build, P)

    return briefs_at(reasons)


MAY6, MAY8, MAY9, MAY10, MAY20 = (
    "2022-05-06T01:00:00",
    "2022-05-08T01:00:00",
    "2022-05-09T01:00:00",
    "2022-05-10T01:00:00",
    "2022-05-20T01:00:00",
)


# --- ③ ------------------------------------------------------------------------------------------------------
def test_stay_whose_time_in_the_risk_period_left_w14_before_it_was_known_raises_nothing(at):
    # in 110108 from May 2 to May 20, high only until the lift on May 3: known May 20, that is outside W14
    assert at(MAY20)["lift_span"] == []


def test_cleared_releases_14_days_after_the_lift_that_ended_the_exposure_not_after_the_stay(at):
    assert at(MAY20)["lift_cleared"] == [
        (
            "3",
            "county_risk_area",
            "area=110108",
            "released",
            dt("2022-05-04T01:00:00"),
            dt("2022-05-17T00:00:00"),
            "verified_cleared",
        )
    ]


def test_case_report_corrected_to_imported_withdraws_the_colocation(at):
    assert at(MAY10)["colocated"] == [
        (
            "3",
            "case_colocation",
            "case=c-coloc",
            "released",
            dt("2022-05-05T09:00:00"),
            dt("2022-05-08T09:00:00"),
            "evidence_withdrawn",
        )
    ]
    assert at(MAY10)["case_person"] == []


def test_announcement_corrected_to_another_area_withdraws_the_visit(at):
    assert at(MAY10)["scanned"] == [
        (
            "3",
            "risk_area_visit",
            "area=110106001001",
            "released",
            dt("2022-05-02T10:00:00"),
            dt("2022-05-03T10:00:00"),
            "evidence_withdrawn",
        )
    ]


# --- ① ------------------------------------------------------------------------------------------------------
def test_case_report_corrected_to_imported_withdraws_the_case_county(at):
    assert at(MAY10)["county_visitor"] == [
        (
            "1",
            "case_county",
            "county=130203",
            "released",
            dt("2022-05-02T10:00:00"),
            dt("2022-05-03T10:00:00"),
            "evidence_withdrawn",
        )
    ]


def test_county_going_quiet_as_the_first_stay_ages_out_releases_county_quiet_while_a_later_stay_is_in_w14(at):
    # May 16 00:00: the first stay leaves W14 and the county's case is 15 days old, but p was there on May 5-6
    assert at(MAY20)["two_stays"] == [
        (
            "1",
            "case_county",
            "county=130204",
            "released",
            dt("2022-05-02T01:00:00"),
            dt("2022-05-16T00:00:00"),
            "county_quiet_14d",
        )
    ]


# --- trip verification ----------------------------------------------------------------------------------------
def test_a_phone_both_bound_and_registered_counts_its_stay_once_towards_the_4_hours(at):
    assert at(MAY10)["two_links_short"] == []
    assert at(MAY10)["two_links_long"] == [
        ("T", "declaration_required", "city=1301", "active", dt("2022-05-03T13:00:00"), None, None)
    ]


def test_an_open_stay_re_reported_counts_its_hours_once(at):
    assert at(MAY10)["open_stay"] == []  # 3 h in all, reported as 1 h, 2 h, 3 h


def test_no_pre_entry_nat_needs_an_entry_that_had_happened_by_the_declaration(at):
    # declared May 6 without an entry time; the ticket bought May 4 arrives May 7: that entry is ④'s own trigger
    assert at(MAY8)["declared_early"] == [
        ("4", "entry_72h", "entry=2022-05-07T10:00:00", "active", dt("2022-05-07T10:00:00"), None, None),
        (
            "T",
            "declaration_required",
            "city=1301",
            "released",
            dt("2022-05-03T15:00:00"),
            dt("2022-05-06T10:00:00"),
            "declared",
        ),
    ]


# --- ④ ------------------------------------------------------------------------------------------------------
def test_entry_of_an_open_stay_is_raised_at_its_first_report_and_kept_while_it_is_re_reported(at):
    expected = [("4", "entry_72h", "entry=2022-05-05T10:00:00", "active", dt("2022-05-05T13:00:00"), None, None)]
    assert at(MAY6)["reentry"] == expected
    assert at(MAY9)["reentry"] == expected  # re-reported May 6 and May 8 13:00, past the 72 hours


def test_ticket_refunded_before_its_arrival_does_not_hide_a_real_entry_the_same_day(at):
    assert at(MAY6)["two_tickets"] == [
        ("4", "entry_72h", "entry=2022-05-05T20:00:00", "active", dt("2022-05-05T20:00:00"), None, None)
    ]


def test_negative_nat_reported_on_both_platforms_releases_at_its_first_report(at):
    assert at(MAY10)["nat_twice"] == [
        (
            "4",
            "drug_purchase",
            "purchase=d-twice",
            "released",
            dt("2022-05-08T10:00:00"),
            dt("2022-05-09T10:00:00"),
            "nat_negative",
        )
    ]
