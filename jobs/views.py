"""Analyst views over the gold tables (docs/analyst.md), registered by name by `screening sql` and used by the
run report. Each is Spark SQL over table names, except the two built in Python (BUILT): `area_names` (code → name
of districts, streets, communities, hotels and labs) and `person_area` (person_key → home district, street and
community, codes and names), built from the current `persons` rows and exposing no ID, name or phone."""

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
        SELECT d.day, coalesce(a.district_code, 'outside') AS district_code,
               coalesce(a.district_name, '京外/未知') AS district_name, r.popup_code,
               count(DISTINCT r.person_key) AS people
        FROM days d JOIN popup_reasons r
          ON r.raised_at < date_add(d.day, 1) AND (r.released_at IS NULL OR r.released_at >= date_add(d.day, 1))
        LEFT JOIN person_area a ON a.person_key = r.person_key
        GROUP BY d.day, coalesce(a.district_code, 'outside'), coalesce(a.district_name, '京外/未知'), r.popup_code
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
        "Open dispatch lines of the latest run by route, street (or district, lab) with its name, and action: new, "
        "carried over, overdue, and the oldest popup behind them",
        """
        SELECT b.run_id, b.route_type, b.street_or_route, coalesce(n.name, b.street_or_route) AS name, b.action,
               b.lines, b.new, b.overdue, b.oldest_since
        FROM (SELECT run_id, route_type, coalesce(street_code, route_code) AS street_or_route, action,
                     count(*) AS lines, count_if(first_run_id = run_id) AS new, count_if(due_by <= as_of) AS overdue,
                     min(since) AS oldest_since
              FROM dispatch_list
              WHERE run_id = (SELECT run_id FROM dispatch_list ORDER BY as_of DESC, run_id DESC LIMIT 1)
              GROUP BY run_id, route_type, coalesce(street_code, route_code), action) b
        LEFT JOIN area_names n ON n.code = b.street_or_route
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
               coalesce(a.district_name, '京外/未知') AS district_name, count(DISTINCT r.person_key) AS people
        FROM run_log l JOIN r ON r.first_as_of <= l.as_of AND (r.release_as_of IS NULL OR r.release_as_of > l.as_of)
        LEFT JOIN person_area a ON a.person_key = r.person_key
        WHERE l.status = 'completed'
        GROUP BY l.run_id, l.as_of, coalesce(a.district_code, 'outside'), coalesce(a.district_name, '京外/未知')
        """,
    ),
}
# Views built in Python (not SQL): name → (doc, what they read). Registered before the SQL views, which may read them.
BUILT: dict[str, tuple[str, set[str]]] = {
    "area_names": (
        "code → kind, name: Beijing districts and streets (GB/T 2260), and communities, hotels and labs as their "
        "reference feeds (communities, facilities) now name them",
        {"communities", "facilities"},
    ),
    "person_area": (
        "person_key → district, street and community codes and names, hotel_id (current persons; no PII)",
        {"persons", "area_names"},
    ),
}


def area_names(spark, communities: DataFrame, facilities: DataFrame, at: datetime | None = None) -> DataFrame:
    """One row per code: kind (district, street, community, hotel, lab, test_site) and name, the reference feeds'
    as known at `at` (default: their latest). A code the feeds do not list is not here: join with a left join and
    fall back to the code."""
    from jobs.reasons_text import beijing_divisions

    divisions = spark.createDataFrame(
        [(code, "district" if len(code) == 6 else "street", name) for code, name in beijing_divisions()],
        "code string, kind string, name string",
    )
    at = at or datetime(9999, 1, 1)
    c = asof.current(asof.as_of(communities, "communities", at))
    f = asof.current(asof.as_of(facilities, "facilities", at))
    return divisions.unionByName(
        c.select(F.col("community_code").alias("code"), F.lit("community").alias("kind"), "name")
    ).unionByName(f.select(F.col("facility_id").alias("code"), F.col("kind"), "name"))


def person_area(persons_bronze: DataFrame, names: DataFrame) -> DataFrame:
    """Current home place of each person in `persons` (hotel guests: the hotel's county), with the places' names."""
    p = asof.current(asof.as_of(persons_bronze, "persons", datetime(9999, 1, 1)))
    area = p.select(
        person_key(F.col("person_id")).alias("person_key"),
        F.coalesce(F.substring("community_code", 1, 6), F.col("hotel_county_code")).alias("district_code"),
        F.substring("community_code", 1, 9).alias("street_code"),
        "community_code",
        "hotel_id",
    )
    for level in ("district", "street", "community"):
        n = names.where(F.col("kind") == level).select(
            F.col("code").alias(f"{level}_code"), F.col("name").alias(f"{level}_name")
        )
        area = area.join(F.broadcast(n), f"{level}_code", "left")
    return area.select(
        "person_key",
        "district_code",
        "district_name",
        "street_code",
        "street_name",
        "community_code",
        "community_name",
        "hotel_id",
    )


def build(spark, name: str) -> DataFrame:
    """A BUILT view over the temporary views of what it reads (jobs.catalog.register made them)."""
    if name == "area_names":
        return area_names(spark, spark.table("communities"), spark.table("facilities"))
    return person_area(spark.table("persons"), spark.table("area_names"))


def dependencies(name: str) -> set[str]:
    """Tables and views a view reads (names that occur in its SQL)."""
    if name in BUILT:
        return BUILT[name][1]
    sql = VIEWS[name][1]
    names = set(schemas.FEEDS) | set(schemas.GOLD) | set(VIEWS) | set(BUILT)
    return {n for n in names if n != name and re.search(rf"\b{n}\b", sql)}
