"""Popup ② — inbound quarantine: from entry date D 00:00 until D + Q + 1 days 00:00 (quarantine_complete)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.policy import Policy
from jobs.rules.common import candidates, evidence_json, least_with_basis


def rule(inbound_entries: DataFrame, policy: Policy) -> DataFrame:
    q = F.coalesce(F.col("quarantine_days"), F.lit(policy.quarantine_days))
    end = F.date_add(F.col("entry_date"), q + 1).cast("timestamp")
    stop, basis = least_with_basis((end, "quarantine_complete"), (F.col("_valid_to"), "evidence_withdrawn"))
    return candidates(
        inbound_entries,
        person_id=F.col("person_id"),
        popup_code=F.lit("2"),
        reason_type=F.lit("inbound_quarantine"),
        cause=F.concat(F.lit("entry="), F.col("entry_id")),
        start=F.greatest(F.col("entry_date").cast("timestamp"), F.col("_known_at")),
        stop=stop,
        stop_basis=basis,
        release_mode=F.lit("auto"),
        evidence_known_at=F.col("_known_at"),
        evidence=evidence_json(
            feed=F.lit("inbound_entries"),
            record_id=F.col("entry_id"),
            port=F.col("port"),
            entry_date=F.col("entry_date"),
            quarantine_days=q,
        ),
    )
