"""Analyst views over the gold tables (docs/analyst.md), registered by name by `screening sql` and used by the
run report. Each is Spark SQL over table names; `person_area` (person_key → district, street, community) is
built from the current `persons` rows and exposes no ID, name or phone."""

from __future__ import annotations

import re
from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs import asof, schemas
from jobs.keys import person_key

VIEWS: dict[str, tuple[str, str]] = {
    "popups_by_district_day": (
        "People with an active popup at the end of each day, by home district and popup code "
        "(district `outside` = outside Beijing or not in persons)",
        """
        WITH days AS (
          SELECT explode(sequence(to_date(min(raised_at)),
                 to_date(coalesce((SELECT max(as_of) FROM run_log WHERE status = 'completed'), max(raised_at))))) AS day
          FROM popup_reasons)
        SELECT d.day, coalesce(a.district_code, 'outside') AS district_code, r.popup_code,
               count(DISTINCT r.person_key) AS people
        FROM days d JOIN popup_reasons r
          ON r.raised_at < date_add(d.day, 1) AND (r.released_at IS NULL OR r.released_at >= date_add(d.day, 1))
        LEFT JOIN person_area a ON a.person_key = r.person_key
        GROUP BY d.day, coalesce(a.district_code, 'outside'), r.popup_code
        """,
    ),
    "releases_by_basis": (
        "Releases per run by popup code and release basis, and how many of them left the person green",
        """
        SELECT run_id, as_of, popup_code, release_basis, count(*) AS releases,
               sum(CASE WHEN person_green THEN 1 ELSE 0 END) AS now_green
        FROM release_list GROUP BY run_id, as_of, popup_code, release_basis
        """,
    ),
    "popup_to_release": (
        "Every released reason with the hours from raised_at to released_at",
        """
        SELECT person_key, reason_key, popup_code, reason_type, raised_at, released_at, release_basis,
               round((unix_timestamp(released_at) - unix_timestamp(raised_at)) / 3600.0, 1) AS hours
        FROM popup_reasons WHERE status = 'released'
        """,
    ),
    "popup_to_release_by_code": (
        "Median and 90th percentile hours from popup to release, per popup code",
        """
        SELECT popup_code, count(*) AS released, round(median(hours), 1) AS median_hours,
               round(percentile(hours, 0.9), 1) AS p90_hours
        FROM popup_to_release GROUP BY popup_code
        """,
    ),
    "dispatch_backlog_by_street": (
        "Open dispatch lines of the latest run by route, street and action: new, carried over, overdue, and the oldest "
        "popup behind them",
        """
        SELECT run_id, route_type, coalesce(street_code, route_code) AS street_or_route, action,
               count(*) AS lines, count_if(first_run_id = run_id) AS new, count_if(due_by <= as_of) AS overdue,
               min(since) AS oldest_since
        FROM dispatch_list
        WHERE run_id = (SELECT run_id FROM dispatch_list ORDER BY as_of DESC, run_id DESC LIMIT 1)
        GROUP BY run_id, route_type, coalesce(street_code, route_code), action
        """,
    ),
    "active_by_run_district": (
        "People with an active popup as published by each completed run, by home district",
        """
        WITH r AS (
          SELECT p.person_key, f.as_of AS first_as_of, x.as_of AS release_as_of
          FROM popup_reasons p
          JOIN run_log f ON f.run_id = p.first_run_id
          LEFT JOIN run_log x ON x.run_id = p.release_run_id)
        SELECT l.run_id, l.as_of, coalesce(a.district_code, 'outside') AS district_code,
               count(DISTINCT r.person_key) AS people
        FROM run_log l JOIN r ON r.first_as_of <= l.as_of AND (r.release_as_of IS NULL OR r.release_as_of > l.as_of)
        LEFT JOIN person_area a ON a.person_key = r.person_key
        WHERE l.status = 'completed'
        GROUP BY l.run_id, l.as_of, coalesce(a.district_code, 'outside')
        """,
    ),
}
PERSON_AREA_DOC = "person_key → district_code, street_code, community_code, hotel_id (current persons; no PII)"


def person_area(persons_bronze: DataFrame) -> DataFrame:
    """Current home place of each person in `persons` (hotel guests: the hotel's county)."""
    p = asof.current(asof.as_of(persons_bronze, "persons", datetime(9999, 1, 1)))
    return p.select(
        person_key(F.col("person_id")).alias("person_key"),
        F.coalesce(F.substring("community_code", 1, 6), F.col("hotel_county_code")).alias("district_code"),
        F.substring("community_code", 1, 9).alias("street_code"),
        "community_code",
        "hotel_id",
    )


def dependencies(name: str) -> set[str]:
    """Tables and views a view reads (names that occur in its SQL)."""
    if name == "person_area":
        return {"persons"}
    sql = VIEWS[name][1]
    names = set(schemas.FEEDS) | set(schemas.GOLD) | set(VIEWS) | {"person_area"}
    return {n for n in names if n != name and re.search(rf"\b{n}\b", sql)}
