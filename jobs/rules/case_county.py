"""Popup ① — visited a county with local cases (rules.md).

A county outside the home region is a case county while a local case report is known with
case_date >= date(x) - 14 days and no `low` announcement for exactly that county was announced after the report.
A person present there at some t in W14 gets (1, county=C); it ends with left_14d / county_quiet_14d /
county_low_risk (in that order on ties), or evidence_withdrawn when the presence record or the case report
behind the county changes.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.policy import Policy
from jobs.rules.common import candidates, evidence_json, least_with_basis, midnight_after_days, plus_days
from jobs.rules.intervals import islands

BASIS_ORDER = ("county_quiet_14d", "county_low_risk")  # rules.md: the order of ① bases on ties


def case_county_periods(case_reports: DataFrame, announcements: DataFrame, policy: Policy) -> DataFrame:
    """county_code, start, stop, stop_basis: knowledge-time intervals during which C is a case county."""
    cases = case_reports.where((F.col("case_type") == "local") & ~F.col("county_code").startswith(policy.home_prefix))
    lows = announcements.where(
        (F.col("risk_level") == "low") & (F.length("area_code") == 6) & F.col("building_id").isNull()
    )
    first_low = (
        cases.alias("c")
        .join(
            lows.alias("a"),
            (F.col("a.area_code") == F.col("c.county_code")) & (F.col("a.announced_at") > F.col("c.reported_at")),
            "left",
        )
        .groupBy("c.case_id", "c.county_code", "c.case_date", "c._known_at", "c._valid_to")
        .agg(F.min("a._known_at").alias("low_known_at"))
    )
    quiet = midnight_after_days(F.col("case_date"), policy.window_days + 1)
    # a corrected report (to imported, another county or date) ends what its old version said
    order = BASIS_ORDER + ("evidence_withdrawn",)
    stop, basis = least_with_basis(*zip((quiet, F.col("low_known_at"), F.col("_valid_to")), order, strict=True))
    per_case = first_low.select(
        "county_code", F.col("_known_at").alias("start"), stop.alias("stop"), basis.alias("stop_basis")
    )
    per_case = per_case.where(F.col("start") < F.col("stop"))
    return islands(per_case, ["county_code"], basis_order=order)


def rule(presence: DataFrame, case_reports: DataFrame, announcements: DataFrame, policy: Policy) -> DataFrame:
    periods = case_county_periods(case_reports, announcements, policy).alias("k")
    p = presence.alias("p")
    j = p.join(periods, "county_code")
    start = F.greatest("p.known_at", "k.start", "p.p_from")
    stop, basis = least_with_basis(
        (plus_days(F.col("p.p_to"), policy.window_days), "left_14d"),
        (F.col("k.stop"), F.col("k.stop_basis")),
        (F.col("p.valid_to"), "evidence_withdrawn"),
    )
    return candidates(
        j,
        person_id=F.col("person_id"),
        popup_code=F.lit("1"),
        reason_type=F.lit("case_county"),
        cause=F.concat(F.lit("county="), F.col("county_code")),
        start=start,
        stop=stop,
        stop_basis=basis,
        release_mode=F.lit("auto"),
        registered_only=F.col("p.registered_only"),
        evidence_known_at=F.col("p.known_at"),
        evidence=evidence_json(
            feed=F.col("p.source"),
            record_id=F.col("p.record_id"),
            county=F.col("county_code"),
            phone=F.col("p.phone_masked"),
            link_type=F.col("p.link_type"),
            present_from=F.col("p.p_from"),
            present_to=F.col("p.p_to"),
        ),
    )
