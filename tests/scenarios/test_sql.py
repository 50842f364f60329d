"""`screening sql`: every table by name, the analyst views, time travel, and the personal-data refusal."""

from __future__ import annotations

import pytest

from jobs import schemas
from jobs.catalog import SqlRefused, check_pii, personal_tables, referenced
from jobs.lake import Lake
from jobs.sql import format_table, parse_versions, run_sql
from tests.dispatch_lake import AS_OF1, EXTRA, RUN1, RUN2, scenario_lake
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


# --- describe, history, several queries -------------------------------------------------------------------------
def test_describe_prints_a_tables_columns_types_and_meaning_from_its_schema_before_spark_starts(
    tmp_path, monkeypatch, capsys
):
    def no_spark(*_):
        raise AssertionError("Spark started")

    monkeypatch.setattr("jobs.sql.get_spark", no_spark)
    assert sql("describe", "popup_status", "grid_dwells", "--lake", str(tmp_path)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "popup_status (gold): Per person with an active reason, or released in the last 14 days."
    assert out[1] == "key: person_key"
    assert out[2].split(" | ")[0].strip() == "column" and out[2].split("|")[-1].strip() == "description"
    rows = {line.split(" | ")[0].strip(): [c.strip() for c in line.split(" | ")] for line in out[4:10]}
    assert rows["display_code"] == ["display_code", "string", "yes", "Most severe active code (policy order)"]
    assert list(rows) == ["person_key", "active_codes", "display_code", "green", "since", "updated_run_id"]
    assert out[10] == "(6 rows)"
    dwells = out.index(next(x for x in out if x.startswith("grid_dwells (bronze):")))
    assert out[dwells + 1].endswith("; partitioned by _known_date")


def test_describe_or_history_of_an_unknown_name_is_one_line_naming_it(tmp_path):
    with pytest.raises(SystemExit) as e:
        sql("describe", "popup_status", "popup_reason", "--lake", str(tmp_path))
    assert (
        str(e.value) == "screening sql describe: no table or view named popup_reason (`screening sql views` lists them)"
    )
    with pytest.raises(SystemExit) as e:
        sql("history", "popups_by_district_day", "--lake", str(tmp_path))
    assert (
        str(e.value)
        == "screening sql history: no table named popups_by_district_day (`screening sql views` lists them)"
    )
    with pytest.raises(SystemExit) as e:
        sql("history", "--lake", str(tmp_path))
    assert str(e.value) == "screening sql history: name a table, e.g. screening sql history popup_reasons"


def _commit(log, version: int, info: dict) -> None:
    import json

    (log / f"{version:020d}.json").write_text(json.dumps({"commitInfo": info}) + "\n" + '{"add": {}}\n')


def test_history_lists_each_commit_newest_first_with_its_run_and_row_counts(tmp_path, capsys):
    log = tmp_path / "gold" / "popup_reasons" / "_delta_log"
    log.mkdir(parents=True)
    ms = 1_652_547_600_000  # 2022-05-15 01:00 Beijing time
    _commit(log, 0, {"timestamp": ms, "operation": "WRITE", "operationMetrics": {"numOutputRows": "7"}})
    merge = {
        "numTargetRowsInserted": "2",
        "numTargetRowsUpdated": "3",
        "numTargetRowsDeleted": "0",
        "numOutputRows": "9",
    }
    _commit(
        log,
        1,
        {
            "timestamp": ms + 3_600_000,
            "operation": "MERGE",
            "operationMetrics": merge,
            "userMetadata": "hourly-x publish",
        },
    )
    _commit(log, 2, {"timestamp": ms + 7_200_000, "operation": "OPTIMIZE", "operationMetrics": {"numOutputRows": "9"}})
    assert sql("history", "popup_reasons", "--lake", str(tmp_path)) == 0
    assert capsys.readouterr().out.splitlines() == [
        "popup_reasons: 3 commits in its log, newest first",
        "version | committed_at        | run              | operation | inserted | updated | deleted",
        "--------+---------------------+------------------+-----------+----------+---------+--------",
        "2       | 2022-05-15 03:00:00 | NULL             | OPTIMIZE  | NULL     | NULL    | NULL",
        "1       | 2022-05-15 02:00:00 | hourly-x publish | MERGE     | 2        | 3       | 0",
        "0       | 2022-05-15 01:00:00 | NULL             | WRITE     | 7        | NULL    | NULL",
        "(3 rows)",
    ]
    assert sql("history", "release_list", "--lake", str(tmp_path)) == 0
    assert capsys.readouterr().out == f"release_list: no table yet in {tmp_path.resolve()} (no run has written it)\n"


def test_each_commit_of_a_run_names_the_run_and_stage_and_later_commits_do_not(spark, tmp_path):
    from jobs.catalog import history
    from jobs.run import COMMIT_STAMP, execute
    from jobs.runlog import RunContext
    from tests.dispatch_lake import build_landing

    build_landing(tmp_path / "landing")
    lake = Lake(tmp_path / "lake")
    ctx = RunContext(spark, lake, str(tmp_path / "landing"), AS_OF1, "nightly", log=lambda *_: None)
    assert execute(ctx, ["ingest"]) == 0
    runs = {r[2] for r in history(lake.bronze("persons"))[1]}
    assert runs == {f"{RUN1} ingest"}
    assert spark.conf.get(COMMIT_STAMP, None) is None
    spark.createDataFrame([(1,)], "x int").write.format("delta").save(str(tmp_path / "other"))
    assert [r[2] for r in history(str(tmp_path / "other"))[1]] == [None]


def test_several_queries_in_one_call_answer_in_turn_and_a_bad_one_does_not_stop_the_rest(spark, lake, capsys):
    code = sql(
        "SELECT count(*) AS runs FROM run_log",
        "SELECT nonsense FROM run_log",
        "SELECT run_id FROM run_log ORDER BY run_id",
        "--lake",
        str(lake.root),
    )
    out, err = capsys.readouterr()
    assert code == 2
    assert out.splitlines() == [
        "-- SELECT count(*) AS runs FROM run_log",
        "runs",
        "----",
        "2",
        "(1 row)",
        "",
        "-- SELECT run_id FROM run_log ORDER BY run_id",
        "run_id",
        "-----------------------",
        RUN1,
        RUN2,
        "(2 rows)",
    ]
    assert err.startswith("screening sql (query 2): [UNRESOLVED_COLUMN")
    assert len(err.strip().splitlines()) == 1


def test_views_lists_every_table_and_view_with_its_columns(spark, lake, capsys):
    assert sql("views", "--lake", str(lake.root)) == 0
    out = capsys.readouterr().out.splitlines()
    at = out.index("  popup_status")
    assert out[at + 1] == "      person_key, active_codes, display_code, green, since, updated_run_id"
    view = out.index(next(x for x in out if x.startswith("  popup_to_release_by_code: ")))
    assert out[view + 1] == "      popup_code, released, median_hours, p90_hours"
    assert out.index("views:") < view


@pytest.mark.slow
def test_views_name_districts_streets_communities_hotels_and_labs(spark, lake):
    from jobs.keys import person_key_py as person_key

    area = {r["person_key"]: r.asDict() for r in run_sql(spark, lake, "SELECT * FROM person_area").collect()}
    resident = area[person_key(P["quiet"])]  # the rule stories' people live in 110105001001
    assert (resident["district_name"], resident["street_name"], resident["community_name"]) == (
        "朝阳区",
        "建外街道",
        "光华里北社区",  # the community's name now, after its renaming
    )
    other = area[person_key(EXTRA["undeclared"])]
    assert (other["street_name"], other["community_name"]) == ("朝外街道", None)  # not in the communities feed
    names = {
        r["street_or_route"]: r["name"]
        for r in run_sql(spark, lake, "SELECT street_or_route, name FROM dispatch_backlog_by_street").collect()
    }
    assert names["110105001"] == "建外街道" and names["110105002"] == "朝外街道"
    assert names["lab2"] == "lab2"  # not in the facilities feed: its code
    listed = {r["code"]: (r["kind"], r["name"]) for r in run_sql(spark, lake, "SELECT * FROM area_names").collect()}
    assert listed["lab1"] == ("lab", "北京市朝阳区疾病预防控制中心实验室")
    assert listed["HTL-7"] == ("hotel", "长青大酒店(交道口店)")
    assert listed["110101"] == ("district", "东城区") and "lab2" not in listed
    days = run_sql(
        spark, lake, "SELECT district_code, district_name FROM popups_by_district_day WHERE day = DATE'2022-05-09'"
    ).collect()
    assert {(r[0], r[1]) for r in days} == {("110101", "东城区"), ("110105", "朝阳区"), ("outside", "京外/未知")}


def test_describe_a_view_gives_its_columns_from_the_schemas_whatever_the_lake_holds(spark, tmp_path, capsys):
    assert sql("describe", "person_area", "--lake", str(tmp_path)) == 0  # no lake there at all
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("person_area (view): person_key → district")
    assert [line.split(" | ")[0].strip() for line in out[3:-1]] == [
        "person_key",
        "district_code",
        "district_name",
        "street_code",
        "street_name",
        "community_code",
        "community_name",
        "hotel_id",
    ]
