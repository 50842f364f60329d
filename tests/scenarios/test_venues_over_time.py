"""Scenario tests of venues over time (issue 38, point 6): 3a reads a venue as known at each instant, so a venue
corrected into or out of a risk area (a later version of its venue_id with another community, county or building)
raises or withdraws like any corrected record, from the instant the correction became known, and never rewrites
what a run before it published (rules.md, "Popup ③", "A person's state"). A venue re-delivered with the same place
is no new evidence. One small hand-made landing, its own people and venues per story, screened at a few as-of
instants as a run reads bronze. Each test asserts the exact reasons of its people."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.landing import briefs_at, resident_id, screened_stories, write_feed

STORIES = (
    "moved_out",
    "moved_in",
    "verified_before",
    "verified_after",
    "moved_in_late",
    "moved_across",
    "redelivered",
    "redelivered_verified",
    "renamed_verified",
)
P = {name: resident_id(f"11010719900101{n:03d}") for n, name in enumerate(STORIES, start=1)}
AREA = "110107001001"  # 石景山区, a community announced medium from May 1
OUTSIDE = "110107003001"  # a community of the same county, never announced
BUILDING = "B9"  # a building announced high from May 1
SCANNED = "2022-05-02T10:00:00"
CORRECTED = "2022-05-05T10:00:00"  # when the corrected venue rows become known


def dt(s: str) -> datetime:
    return datetime.fromisoformat(s)


def venue(vid, community, updated, name="超市", building=None):
    return {
        "venue_id": vid,
        "name": name,
        "county_code": community[:6],
        "community_code": community,
        "building_id": building,
        "grid_id": "G1",
        "updated_at": updated,
    }


def verification(vid, who, at, outcome="not_exposed"):
    return {
        "verification_id": vid,
        "person_id": P[who],
        "community_code": "110107002001",
        "verified_at": at,
        "outcome": outcome,
        "commitment_signed": "false",
        "operator_id": "op1",
    }


def build(landing) -> None:
    write_feed(
        landing,
        "risk_announcements",
        [
            {
                "announcement_id": "a-area",
                "area_code": AREA,
                "risk_level": "medium",
                "effective_from": "2022-05-01T00:00:00",
                "announced_at": "2022-05-01T00:00:00",
            },
            {
                "announcement_id": "a-bldg",
                "area_code": "110107005001",
                "building_id": BUILDING,
                "risk_level": "high",
                "effective_from": "2022-05-01T00:00:00",
                "announced_at": "2022-05-01T00:00:00",
            },
        ],
    )
    write_feed(
        landing,
        "venues",
        [
            venue("v-out", AREA, "2022-01-01T00:00:00"),
            venue("v-in", OUTSIDE, "2022-01-01T00:00:00"),
            venue("v-before", OUTSIDE, "2022-01-01T00:00:00"),
            venue("v-after", OUTSIDE, "2022-01-01T00:00:00"),
            venue("v-late", OUTSIDE, "2022-01-01T00:00:00"),
            venue("v-across", AREA, "2022-01-01T00:00:00"),
            venue("v-same", AREA, "2022-01-01T00:00:00"),
            venue("v-same2", AREA, "2022-01-01T00:00:00"),
            venue("v-renamed", AREA, "2022-01-01T00:00:00"),
        ],
    )
    write_feed(
        landing,
        "venues",
        [  # corrections and re-deliveries, a later file
            venue("v-out", OUTSIDE, CORRECTED),
            venue("v-in", AREA, CORRECTED),
            venue("v-before", AREA, CORRECTED),
            venue("v-after", AREA, CORRECTED),
            venue("v-late", AREA, "2022-05-17T10:00:00"),  # 15 days after the scan
            venue("v-across", "110107005001", CORRECTED, building=BUILDING),
            venue("v-same", AREA, CORRECTED),
            venue("v-same2", AREA, CORRECTED),
            venue("v-renamed", AREA, CORRECTED, name="超市（新）"),
        ],
        name="part-002.csv",
    )
    write_feed(
        landing,
        "venue_scans",
        [
            {"scan_id": f"sc-{who}", "person_id": P[who], "venue_id": v, "scan_type": "checkin", "scanned_at": SCANNED}
            for who, v in (
                ("moved_out", "v-out"),
                ("moved_in", "v-in"),
                ("verified_before", "v-before"),
                ("verified_after", "v-after"),
                ("moved_in_late", "v-late"),
                ("moved_across", "v-across"),
                ("redelivered", "v-same"),
                ("redelivered_verified", "v-same2"),
                ("renamed_verified", "v-renamed"),
            )
        ],
    )
    write_feed(
        landing,
        "verifications",
        [
            verification("vf-before", "verified_before", "2022-05-04T10:00:00"),  # before the correction was known
            verification("vf-after", "verified_after", "2022-05-06T10:00:00"),
            verification("vf-same", "redelivered_verified", "2022-05-03T10:00:00"),  # before the re-delivery
            verification("vf-renamed", "renamed_verified", "2022-05-03T10:00:00"),
        ],
    )


@pytest.fixture(scope="module")
def reasons(spark, tmp_path_factory):
    return screened_stories(spark, tmp_path_factory.mktemp("venues"), build, P)


@pytest.fixture(scope="module")
def at(reasons):
    return briefs_at(reasons)


MAY4, MAY10, MAY20 = "2022-05-04T01:00:00", "2022-05-10T01:00:00", "2022-05-20T01:00:00"
VISIT = ("3", "risk_area_visit", f"area={AREA}")


def test_venue_corrected_out_of_a_risk_area_withdraws_the_visit_at_the_correction(at):
    assert at(MAY4)["moved_out"] == [(*VISIT, "active", dt(SCANNED), None, None)]  # as an earlier run published it
    assert at(MAY10)["moved_out"] == [(*VISIT, "released", dt(SCANNED), dt(CORRECTED), "evidence_withdrawn")]


def test_venue_corrected_into_a_risk_area_raises_the_visit_when_the_correction_is_known(at):
    assert at(MAY4)["moved_in"] == []
    assert at(MAY10)["moved_in"] == [(*VISIT, "active", dt(CORRECTED), None, None)]


def test_verification_made_before_a_correction_into_a_risk_area_was_known_cannot_release_it(at):
    assert at(MAY10)["verified_before"] == [(*VISIT, "active", dt(CORRECTED), None, None)]
    # made after it: releases as usual
    assert at(MAY10)["verified_after"] == [
        (*VISIT, "released", dt(CORRECTED), dt("2022-05-06T10:00:00"), "verified_not_exposed")
    ]


def test_venue_corrected_into_a_risk_area_more_than_14_days_after_the_scan_raises_nothing(at):
    assert at(MAY20)["moved_in_late"] == []


def test_venue_corrected_from_one_risk_area_into_another_withdraws_the_one_and_raises_the_other(at):
    assert at(MAY4)["moved_across"] == [(*VISIT, "active", dt(SCANNED), None, None)]
    assert at(MAY10)["moved_across"] == [
        (*VISIT, "released", dt(SCANNED), dt(CORRECTED), "evidence_withdrawn"),
        ("3", "risk_area_visit", f"area=110107005001/building={BUILDING}", "active", dt(CORRECTED), None, None),
    ]


def test_venue_re_delivered_unchanged_neither_releases_nor_raises_again(at):
    assert at(MAY10)["redelivered"] == [(*VISIT, "active", dt(SCANNED), None, None)]


@pytest.mark.parametrize("who", ["redelivered_verified", "renamed_verified"])
def test_venue_re_delivered_in_the_same_place_after_a_release_raises_no_new_reason(at, who):
    # released by a verification on May 3; the venue's row comes again on May 5 (the same, or only renamed): no
    # new evidence of the visit, so no second reason
    assert at(MAY10)[who] == [(*VISIT, "released", dt(SCANNED), dt("2022-05-03T10:00:00"), "verified_not_exposed")]


def test_evidence_names_the_venue_and_the_place_it_was_known_in(reasons):
    (moved_in,) = reasons(MAY10)["moved_in"]
    (item,) = json.loads(moved_in["evidence"])["items"]
    assert (item["venue_id"], item["venue"], item["area"], item["scanned_at"][:19]) == ("v-in", "超市", AREA, SCANNED)
    assert moved_in["last_evidence_at"] == dt(CORRECTED)  # the correction is a record behind the reason
