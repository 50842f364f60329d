"""The commitment letter honours when each phone link held (rules.md, "Verifications"): a ③ reason whose evidence
reached p only through `registered` links needs `commitment_signed` on a `not_exposed` verification, and a binding
of the same phone spares it only where the binding held during the record. One small hand-made landing, its own
person and phone per story, screened once as a run reads bronze; each test asserts the exact reasons of its people.

Every story is a 3b stay of May 3 08:00-12:00 (reported 13:00) in a county high-risk from May 1, of a phone
registered to p since 2020, and a `not_exposed` verification of May 6 10:00, with or without the signed letter."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.landing import brief, resident_id, screened_stories, write_feed

STORIES = (
    "bound_after",
    "bound_after_signed",
    "bound_long_ago",
    "bound_long_ago_signed",
    "bound_then",
    "exposed_before_bound",
    "exposed_also_bound",
)
P = {name: resident_id(f"11010519900101{n:03d}") for n, name in enumerate(STORIES, start=1)}
PH = {name: f"136{n:08d}" for n, name in enumerate(STORIES, start=1)}
HIGH, LIFTED = "110111", "110112"  # 房山区 high from May 1 on; 通州区 high from May 1, lifted May 3 09:00
T = "2022-05-10T01:00:00"
# bound only from May 5, after the stay; bound in 2020-21, unbound a year before it; bound since 2021; bound from
# May 3 10:00, in the middle of the stay
BINDINGS = {
    "bound_after": ("2022-05-05T00:00:00", None),
    "bound_after_signed": ("2022-05-05T00:00:00", None),
    "bound_long_ago": ("2020-01-01T00:00:00", "2021-06-01T00:00:00"),
    "bound_long_ago_signed": ("2020-01-01T00:00:00", "2021-06-01T00:00:00"),
    "bound_then": ("2021-01-01T00:00:00", None),
    "exposed_before_bound": ("2022-05-03T10:00:00", None),
    "exposed_also_bound": ("2022-05-03T10:00:00", None),
}


def dt(s: str) -> datetime:
    return datetime.fromisoformat(s)


def build(landing) -> None:
    write_feed(
        landing,
        "kit_bindings",
        [{"person_id": P[n], "phone": PH[n], "bound_at": a, "unbound_at": b} for n, (a, b) in BINDINGS.items()],
    )
    write_feed(
        landing,
        "phone_registrations",
        [{"phone": PH[n], "person_id": P[n], "registered_at": "2020-01-01T00:00:00"} for n in STORIES],
    )
    write_feed(
        landing,
        "telecom_stays",
        [
            {
                "record_id": f"s-{n}",
                "phone": PH[n],
                "county_code": LIFTED if n == "exposed_before_bound" else HIGH,
                "first_seen": "2022-05-03T08:00:00",
                "last_seen": "2022-05-03T12:00:00",
                "reported_at": "2022-05-03T13:00:00",
            }
            for n in STORIES
        ],
    )
    write_feed(
        landing,
        "risk_announcements",
        [
            {
                "announcement_id": "a-high",
                "area_code": HIGH,
                "risk_level": "high",
                "effective_from": "2022-05-01T00:00:00",
                "announced_at": "2022-05-01T00:00:00",
            },
            {
                "announcement_id": "a-lifted",
                "area_code": LIFTED,
                "risk_level": "high",
                "effective_from": "2022-05-01T00:00:00",
                "announced_at": "2022-05-01T00:00:00",
            },
            {
                "announcement_id": "a-lifted-low",
                "area_code": LIFTED,
                "risk_level": "low",
                "effective_from": "2022-05-03T09:00:00",
                "announced_at": "2022-05-03T09:00:00",
            },
        ],
    )
    write_feed(
        landing,
        "verifications",
        [
            {
                "verification_id": f"vf-{n}",
                "person_id": P[n],
                "community_code": "110111001001",
                "verified_at": "2022-05-06T10:00:00",
                "outcome": "not_exposed",
                "commitment_signed": "true" if n.endswith("_signed") else "false",
                "operator_id": "op1",
            }
            for n in STORIES
        ],
    )


@pytest.fixture(scope="module")
def reasons(spark, tmp_path_factory):
    return screened_stories(spark, tmp_path_factory.mktemp("links_over_time"), build, P)(T)


def active(area: str) -> list[tuple]:
    return [("3", "county_risk_area", f"area={area}", "active", dt("2022-05-03T13:00:00"), None, None)]


RELEASED = [
    (
        "3",
        "county_risk_area",
        f"area={HIGH}",
        "released",
        dt("2022-05-03T13:00:00"),
        dt("2022-05-06T10:00:00"),
        "verified_not_exposed",
    )
]


def test_phone_bound_only_after_the_stay_still_needs_the_commitment_letter(reasons):
    assert brief(reasons["bound_after"]) == active(HIGH)
    assert brief(reasons["bound_after_signed"]) == RELEASED


def test_phone_bound_years_ago_and_now_only_registered_needs_the_commitment_letter(reasons):
    assert brief(reasons["bound_long_ago"]) == active(HIGH)
    assert brief(reasons["bound_long_ago_signed"]) == RELEASED


def test_phone_also_bound_to_p_during_the_stay_needs_no_commitment_letter(reasons):
    assert brief(reasons["bound_then"]) == RELEASED


def test_stay_exposed_only_before_the_phone_was_bound_needs_the_commitment_letter(reasons):
    # bound from 10:00; the county was lifted at 09:00: only the registered link's part of the stay is exposed
    assert brief(reasons["exposed_before_bound"]) == active(LIFTED)


def test_stay_exposed_also_after_the_phone_was_bound_needs_no_commitment_letter(reasons):
    # bound from 10:00 and the county high all day: the stay clipped to the binding is evidence of its own
    assert brief(reasons["exposed_also_bound"]) == RELEASED
