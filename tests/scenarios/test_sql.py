"""`screening sql`: every table by name, the analyst views, time travel, and the personal-data refusal."""

from __future__ import annotations

import pytest

from jobs import schemas
from jobs.catalog import SqlRefused, check_pii, personal_tables, referenced
from jobs.sql import format_table, parse_versions, run_sql
from tests.dispatch_lake import RUN1, RUN2, scenario_lake
from tests.scenarios import P


def test_bronze_tables_with_ids_names_or_phones_are_personal_and_gold_tables_are_not():
    places = {"venues", "risk_announcements", "border_port_counties", "communities", "facilities"}
    assert personal_tables() == set(schemas.FEEDS) - places | {"rejects"}
    assert {"persons", "phone_registrations", "kit_bindings", "telecom_stays"} <= personal_tables()


def test_sql_refuses_personal_tables_and_file_reads_with_one_clear_line(monkeypatch):
    monkeypatch.delenv("SCREENING_SQL_ALLOW_PII", raising=False)
    with pytest.raises(SqlRefused) as e:
        check_pii("SELECT p.name FROM persons p JOIN popup_status s ON true")
    assert str(e.value).startswith("screening sql: persons hold raw ID numbers, names or phones")
    assert "SCREENING_SQL_ALLOW_PII=1" in str(e.value)
    with pytest.raises(SqlRefused, match="reading files by path is refused"):
        check_pii("SELECT * FROM delta.`/lake/bronze/x`")
    check_pii("SELECT * FROM popup_status JOIN person_area USING (person_key)")  # views hide the personal columns
    monkeypatch.setenv("SCREENING_SQL_ALLOW_PII", "1")
    check_pii("SELECT * FROM persons")


def test_only_the_tables_a_query_names_are_loaded():
    assert referenced(
        "SELECT * FROM popup_reasons r JOIN run_log l ON r.first_run_id = l.run_id",
        ["popup_reasons", "popup_status", "run_log", "persons"],
    ) == {"popup_reasons", "run_log"}
    assert referenced("SELECT * FROM person_area", ["persons", "person_area"]) == {"person_area"}


def test_version_options_apply_to_all_or_one_table():
    assert parse_versions(["3", "popup_reasons=0"]) == {"*": 3, "popup_reasons": 0}


def test_table_output_aligns_chinese_text():
    assert format_table(["区", "n"], [("朝阳区", 3), (None, 12)]).splitlines() == [
        "区     | n",
        "-------+---",
        "朝阳区 | 3",
        "NULL   | 12",
        "(2 rows)",
    ]


# --- bad input: one line, checked before Spark starts where it can be -------------------------------------------
def sql(*argv: str) -> int:
    from jobs.cli import build_parser

    args = build_parser().parse_args(["sql", *argv])
    return args.func(args)


def test_a_bad_as_of_time_stops_before_spark_starts_naming_its_flag(tmp_path, monkeypatch):
    def no_spark(*_):
        raise AssertionError("Spark started")

    monkeypatch.setattr("jobs.sql.get_spark", no_spark)
    with pytest.raises(SystemExit) as e:
        sql("SELECT * FROM run_log", "--lake", str(tmp_path), "--as-of-time", "yesterday")
    assert str(e.value) == "--as-of-time 'yesterday' is not an ISO-8601 timestamp (e.g. 2022-05-15T01:00:00)"


def test_an_unknown_table_is_one_line_naming_it(spark, tmp_path, capsys):
    assert sql("SELECT * FROM popup_reason", "--lake", str(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("screening sql: [TABLE_OR_VIEW_NOT_FOUND] The table or view `popup_reason` cannot be found")
    assert err.endswith("(`screening sql views` lists the tables and views)")


def test_bad_sql_is_one_line_naming_where(spark, tmp_path, capsys):
    assert sql("SELEC * FROM run_log", "--lake", str(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("screening sql: [PARSE_SYNTAX_ERROR] Syntax error at or near 'SELEC'")


# --- on the scenario lake -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lake(spark):
    return scenario_lake(spark)


@pytest.mark.slow
def test_every_table_is_queryable_by_name(spark, lake, monkeypatch):
    monkeypatch.setenv("SCREENING_SQL_ALLOW_PII", "1")
    names = list(schemas.FEEDS) + list(schemas.GOLD)
    query = " UNION ALL ".join(f"SELECT '{n}' AS t, count(*) AS n FROM {n}" for n in names)
    counts = {r["t"]: r["n"] for r in run_sql(spark, lake, query).collect()}
    # persons: the rule stories' and dispatch_lake's 4
    assert counts["persons"] == len(P) + 4 and counts["venues"] == 5 and counts["tickets"] == 6
    assert counts["run_log"] == 2 and counts["grid_dwells"] == 0 and counts["rejects"] == 0
    assert set(counts) == set(names)


@pytest.mark.slow
def test_time_travel_reads_a_table_as_a_past_run_left_it(spark, lake):
    # RUN2 stamped started_at before its first commit, after RUN1's last one
    at = run_sql(spark, lake, f"SELECT started_at FROM run_log WHERE run_id = '{RUN2}'").first()["started_at"]
    then = run_sql(
        spark, lake, "SELECT collect_list(run_id) AS r, collect_list(status) AS s FROM run_log", at=at
    ).first()
    assert (then["r"], then["s"]) == ([RUN1], ["completed"])
    released_then = run_sql(
        spark, lake, "SELECT count(*) AS n FROM release_list", versions={"release_list": 0}
    ).first()["n"]
    released_now = run_sql(spark, lake, f"SELECT count(*) AS n FROM release_list WHERE run_id = '{RUN1}'").first()["n"]
    assert released_then == released_now
    assert run_sql(spark, lake, "SELECT count(*) AS n FROM release_list").first()["n"] > released_then


@pytest.mark.slow
def test_views_answer_the_common_questions(spark, lake):
    by_code = {
        r["popup_code"]: r["released"] for r in run_sql(spark, lake, "SELECT * FROM popup_to_release_by_code").collect()
    }
    assert by_code == {
        r["popup_code"]: r["n"]
        for r in run_sql(
            spark, lake, "SELECT popup_code, count(*) AS n FROM popup_reasons WHERE status = 'released' GROUP BY 1"
        ).collect()
    }
    backlog = run_sql(
        spark, lake, "SELECT * FROM dispatch_backlog_by_street ORDER BY route_type, street_or_route, action"
    ).collect()
    assert {r["run_id"] for r in backlog} == {RUN2}
    assert (
        sum(r["lines"] for r in backlog)
        == run_sql(spark, lake, f"SELECT count(*) AS n FROM dispatch_list WHERE run_id = '{RUN2}'").first()["n"]
    )
    basis = run_sql(spark, lake, "SELECT release_basis, sum(releases) AS n FROM releases_by_basis GROUP BY 1").collect()
    assert sum(r["n"] for r in basis) == run_sql(spark, lake, "SELECT count(*) AS n FROM release_list").first()["n"]
    per_run = {r["run_id"] for r in run_sql(spark, lake, "SELECT * FROM active_by_run_district").collect()}
    assert per_run == {RUN1, RUN2}
    day = run_sql(
        spark,
        lake,
        "SELECT district_code, sum(people) AS n FROM popups_by_district_day "
        "WHERE day = DATE'2022-05-09' GROUP BY 1 ORDER BY 1",
    ).collect()
    assert [r["district_code"] for r in day] == ["110101", "110105", "outside"]
