"""Data quality end to end, in-process on a tiny landing set: GX suites on each run, results in <lake>/dq/results,
Data Docs under <lake>/dq/docs, and gates that halt a run on a broken delivery without touching the gold tables
until an operator overrides them (recorded in run_log).

One lake for the module: a normal run R1 (2022-05-10), three earlier completed runs written into run_log as
history (what the gates compare with), then a broken delivery for R2 (2022-05-11): the risk-announcement feed
does not arrive (feed_empty), the telecom feed comes twice under new record ids (feed_suite) and puts five
people in a case county (assign_volume against a history of one a day). R2 halts at dq_feeds, then (feed gates
overridden) at dq_results, then (all overridden) publishes.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest

from jobs import schemas
from jobs.dq import gx
from jobs.lake import Lake
from jobs.run import EXIT_HALTED, run
from tests.landing import resident_id, write_feed

pytestmark = pytest.mark.slow

R1, R2 = datetime(2022, 5, 10), datetime(2022, 5, 11)
R1_ID, R2_ID = "nightly-20220510T000000", "nightly-20220511T000000"
PUBLISHED = ("popup_reasons", "popup_status", "assignment_list", "release_list")
PEOPLE = [resident_id(f"1101051980010100{i}") for i in range(6)]
PHONES = [f"1391111000{i}" for i in range(6)]
CASE_COUNTY = "140105"
PATIENTS = [resident_id(f"1401051970010100{i}") for i in range(2)]  # case reports carry the patient's ID

GATES = """
[history]
runs = 7
min_runs = 3
[reject_share]
max_share = 0.05
min_rows = 5
[feed_empty]
expected_after = 3
# one risk announcement a night is this tiny lake's normal delivery (gates.toml's default floor is 20 rows)
min_recent_rows = 1
never_expected = ["border_port_counties", "inbound_entries", "venues", "persons", "kit_bindings", "phone_registrations"]
[feed_volume]
low = 0.0
high = 1000.0
min_median = 1
[assign_volume]
high = 2.0
min_people = 3
[release_volume]
high = 5.0
min_people = 50
[release_share]
max_share = 0.6
min_active = 50
"""


def stay(rid: str, phone: str, county: str, day: str) -> dict:
    return {
        "record_id": rid,
        "phone": phone,
        "county_code": county,
        "first_seen": f"{day}T08:00:00",
        "last_seen": f"{day}T20:00:00",
        "reported_at": f"{day}T21:00:00",
    }


def history_rows(lake: Lake, spark) -> None:
    """Three completed nightly runs before R1, each delivering the feeds R1 delivers, popping up one person."""
    schema = schemas.gold_schema("run_log")
    rows = []
    for d in (7, 8, 9):
        as_of = datetime(2022, 5, d)
        rows.append(
            {
                "run_id": f"nightly-202205{d:02d}T000000",
                "mode": "nightly",
                "as_of": as_of,
                "started_at": as_of,
                "finished_at": as_of + timedelta(minutes=5),
                "status": "completed",
                "policy_version": "2022-01-v1",
                "input_versions": "{}",
                "rows_in": json.dumps({"telecom_stays": 3, "risk_announcements": 1, "case_reports": 1}),
                "rows_rejected": "{}",
                "rows_out": "{}",
                "dq_summary": json.dumps({"people_assigned": 1, "people_released": 0}),
                "overrides": None,
            }
        )
    lake.merge(spark, lake.gold("run_log"), schema, spark.createDataFrame(rows, schema), ["run_id"])


def versions(spark, lake: Lake) -> dict:
    return {t: lake.version(spark, lake.gold(t)) for t in PUBLISHED}


def run_log(spark, lake: Lake, run_id: str) -> dict:
    (row,) = lake.read_gold(spark, "run_log").where(f"run_id = '{run_id}'").collect()
    return row.asDict()


@pytest.fixture(scope="module")
def story(spark, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("dq")
    gates_file = root / "gates.toml"
    gates_file.write_text(GATES, encoding="utf-8")
    mp.setenv("SCREENING_DQ_GATES", str(gates_file))
    mp.setenv("SCREENING_OPERATOR", "ops-alice")
    mp.setenv("SCREENING_DQ_SUITES", "1")
    conf = {"spark.sql.shuffle.partitions": "1", "spark.sql.adaptive.enabled": "false"}
    old = {k: spark.conf.get(k) for k in conf}
    for k, v in conf.items():
        spark.conf.set(k, v)

    land, lake = root / "landing", Lake(root / "lake")
    write_feed(
        land,
        "kit_bindings",
        [
            {"person_id": p, "phone": ph, "bound_at": "2021-01-01T00:00:00"}
            for p, ph in zip(PEOPLE, PHONES, strict=True)
        ],
        name="day1.csv",
    )
    write_feed(
        land,
        "telecom_stays",
        [
            stay("s0", PHONES[0], CASE_COUNTY, "2022-05-08"),
            stay("s1", PHONES[1], "110105", "2022-05-08"),
            stay("s2", PHONES[2], "110105", "2022-05-08"),
        ],
        name="day1.csv",
    )
    write_feed(
        land,
        "case_reports",
        [
            {
                "case_id": "c1",
                "person_id": PATIENTS[0],
                "county_code": CASE_COUNTY,
                "case_type": "local",
                "case_date": "2022-05-08",
                "reported_at": "2022-05-09T08:00:00",
            }
        ],
        name="day1.csv",
    )
    write_feed(
        land,
        "risk_announcements",
        [
            {
                "announcement_id": "a1",
                "area_code": "110105",
                "building_id": None,
                "risk_level": "low",
                "effective_from": "2022-05-09T00:00:00",
                "announced_at": "2022-05-09T09:00:00",
            }
        ],
        name="day1.csv",
    )
    lines: list[str] = []
    log = lines.append
    s = SimpleNamespace(root=root, land=land, lake=lake, lines=lines)
    s.r1 = run(str(land), str(lake.root), R1, log=log)
    history_rows(lake, spark)
    s.v_before = versions(spark, lake)

    # R2's delivery: no risk announcements; telecom puts five people in the case county, each stay twice
    stays = [stay(f"s{i}", PHONES[i], CASE_COUNTY, "2022-05-10") for i in range(1, 6)]
    stays += [dict(r, record_id=r["record_id"] + "-resent") for r in stays]
    write_feed(land, "telecom_stays", stays, name="day2.csv")
    write_feed(
        land,
        "case_reports",
        [
            {
                "case_id": "c2",
                "person_id": PATIENTS[1],
                "county_code": "130102",
                "case_type": "local",
                "case_date": "2022-05-10",
                "reported_at": "2022-05-10T08:00:00",
            }
        ],
        name="day2.csv",
    )
    n = len(lines)
    s.r2a = run(str(land), str(lake.root), R2, log=log)
    s.lines_a = lines[n:]
    s.log_a, s.v_a = run_log(spark, lake, R2_ID), versions(spark, lake)
    s.lists_a = lake.read_gold(spark, "assignment_list").where(f"run_id = '{R2_ID}'").count()

    n = len(lines)
    s.r2b = run(
        str(land),
        str(lake.root),
        R2,
        log=log,
        overrides={"feed_empty": "announcements are published weekly now", "feed_suite": "resend confirmed"},
    )
    s.lines_b = lines[n:]
    s.log_b, s.v_b = run_log(spark, lake, R2_ID), versions(spark, lake)
    s.lists_b = lake.read_gold(spark, "assignment_list").where(f"run_id = '{R2_ID}'").count()

    n = len(lines)
    s.r2c = run(
        str(land),
        str(lake.root),
        R2,
        log=log,
        overrides={
            "feed_empty": "announcements are published weekly now",
            "feed_suite": "resend confirmed",
            "assign_volume": "outbreak in 140105 confirmed by the CDC",
        },
    )
    s.lines_c = lines[n:]
    s.log_c = run_log(spark, lake, R2_ID)
    yield s
    for k, v in old.items():
        spark.conf.set(k, v)
    mp.undo()


def test_normal_run_passes_its_suites_and_prints_the_docs_path(spark, story):
    assert story.r1 == 0
    text = "\n".join(story.lines)
    assert f"data docs: {story.lake.root / 'dq' / 'docs' / 'index.html'}" in text
    # feed.{kit_bindings,telecom_stays,case_reports,risk_announcements}, gold.{popup_reasons,popup_status,run_lists}
    assert "data quality: 7 suites, 7 passed; " in text
    dq = json.loads(run_log(spark, story.lake, R1_ID)["dq_summary"])
    assert dq["suites_failed"] == [] and dq["people_assigned"] == 1
    assert [m for part in ("feeds", "results") for g in dq[part]["gates"].values() for m in g["tripped"]] == []


def test_expected_feed_empty_and_duplicated_delivery_halt_before_screening(spark, story):
    assert story.r2a == EXIT_HALTED
    line = story.lines_a[-1]
    assert line.startswith(f"run {R2_ID} halted by gate feed_empty: risk_announcements: 0 rows loaded")
    assert "--override-gate feed_empty --reason TEXT" in line
    log = story.log_a
    assert log["status"] == "halted"
    dq = json.loads(log["dq_summary"])
    assert dq["halted_by"]["gate"] == "feed_empty"
    assert [m.split(":")[0] for m in dq["feeds"]["gates"]["feed_suite"]["tripped"]] == ["feed.telecom_stays"]
    # the halted run published nothing: gold Delta versions as before, no list rows for the run
    assert story.v_a == story.v_before and story.lists_a == 0


def test_mass_popup_halts_after_screening_and_overrides_are_recorded(spark, story):
    assert story.r2b == EXIT_HALTED
    dq = json.loads(story.log_b["dq_summary"])
    assert dq["halted_by"]["gate"] == "assign_volume"
    assert dq["halted_by"]["people"] == 5 and dq["halted_by"]["median"] == 1
    assert story.lines_b[-1].startswith(f"run {R2_ID} halted by gate assign_volume: would assign 5 people")
    assert story.v_b == story.v_before and story.lists_b == 0
    over = json.loads(story.log_b["overrides"])
    assert [(o["gate"], o["by"], o["reason"]) for o in over] == [
        ("feed_empty", "ops-alice", "announcements are published weekly now"),
        ("feed_suite", "ops-alice", "resend confirmed"),
    ]
    assert "risk_announcements: 0 rows loaded" in over[0]["tripped"]


def test_run_with_every_tripped_gate_overridden_publishes(spark, story):
    assert story.r2c == 0
    log = story.log_c
    assert log["status"] == "completed"
    assert {o["gate"] for o in json.loads(log["overrides"])} == {"feed_empty", "feed_suite", "assign_volume"}
    assert all(o["by"] == "ops-alice" for o in json.loads(log["overrides"]))
    assert story.lake.read_gold(spark, "assignment_list").where(f"run_id = '{R2_ID}'").count() >= 5
    dq = json.loads(log["dq_summary"])
    assert "halted_by" not in dq and dq["people_assigned"] == 5 and dq["suites_failed"] == ["feed.telecom_stays"]


def test_results_table_holds_one_row_per_expectation_of_each_suite_run(spark, story):
    rows = [r.asDict() for r in story.lake.read_gold(spark, "dq_results").collect()]
    specs = gx.suite_specs()["gold"]
    expected = {
        R1_ID: {
            **{
                f"feed.{f}": len(gx.feed_expectation_specs(f))
                for f in ("kit_bindings", "telecom_stays", "case_reports", "risk_announcements")
            }
        },
        R2_ID: {**{f"feed.{f}": len(gx.feed_expectation_specs(f)) for f in ("telecom_stays", "case_reports")}},
    }
    for run_id in expected:
        expected[run_id].update(
            {s: len(specs[s]["expect"]) for s in ("gold.popup_reasons", "gold.popup_status", "gold.run_lists")}
        )
    got: dict[str, dict[str, int]] = {}
    for r in rows:
        got.setdefault(r["run_id"], {}).setdefault(r["suite"], 0)
        got[r["run_id"]][r["suite"]] += 1
    assert got == expected  # re-runs of R2's stages replaced their rows
    failed = [(r["run_id"], r["suite"], r["label"], r["gate"]) for r in rows if not r["success"]]
    assert failed == [
        (
            R2_ID,
            "feed.telecom_stays",
            "compound_columns_to_be_unique(phone,county_code,first_seen,last_seen,_source_known_at)",
            True,
        )
    ]
    (dup,) = [r for r in rows if not r["success"]]
    assert json.loads(dup["observed_value"])["unexpected_count"] == 10 and dup["element_count"] == 10
    assert all(r["exception"] is None for r in rows)


def test_data_docs_show_every_suite(story):
    docs = story.lake.root / "dq" / "docs"
    index = (docs / "index.html").read_text(encoding="utf-8")
    for suite in (
        "feed.telecom_stays",
        "feed.case_reports",
        "gold.popup_reasons",
        "gold.popup_status",
        "gold.run_lists",
    ):
        assert suite in index, suite
        parts = suite.split(".")  # GX files suite "feed.x" as feed/x
        page = next(docs.joinpath("validations", *parts).rglob("*.html")).read_text(encoding="utf-8")
        assert 'src="../../../../../static/vendor/jquery.min.js"' in page, suite  # works offline
        assert '<script src="https://' not in page and "integrity=" not in page, suite
        assert list(docs.joinpath("validations", *parts).rglob("*.html")), suite
        assert docs.joinpath("expectations", *parts).with_suffix(".html").is_file(), suite


def test_data_docs_pages_use_the_vendored_assets_and_call_no_one(tmp_path):
    page = tmp_path / "validations" / "feed" / "x" / "p.html"
    page.parent.mkdir(parents=True)
    page.write_text(
        '<html><head><link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>'
        '<script src="https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js" integrity="sha384-x" '
        'crossorigin="anonymous"></script><script src="https://cdn.jsdelivr.net/npm/vega@5"></script></head><body>'
        '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1&dataContextId=2">'
        '<a href="https://greatexpectations.io">GX</a></body></html>',
        encoding="utf-8",
    )
    assert gx.localize_docs(tmp_path, 0) == 1
    text = page.read_text(encoding="utf-8")
    assert '<link rel="stylesheet" href="../../../static/vendor/bootstrap.min.css"/>' in text
    assert '<script src="../../../static/vendor/popper.min.js"></script>' in text
    assert '<img src="../../../static/images/logo-long.png">' in text
    assert "vega" not in text and "amazonaws" not in text and 'href="../../../static/vendor/gx-icons.css"' in text
    assert {p.name for p in (tmp_path / "static" / "vendor").iterdir()} >= {
        "jquery.min.js",
        "bootstrap-table.min.js",
        "gx-icons.css",
    }


def test_data_docs_say_which_expectations_gate_the_run_and_where_the_verdicts_are(story):
    docs = story.lake.root / "dq" / "docs"
    suite = docs.joinpath("expectations", "feed", "telecom_stays.html").read_text(encoding="utf-8")
    n = len(gx.feed_expectation_specs("telecom_stays"))
    gating = sum(1 for s in gx.feed_expectation_specs("telecom_stays") if s.get("gate"))
    assert f"{gating} of {n} expectations gate the run" in suite
    assert "run report" in suite and "run_log.dq_summary" in suite
    # each expectation's notes say whether it halts the run
    assert suite.count("<strong>门控 Gating</strong>: a failure halts the run") == gating
    assert suite.count("告警 Warning only: a failure is recorded and the run goes on.") == n - gating


def test_maintenance_keeps_data_quality_to_the_audit_window(spark, story, tmp_path):
    import shutil

    from jobs import dq
    from jobs.runlog import RunContext

    lake = Lake(tmp_path / "lake")
    shutil.copytree(story.lake.root, lake.root)
    results = lambda: {  # noqa: E731
        r["run_id"]: r["count"] for r in lake.read_gold(spark, "dq_results").groupBy("run_id").count().collect()
    }
    before = results()
    assert set(before) == {R1_ID, R2_ID}
    lines: list[str] = []
    ctx = RunContext(spark, lake, str(story.land), R1 + timedelta(days=30, hours=1), "nightly", log=lines.append)
    removed = dq.prune(ctx, 30)  # R1 is 30 days and an hour before: out of the window; R2 is inside it
    assert results() == {R2_ID: before[R2_ID]}
    docs = lake.root / "dq" / "docs"
    assert not list(docs.glob(f"validations/*/*/{R1_ID}")) and list(docs.glob(f"validations/*/*/{R2_ID}"))
    assert not list(lake.root.glob(f"dq/gx/uncommitted/validations/*/*/{R1_ID}"))
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert R1_ID not in index and R2_ID in index
    assert removed == {"result_rows": before[R1_ID], "suite_runs": removed["suite_runs"]}
    assert removed["suite_runs"] == 2 * len(list(story.lake.root.glob(f"dq/docs/validations/*/*/{R1_ID}")))
    assert lines == [
        f"data quality: kept to the audit window (30 days): {before[R1_ID]} expectation result rows and the Data "
        f"Docs of {removed['suite_runs']} suite runs from before 2022-05-10 01:00 removed"
    ]
