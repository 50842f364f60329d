"""Scenario tests: one story per rule and release path of rules.md (tests/scenarios.py), screened at several
as-of instants. Each test asserts the exact reasons of its people."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from jobs.policy import policy_at
from tests import scenarios
from tests.landing import brief, screened_stories
from tests.scenarios import P


def dt(s: str) -> datetime:
    return datetime.fromisoformat(s)


@pytest.fixture(scope="module")
def at(spark, tmp_path_factory):
    return screened_stories(spark, tmp_path_factory.mktemp("rules"), scenarios.build, P)


MAY10 = "2022-05-10T01:00:00"
MAY15 = "2022-05-15T00:00:00"
MAY17 = "2022-05-17T10:00:00"


# --- linked phones -----------------------------------------------------------------------------------------
def test_relative_using_phone_registered_to_your_id_raises_3_through_registered_link(at):
    r = at(MAY10)["relative_unsigned"]
    assert brief(r) == [("3", "county_risk_area", "area=130203", "active", dt("2022-05-03T12:00:00"), None, None)]
    assert r[0]["registered_only"] is True
    item = json.loads(r[0]["evidence"])["items"][0]
    assert (item["link_type"], item["phone"], item["record_id"]) == ("registered", "139****0001", "s-rel1")
    assert "commitment letter" in r[0]["release_rule"]


def test_registered_link_reason_released_only_with_signed_commitment_letter(at):
    assert brief(at(MAY10)["relative_signed"]) == [
        (
            "3",
            "county_risk_area",
            "area=130203",
            "released",
            dt("2022-05-03T12:00:00"),
            dt("2022-05-06T10:00:00"),
            "verified_not_exposed",
        )
    ]


def test_old_phone_unbound_13_days_ago_still_counts(at):
    assert brief(at(MAY15)["old_phone"]) == [
        ("5", "border_county", "county=152501", "active", dt("2022-05-01T13:00:00"), None, None)
    ]


def test_old_phone_unbound_15_days_ago_no_longer_counts(at):
    r = at(MAY17)["old_phone"]
    assert brief(r) == [
        (
            "5",
            "border_county",
            "county=152501",
            "released",
            dt("2022-05-01T13:00:00"),
            dt("2022-05-15T12:00:00"),
            "left_14d",
        )
    ]
    assert "s-old2" not in r[0]["evidence"]  # the next owner's stay is never the old owner's


def test_next_owner_of_a_phone_gets_only_their_own_stays(at):
    assert brief(at(MAY10)["new_owner"]) == [
        ("5", "border_county", "county=152501", "active", dt("2022-05-05T13:00:00"), None, None)
    ]


# --- popup 1 -----------------------------------------------------------------------------------------------
def test_refunded_ticket_is_not_presence(at):
    assert at(MAY10)["refunded"] == []


def test_ticket_refunded_after_the_fact_withdraws_the_reason(at):
    r = at(MAY10)["refunded_later"]
    assert brief(r) == [
        (
            "1",
            "case_county",
            "county=150102",
            "released",
            dt("2022-05-04T12:00:00"),
            dt("2022-05-08T09:00:00"),
            "evidence_withdrawn",
        )
    ]
    assert "t-later" in r[0]["release_detail"]


def test_ticket_for_a_future_trip_is_not_presence(at):
    assert at(MAY10)["future_ticket"] == []


def test_kept_ticket_to_case_county_raises_1_and_releases_left_14d(at):
    assert brief(at(MAY10)["ticket_kept"]) == [
        ("1", "case_county", "county=150102", "active", dt("2022-05-04T12:00:00"), None, None)
    ]
    assert at(MAY10)["ticket_kept"][0]["release_eligible_at"] == dt("2022-05-17T10:00:00")
    assert brief(at(MAY17)["ticket_kept"])[0][3:] == (
        "released",
        dt("2022-05-04T12:00:00"),
        dt("2022-05-17T10:00:00"),
        "left_14d",
    )


def test_case_county_quiet_for_14_days_releases_1(at):
    assert brief(at(MAY17)["quiet"]) == [
        (
            "1",
            "case_county",
            "county=140105",
            "released",
            dt("2022-05-03T09:00:00"),
            dt("2022-05-16T00:00:00"),
            "county_quiet_14d",
        )
    ]


def test_case_county_announced_low_risk_releases_1(at):
    assert brief(at(MAY10)["lowered"]) == [
        (
            "1",
            "case_county",
            "county=140106",
            "released",
            dt("2022-05-03T09:00:00"),
            dt("2022-05-06T10:00:00"),
            "county_low_risk",
        )
    ]


def test_two_cases_whose_periods_end_together_by_quiet_and_by_low_give_quiet(spark):
    from jobs.rules.case_county import case_county_periods

    # Case a goes quiet at 05-16 00:00; case b, reported later, is released at that same midnight by the low
    # announcement (its own quiet midnight is 05-20). rules.md orders quiet before low.
    cases = [
        ("a", "local", "140107", "2022-05-01", "2022-05-01T12:00:00"),
        ("b", "local", "140107", "2022-05-05", "2022-05-05T12:00:00"),
    ]
    low = spark.createDataFrame(
        [("140107", "low", None, dt("2022-05-15T20:00:00"), dt("2022-05-16T00:00:00"))],
        "area_code string, risk_level string, building_id string, announced_at timestamp, _known_at timestamp",
    )
    for order in (cases, cases[::-1]):
        df = spark.createDataFrame(
            [(i, k, c, datetime.fromisoformat(d).date(), dt(r), dt(r), None) for i, k, c, d, r in order],
            "case_id string, case_type string, county_code string, case_date date, reported_at timestamp, "
            "_known_at timestamp, _valid_to timestamp",
        )
        assert [tuple(r) for r in case_county_periods(df, low, policy_at(dt(MAY10))).collect()] == [
            ("140107", dt("2022-05-01T12:00:00"), dt("2022-05-16T00:00:00"), "county_quiet_14d")
        ]


# --- popup 2 -----------------------------------------------------------------------------------------------
def test_entered_on_1st_with_21_days_is_still_popped_one_minute_before_the_23rd(at):
    assert brief(at("2022-05-22T23:59:00")["inbound"]) == [
        ("2", "inbound_quarantine", "entry=e-1", "active", dt("2022-05-01T12:00:00"), None, None)
    ]
    assert at("2022-05-22T23:59:00")["inbound"][0]["release_eligible_at"] == dt("2022-05-23T00:00:00")


def test_entered_on_1st_with_21_days_is_released_at_00_00_on_the_23rd(at):
    assert brief(at("2022-05-23T00:00:00")["inbound"]) == [
        (
            "2",
            "inbound_quarantine",
            "entry=e-1",
            "released",
            dt("2022-05-01T12:00:00"),
            dt("2022-05-23T00:00:00"),
            "quarantine_complete",
        )
    ]


# --- popup 3 -----------------------------------------------------------------------------------------------
def test_places_upgraded_after_you_left_raise_one_popup_per_upgrade_at_announcement_time(at):
    assert brief(at("2022-05-07T00:00:00")["upgraded_after"]) == [
        ("3", "risk_area_visit", "area=110108001001", "active", dt("2022-05-06T12:00:00"), None, None)
    ]
    assert brief(at(MAY10)["upgraded_after"]) == [
        ("3", "risk_area_visit", "area=110108001001", "active", dt("2022-05-06T12:00:00"), None, None),
        ("3", "risk_area_visit", "area=110108002001", "active", dt("2022-05-08T09:00:00"), None, None),
    ]
    assert json.loads(at(MAY10)["upgraded_after"][0]["evidence"])["items"][0]["retroactive"] is True


def test_verification_before_an_upgrade_was_known_cannot_release_it(at):
    assert brief(at(MAY10)["verified_between"]) == [
        (
            "3",
            "risk_area_visit",
            "area=110108001001",
            "released",
            dt("2022-05-06T12:00:00"),
            dt("2022-05-07T10:00:00"),
            "verified_not_exposed",
        ),
        ("3", "risk_area_visit", "area=110108002001", "active", dt("2022-05-08T09:00:00"), None, None),
    ]


def test_retroactive_low_under_the_scan_withdraws_3(at):
    assert brief(at(MAY10)["lifted"]) == [
        (
            "3",
            "risk_area_visit",
            "area=110108003001",
            "released",
            dt("2022-05-04T00:00:00"),
            dt("2022-05-07T00:00:00"),
            "evidence_withdrawn",
        )
    ]


def test_payment_scan_at_shop_in_controlled_building_raises_3(at):
    assert brief(at(MAY10)["shop_payer"]) == [
        ("3", "risk_area_visit", "area=110105002003/building=B77", "active", dt("2022-05-05T10:00:00"), None, None)
    ]


def test_scan_within_30_minutes_of_a_case_at_same_venue_raises_3c(at):
    assert brief(at(MAY10)["colocated"]) == [
        ("3", "case_colocation", "case=c-bj", "active", dt("2022-05-06T09:00:00"), None, None)
    ]


def test_scan_40_minutes_after_a_case_is_not_colocation(at):
    assert at(MAY10)["not_colocated"] == []


def test_cleared_verification_releases_14_days_after_last_exposure(at):
    r = at(MAY10)["cleared"]
    assert brief(r) == [("3", "risk_area_visit", "area=110108001001", "active", dt("2022-05-06T12:00:00"), None, None)]
    assert r[0]["release_eligible_at"] == dt("2022-05-16T10:00:00")
    assert brief(at(MAY17)["cleared"])[0][3:] == (
        "released",
        dt("2022-05-06T12:00:00"),
        dt("2022-05-16T10:00:00"),
        "verified_cleared",
    )


def test_keep_verification_releases_nothing_and_aging_out_does_not_release_3(at):
    assert brief(at("2022-05-23T00:00:00")["kept"]) == [
        ("3", "risk_area_visit", "area=110108001001", "active", dt("2022-05-06T12:00:00"), None, None)
    ]


def test_a_verification_of_any_outcome_never_raises_a_popup_by_itself(at):
    assert [at(t)["verified_only"] for t in (MAY10, MAY15, MAY17)] == [[], [], []]


# --- popup 4 -----------------------------------------------------------------------------------------------
def test_negative_nat_not_yet_uploaded_keeps_4(at):
    assert brief(at(MAY10)["nat_late"]) == [
        ("4", "drug_purchase", "purchase=d-1", "active", dt("2022-05-08T10:00:00"), None, None)
    ]


def test_uploaded_negative_nat_releases_4(at):
    assert brief(at(MAY15)["nat_late"]) == [
        (
            "4",
            "drug_purchase",
            "purchase=d-1",
            "released",
            dt("2022-05-08T10:00:00"),
            dt("2022-05-10T12:00:00"),
            "nat_negative",
        )
    ]


def test_beijing_entry_raises_4_released_by_nat_sampled_48h_before_entry(at):
    assert brief(at(MAY10)["entrant"]) == [
        (
            "4",
            "entry_72h",
            "entry=2022-05-05T10:00:00",
            "released",
            dt("2022-05-05T13:00:00"),
            dt("2022-05-06T09:00:00"),
            "nat_negative",
        )
    ]


def test_entry_by_a_phone_both_bound_and_registered_shows_the_bound_link(spark):
    from jobs.rules.triggers import entry_triggers

    e = dt("2022-05-05T10:00:00")
    row = ("P", e, e, None, "telecom_stays", "s-1", "139****0001")
    entries = spark.createDataFrame(  # the registered row last: the order-dependent pick took it
        [(*row, "bound", False), (*row, "registered", False)],
        "person_id string, e timestamp, known_at timestamp, valid_to timestamp, source string, record_id string, "
        "phone_masked string, link_type string, registered_only boolean",
    )
    [c] = entry_triggers(entries, policy_at(e)).collect()
    assert json.loads(c["evidence"])["link_type"] == "bound"


def test_trigger_first_known_more_than_72_hours_later_creates_nothing(at):
    assert at(MAY10)["entrant_late_known"] == []


def test_clinic_visit_with_symptom_raises_4(at):
    assert brief(at(MAY10)["clinic"]) == [
        ("4", "clinic_visit", "visit=cv-1", "active", dt("2022-05-08T15:00:00"), None, None)
    ]


# --- trip verification -------------------------------------------------------------------------------------
def test_starred_city_stay_requires_declaration_and_declared_risk_county_raises_3e(at):
    assert brief(at(MAY10)["starred"]) == [
        ("3", "declared_risk_county", "county=130102", "active", dt("2022-05-06T10:00:00"), None, None),
        (
            "T",
            "declaration_required",
            "city=1301",
            "released",
            dt("2022-05-03T17:00:00"),
            dt("2022-05-06T10:00:00"),
            "declared",
        ),
    ]


def test_stay_under_4_hours_does_not_star_a_city(at):
    assert at(MAY10)["short_stay"] == []


def test_declaration_without_pre_entry_nat_raises_4_no_pre_entry_nat(at):
    assert brief(at(MAY10)["no_nat"]) == [
        ("4", "no_pre_entry_nat", "declaration=td-2", "active", dt("2022-05-06T10:00:00"), None, None),
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
