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
    table = part[part.index("<table>"):part.index("</table>")]
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
def test_report_holds_no_id_number_or_full_phone(page):
    _, html = page
    assert not any(p in html for p in P.values())
    assert not re.search(r"1[3-9]\d{9}", html)
