"""Popup ③ — risk areas and association (rules.md). Released only by a community verification
(`jobs.rules.episodes`); aging out of W14 never releases.

- 3a risk_area_visit: a venue scan inside a medium/high area (community/street/county code prefix, or the same
  building_id for a building announcement) during the area's risk period and in W14. Retroactive upgrades
  count from their announcement's knowledge time; a later retroactive `low` under the scan withdraws it.
- 3b county_risk_area: presence in county C during the risk period of a medium/high announcement for exactly C
  (a lift inside a stay ends the exposure there).
- 3c case_colocation: a scan at the same venue within ±30 min of a scan by a person with a local case report.
- 3d companion: `jobs.rules.companion` (its own issue).
- 3e declared_risk_county: `jobs.rules.trip_verification`.
A corrected announcement or case report (a later version of its id) withdraws what the old version raised.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.policy import Policy
from jobs.rules.common import candidates, evidence_json, least_with_basis, plus_days, plus_hours

RISKY = ("medium", "high")


def announcement_cols(announcements: DataFrame) -> DataFrame:
    return announcements.select(
        F.col("announcement_id").alias("a_id"),
        F.col("area_code").alias("a_area"),
        F.col("building_id").alias("a_bldg"),
        F.col("risk_level").alias("a_level"),
        F.col("effective_from").alias("a_eff"),
        F.col("announced_at").alias("a_ann"),
        F.col("_known_at").alias("a_known"),
        F.col("_valid_to").alias("a_valid_to"),
    )


def area_id() -> Column:
    bldg = F.when(F.col("a_bldg").isNotNull(), F.concat(F.lit("/building="), F.col("a_bldg"))).otherwise(F.lit(""))
    return F.concat(F.lit("area="), F.col("a_area"), bldg)


def lifted_at(
    df: DataFrame, announcements: DataFrame, exposure_at: str, until: str | None = None, start: Column | None = None
) -> DataFrame:
    """Add `lifted_known_at`: when a later-announced `low` for the same area covering `exposure_at` became known
    (a retroactive lift under the exposure withdraws the evidence). With `until` (the exposure's end) and `start`
    (when the rule would first hold) also add `risk_to`: the earliest `effective_from` in (`exposure_at`, `until`]
    of such a `low` known by `start`, where the risk period, and so the exposure inside it, ends."""
    lows = announcements.where(F.col("risk_level") == "low").select(
        F.col("area_code").alias("l_area"),
        F.col("building_id").alias("l_bldg"),
        F.col("effective_from").alias("l_eff"),
        F.col("announced_at").alias("l_ann"),
        F.col("_known_at").alias("l_known"),
    )
    cond = (
        (F.col("l_area") == F.col("a_area"))
        & F.col("l_bldg").eqNullSafe(F.col("a_bldg"))
        & (F.col("l_ann") > F.col("a_ann"))
    )
    under = F.col("l_eff") <= F.col(exposure_at)
    aggs = [F.min(F.when(under, F.col("l_known"))).alias("lifted_known_at")]
    if until is not None:
        inside = ~under & (F.col("l_eff") <= F.col(until)) & (F.col("l_known") <= start)
        aggs.append(F.min(F.when(inside, F.col("l_eff"))).alias("risk_to"))
    return df.join(F.broadcast(lows), cond, "left").groupBy(*df.columns).agg(*aggs)


VENUE_PLACE = ("county_code", "community_code", "building_id")  # what 3a reads of a venue to place a scan


def venue_places(venues: DataFrame) -> DataFrame:
    """Every place each venue was known at (venues: every version known at T, `jobs.asof.as_of`): a version
    whose place differs from the one before it, from its knowledge time (v_known) to the next such version's
    (v_valid_to, null while current). A version in the same place as the one before (a re-delivery, a new name or
    grid cell) is no new evidence of where the venue is, so it neither ends nor starts a place; the name is the
    one the place was first known with (evidence does not change under a published reason)."""
    w = Window.partitionBy("venue_id").orderBy("_source_known_at", "_file", "_line")  # as as_of orders versions
    same = F.lag(F.lit(True)).over(w).isNotNull()
    for c in VENUE_PLACE:
        same = same & F.col(c).eqNullSafe(F.lag(c).over(w))
    moved = venues.withColumn("_same", same).where(~F.col("_same"))
    return moved.select(
        "venue_id",
        F.col("name").alias("venue_name"),
        "county_code",
        "community_code",
        F.col("building_id").alias("v_bldg"),
        F.col("updated_at").alias("v_updated"),
        F.col("_known_at").alias("v_known"),
        F.lead("_known_at").over(w).alias("v_valid_to"),
    )


def visit_rule(venue_scans: DataFrame, venues: DataFrame, announcements: DataFrame, policy: Policy) -> DataFrame:
    """3a. A scan is placed by its venue as known at each instant, whatever the scan time: a venue corrected into
    an area raises from when the correction is known; one corrected out of it withdraws then (evidence_withdrawn).
    The venue's place is a record behind the reason (evidence_known_at), so a verification made before a
    correction into an area was known cannot release what it raises."""
    s = venue_scans.select(
        "person_id",
        "scan_id",
        "venue_id",
        "scan_type",
        "scanned_at",
        F.col("_known_at").alias("s_known"),
        F.col("_valid_to").alias("s_valid_to"),
    ).join(venue_places(venues), "venue_id")
    a = announcement_cols(announcements.where(F.col("risk_level").isin(*RISKY)))
    match = F.when(F.col("a_bldg").isNotNull(), F.col("a_bldg") == F.col("v_bldg")).otherwise(
        F.col("community_code").startswith(F.col("a_area")) | (F.col("county_code") == F.col("a_area"))
    )
    j = lifted_at(s.join(F.broadcast(a), match & (F.col("a_eff") <= F.col("scanned_at"))), announcements, "scanned_at")
    start = F.greatest("s_known", "v_known", "a_known", "scanned_at")
    stop, basis = least_with_basis(
        (F.col("lifted_known_at"), "evidence_withdrawn"),
        (F.col("s_valid_to"), "evidence_withdrawn"),
        (F.col("v_valid_to"), "evidence_withdrawn"),  # a venue corrected to another place
        (F.col("a_valid_to"), "evidence_withdrawn"),
    )  # a corrected announcement
    return candidates(
        j.where(start <= plus_days(F.col("scanned_at"), policy.window_days)),
        person_id=F.col("person_id"),
        popup_code=F.lit("3"),
        reason_type=F.lit("risk_area_visit"),
        cause=area_id(),
        start=start,
        stop=stop,
        stop_basis=basis,
        release_mode=F.lit("verify"),
        exposure_end=F.col("scanned_at"),
        evidence_known_at=F.greatest("s_known", "v_known", "a_known"),
        evidence=evidence_json(
            feed=F.lit("venue_scans"),
            record_id=F.col("scan_id"),
            venue_id=F.col("venue_id"),
            venue=F.col("venue_name"),
            venue_community=F.col("community_code"),
            venue_updated_at=F.col("v_updated"),
            scan_type=F.col("scan_type"),
            scanned_at=F.col("scanned_at"),
            area=F.col("a_area"),
            building_id=F.col("a_bldg"),
            announcement_id=F.col("a_id"),
            risk_level=F.col("a_level"),
            effective_from=F.col("a_eff"),
            announced_at=F.col("a_ann"),
            retroactive=F.col("a_ann") > F.col("scanned_at"),
        ),
    )


def county_rule(presence: DataFrame, announcements: DataFrame, policy: Policy) -> DataFrame:
    """3b."""
    a = announcement_cols(
        announcements.where(
            F.col("risk_level").isin(*RISKY) & (F.length("area_code") == 6) & F.col("building_id").isNull()
        )
    )
    j = presence.join(F.broadcast(a), F.col("county_code") == F.col("a_area"))
    j = j.withColumn("lo", F.greatest("p_from", "a_eff")).where(F.col("lo") <= F.col("p_to"))
    start = F.greatest("known_at", "a_known", "lo")
    # p is exposed only while in C during the risk period: a lift inside the presence, known when the rule would
    # hold, ends the exposure there, for W14 and for the last exposure a `cleared` verification counts from
    j = lifted_at(j, announcements, "lo", until="p_to", start=start)
    exposed_to = F.coalesce(F.col("risk_to"), F.col("p_to"))
    stop, basis = least_with_basis(
        (F.col("lifted_known_at"), "evidence_withdrawn"),
        (F.col("valid_to"), "evidence_withdrawn"),
        (F.col("a_valid_to"), "evidence_withdrawn"),
    )
    return candidates(
        j.where(start <= plus_days(exposed_to, policy.window_days)),
        person_id=F.col("person_id"),
        popup_code=F.lit("3"),
        reason_type=F.lit("county_risk_area"),
        cause=F.concat(F.lit("area="), F.col("county_code")),
        start=start,
        stop=stop,
        stop_basis=basis,
        release_mode=F.lit("verify"),
        exposure_end=exposed_to,
        registered_only=F.col("registered_only"),
        evidence_known_at=F.greatest("known_at", "a_known"),
        evidence=evidence_json(
            feed=F.col("source"),
            record_id=F.col("record_id"),
            county=F.col("county_code"),
            phone=F.col("phone_masked"),
            link_type=F.col("link_type"),
            present_from=F.col("p_from"),
            present_to=F.col("p_to"),
            risk_to=F.col("risk_to"),
            announcement_id=F.col("a_id"),
            risk_level=F.col("a_level"),
            effective_from=F.col("a_eff"),
            announced_at=F.col("a_ann"),
            retroactive=F.col("a_ann") > F.col("p_to"),
        ),
    )


def colocation_rule(venue_scans: DataFrame, case_reports: DataFrame, policy: Policy) -> DataFrame:
    """3c."""
    cases = case_reports.where((F.col("case_type") == "local") & F.col("person_id").isNotNull()).select(
        "case_id",
        F.col("person_id").alias("case_person"),
        F.col("_known_at").alias("c_known"),
        F.col("_valid_to").alias("c_valid_to"),
    )
    case_scans = venue_scans.join(F.broadcast(cases), venue_scans.person_id == cases.case_person).select(
        "case_id",
        "case_person",
        "c_known",
        "c_valid_to",
        "venue_id",
        F.col("scan_id").alias("c_scan_id"),
        F.col("scanned_at").alias("c_at"),
        F.col("_known_at").alias("cs_known"),
        F.col("_valid_to").alias("cs_valid_to"),
    )
    m = policy.colocation_minutes / 60
    j = venue_scans.join(F.broadcast(case_scans), "venue_id").where(
        (F.col("person_id") != F.col("case_person"))
        & (F.col("scanned_at") >= plus_hours(F.col("c_at"), -m))
        & (F.col("scanned_at") <= plus_hours(F.col("c_at"), m))
    )
    start = F.greatest("_known_at", "cs_known", "c_known", "scanned_at")
    # a case report corrected (to imported, to another person) withdraws what its old version said
    stop, basis = least_with_basis(
        (F.col("_valid_to"), "evidence_withdrawn"),
        (F.col("cs_valid_to"), "evidence_withdrawn"),
        (F.col("c_valid_to"), "evidence_withdrawn"),
    )
    return candidates(
        j.where(start <= plus_days(F.col("scanned_at"), policy.window_days)),
        person_id=F.col("person_id"),
        popup_code=F.lit("3"),
        reason_type=F.lit("case_colocation"),
        cause=F.concat(F.lit("case="), F.col("case_id")),
        start=start,
        stop=stop,
        stop_basis=basis,
        release_mode=F.lit("verify"),
        exposure_end=F.col("scanned_at"),
        evidence_known_at=F.greatest("_known_at", "cs_known", "c_known"),
        evidence=evidence_json(
            feed=F.lit("venue_scans"),
            record_id=F.col("scan_id"),
            venue_id=F.col("venue_id"),
            scanned_at=F.col("scanned_at"),
            case_id=F.col("case_id"),
            case_scan_id=F.col("c_scan_id"),
            case_scanned_at=F.col("c_at"),
        ),
    )
