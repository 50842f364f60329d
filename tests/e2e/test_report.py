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
