"""The nightly run report: one self-contained HTML page with the expected sections and numbers."""

from __future__ import annotations

import re

import pytest

from tests.dispatch_lake import RUN1, RUN2, scenario_lake
from tests.scenarios import P


@pytest.fixture(scope="module")
def page(spark):
    lake = scenario_lake(spark)
    path = lake.root / "reports" / f"{RUN2}.html"
    return path, path.read_text(encoding="utf-8")


def cells(page: str, section: str) -> list[list[str]]:
    """Rows of the first table after the section heading `id`."""
    part = page.split(f'<h2 id="{section}">', 1)[1].split("<h2", 1)[0]
    table = part[part.index("<table>") : part.index("</table>")]
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", table)]


@pytest.mark.slow
def test_each_nightly_run_writes_its_report(page, spark):
    path, _ = page
    assert sorted(p.name for p in path.parent.iterdir()) == [f"{RUN1}.html", f"{RUN2}.html"]


@pytest.mark.slow
def test_report_is_self_contained_with_every_section(page):
    _, html = page
    for sid in ("active", "assigned", "released", "districts", "median", "dq", "rejects", "dispatch"):
        assert f'<h2 id="{sid}">' in html
    assert html.count("<svg") == 2  # districts over runs, median hours
    assert not re.search(r"(src|href)=\"?https?:", html)  # opens without a network
    links = re.findall(r'href="([^"#][^"]*)"', html)  # not the charts' own #ids
    assert links == [f"../exports/dispatch/{RUN2}/index.xlsx", f"../exports/dispatch/{RUN2}/", "../dq/docs/index.html"]


@pytest.mark.slow
def test_report_numbers_match_the_gold_tables(page, spark):
    _, html = page
    lake = scenario_lake(spark)
    gold = lake.read_gold(spark, "popup_reasons")
    active = {
        (r["popup_code"], r["reason_type"]): r["count"]
        for r in gold.where("status = 'active'").groupBy("popup_code", "reason_type").count().collect()
    }
    got = {(r[2], int(r[3])) for r in cells(html, "active")[1:]}
    assert got == {(t, n) for (_, t), n in active.items()}
    released = lake.read_gold(spark, "release_list").where(f"run_id = '{RUN2}'").count()
    assert f"<p>合计 {released} 条原因解除 (reasons released).</p>" in html
    from jobs.reasons_text import ACTION_ZH

    dispatch = {tuple(r[2:5]) for r in cells(html, "dispatch")[1:]}
    lines = lake.read_gold(spark, "dispatch_list").where(f"run_id = '{RUN2}'").collect()
    per_street: dict[tuple, int] = {}
    for x in lines:  # residents are counted per street, other routes per route code
        k = (x["street_code"] or x["route_code"], ACTION_ZH[x["action"]])
        per_street[k] = per_street.get(k, 0) + 1
    assert dispatch == {(code, action, str(n)) for (code, action), n in per_street.items()}
    # n-late's result arrived before RUN2 (lab1 is done); lab2 never uploads
    assert [x["route_code"] for x in lines if x["route_type"] == "lab"] == ["lab2"]


def strip(page: str) -> dict[str, tuple[str, str]]:
    """The summary strip's cards: label → (value, note)."""
    part = page.split('<div class="strip">', 1)[1].split("</p>", 1)[0]
    cards = re.findall(r'<div class="v">(.*?)</div><div class="l">(.*?)</div><div class="muted">(.*?)</div>', part)
    return {label: (value, note) for value, label, note in cards}


@pytest.mark.slow
def test_report_opens_with_people_reasons_and_lines_each_labelled(page, spark):
    _, html = page
    lake = scenario_lake(spark)
    gold = lambda t: lake.read_gold(spark, t)  # noqa: E731
    assigned = gold("assignment_list").where(f"run_id = '{RUN2}'")
    released = gold("release_list").where(f"run_id = '{RUN2}'")
    lines = gold("dispatch_list").where(f"run_id = '{RUN2}'")
    people = lambda df: df.select("person_key").distinct().count()  # noqa: E731
    cards = strip(html)
    assert cards["人 有生效弹窗 (people with an active popup)"][0] == str(
        people(gold("popup_reasons").where("status = 'active'"))
    )
    assert cards["人 本次新增原因 (people assigned)"] == (str(people(assigned)), f"{assigned.count()} 条原因 reasons")
    assert cards["人 本次解除原因 (people released)"] == (str(people(released)), f"{released.count()} 条原因 reasons")
    assert cards["人 转为绿码 (people green again)"][0] == str(people(released.where("person_green")))
    assert cards["条 派单 (dispatch lines)"][0] == str(lines.count())
    assert cards["条 超期 (overdue lines)"][0] == str(lines.where("due_by <= as_of").count())
    assert cards["数据质量 (data quality)"] == ("未运行", "no suites ran")  # this lake's runs skip the suites
    assert html.index('<div class="strip">') < html.index('<h2 id="active">')


@pytest.mark.slow
def test_report_holds_no_id_number_or_full_phone(page):
    _, html = page
    assert not any(p in html for p in P.values())
    assert not re.search(r"1[3-9]\d{9}", html)


def test_district_chart_of_runs_with_no_active_popup_says_so_without_a_warning():
    import warnings

    from jobs.report import district_chart

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns on a legend of no lines
        svg = district_chart({}, ["nightly-20220512T000000"])
    assert "no active popups in these runs" in svg


def test_district_chart_of_a_single_run_draws_bars_not_one_point_lines():
    from jobs.report import district_chart

    svg = district_chart(
        {"110105": [("nightly-20220512T000000", 7)], "outside": [("nightly-20220512T000000", 2)]},
        ["nightly-20220512T000000"],
    )
    assert "朝阳区" in svg and "京外/未知" in svg and "people with an active popup (nightly-20220512T000000)" in svg


def test_data_quality_reads_as_tables_and_names_the_gate_that_halted():
    from jobs.report import dq_tables

    dq = {
        "halted_by": {"gate": "feed_volume", "message": "grid_dwells: 10 rows, 1% of the usual"},
        "late_rows": 3,
        "feeds": {
            "suites": {"feed.grid_dwells": {"success": False, "expectations": 4, "failed": 1, "failed_gating": 1}},
            "gates": {"feed_volume": {"checked": 18, "tripped": ["grid_dwells: 10 rows"], "no_history": 0}},
            "rows_loaded": 10,
        },
    }
    out = "\n".join(dq_tables(dq))
    assert out.startswith('<p class="bad">熔断 halted: feed_volume</p>')
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", out)]
    assert ["载入数据 feeds", "feed.grid_dwells", "未通过", "4", "1", "1"] in rows
    assert ["载入数据 feeds", "feed_volume", "18", "0", "grid_dwells: 10 rows"] in rows
    assert ["feeds.rows_loaded", "10"] in rows
    assert ["late_rows: 条 迟到记录 (rows known before the previous run&#x27;s as-of, delivered late)", "3"] in rows
