"""Work orders (jobs/workorders.py) from hand-made dispatch lines: what a recipient reads (headers, 序号, masked IDs,
无登记电话, names from the reference feeds or the code, 新增/持续, overdue), that a file holds only its recipient's
lines, how the XLSX prints (page setup, title and header rows, autofilter, date cells, drop-downs), and the index."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta

import pytest

from jobs.workorders import Names, cells, columns, safe_cell, write

RUN, T = "nightly-20220512T010000", datetime(2022, 5, 12, 1)
FIRST, T1 = "nightly-20220510T010000", datetime(2022, 5, 10, 1)
NAMES = Names(
    communities={"110105001001": {"name": "光华里社区", "office_phone": "15100000001"}},
    facilities={
        "HTL-7": {
            "kind": "hotel",
            "name": "长青大酒店(交道口店)",
            "county_code": "110101",
            "contact_phone": "15100000002",
        },
        "lab1": {"kind": "lab", "name": "朝阳区疾控中心实验室", "county_code": "110105", "contact_phone": None},
    },
)
WHY = "您于 5月8日 10:00 在药店 ph1 购买退热类药品"


def line(key: str, route_type: str, route_code: str, **kw) -> dict:
    """A dispatch_list row of this run with what the work order adds (name, masked ID, phone); new unless `first`."""
    first = kw.pop("first", None)
    row = dict(
        run_id=RUN,
        as_of=T,
        route_type=route_type,
        route_code=route_code,
        street_code=route_code[:9] if route_type == "community" else None,
        hotel_id=None,
        person_key=key,
        action="remind_test",
        display_code="4",
        since=datetime(2022, 5, 8, 10),
        why=WHY,
        first_dispatched_at=first[1] if first else T,
        first_run_id=first[0] if first else RUN,
        due_by=first[1].replace(day=first[1].day + 1) if first else datetime(2022, 5, 13, 1),
        name=f"姓名{key}",
        id_masked=f"110105********{key}",
        phone=f"1380000{key}",
    )
    return row | kw


LINES = [
    line("0001", "community", "110105001001"),
    line("0002", "community", "110105001001", phone=None, first=(FIRST, T1), action="verify_report", display_code="3"),
    line("0003", "community", "110105001001", name=None),  # not in persons
    line("0004", "community", "110105002001"),  # another street; the feeds do not name it
    line("0005", "hotel", "110101", hotel_id="HTL-7"),
    line("0006", "hotel", "110105", hotel_id="HTL-9", name="=HYPERLINK(1)"),
    line("0007", "outside_beijing", "12345", display_code=None),
    line("0008", "lab", "lab1", action="chase_upload", first=(FIRST, T1)),
    line("0009", "lab", "lab2", action="chase_upload"),
]
COMMUNITY = "community/110105001_建外街道/110105001001_光华里社区"
FILES = {
    COMMUNITY: ["0002", "0001", "0003"],  # the most urgent first
    "community/110105002_朝外街道/110105002001": ["0004"],
    "hotel/110101_东城区文旅局": ["0005"],
    "hotel/110105_朝阳区文旅局": ["0006"],
    "outside_beijing/12345_12345市民服务热线": ["0007"],
    "lab/lab1_朝阳区疾控中心实验室": ["0008"],
    "lab/lab2": ["0009"],
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("orders") / RUN
    written = write(out, list(reversed(LINES)), NAMES, RUN, T)
    assert sorted(p.relative_to(out).as_posix() for p in written) == sorted(
        [f"{f}.{x}" for f in FILES for x in ("csv", "xlsx")] + ["index.csv", "index.xlsx"]
    )
    return out


def read_csv(path) -> list[dict]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel opens it as UTF-8
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def test_a_community_work_order_reads_in_chinese_one_numbered_line_a_person(folder):
    rows = read_csv(folder / f"{COMMUNITY}.csv")
    assert list(rows[0]) == [
        "序号",
        "姓名",
        "身份证号",
        "联系电话",
        "健康宝弹窗",
        "处置要求",
        "原因",
        "弹窗时间",
        "首次派单",
        "新增/持续",
        "完成时限",
        "超期",
        "核查结果",
        "核查人",
        "核查时间",
        "备注",
    ]
    got = [
        (
            r["序号"],
            r["姓名"],
            r["身份证号"],
            r["联系电话"],
            r["健康宝弹窗"],
            r["处置要求"],
            r["首次派单"],
            r["新增/持续"],
        )
        + (r["完成时限"], r["超期"])
        for r in rows
    ]
    assert got == [  # the most urgent first: the overdue line, then by due time
        ("1", "姓名0002", "110105********0002", "无登记电话", "弹窗③", "核实并上报", "2022-05-10 01:00", "持续")
        + ("2022-05-11 01:00", "已超期"),
        ("2", "姓名0001", "110105********0001", "13800000001", "弹窗④", "提醒核酸检测", "2022-05-12 01:00", "新增")
        + ("2022-05-13 01:00", ""),
        ("3", "未登记", "110105********0003", "13800000003", "弹窗④", "提醒核酸检测", "2022-05-12 01:00", "新增")
        + ("2022-05-13 01:00", ""),
    ]
    assert {(r["原因"], r["弹窗时间"]) for r in rows} == {(WHY, "2022-05-08 10:00")}
    assert {(r["核查结果"], r["核查人"], r["核查时间"], r["备注"]) for r in rows} == {("", "", "", "")}


def test_each_recipient_gets_only_its_own_lines(folder):
    for path, keys in FILES.items():
        assert [r["身份证号"][-4:] for r in read_csv(folder / f"{path}.csv")] == keys, path


def test_recipients_hotels_and_labs_are_named_from_the_reference_feeds_else_by_code(folder):
    from openpyxl import load_workbook

    def title(path):
        return load_workbook(folder / f"{path}.xlsx").active["A1"].value

    assert title(COMMUNITY) == (
        f"朝阳区建外街道 光华里社区(110105001001) 派单工作单 · 运行 {RUN} · 数据截至 2022-05-12 01:00 · "
        "共 3 条:新增 2,持续 1,其中超期 1"
    )
    assert title("community/110105002_朝外街道/110105002001").startswith("朝阳区朝外街道 社区(110105002001) 派单工作单")
    assert title("hotel/110101_东城区文旅局").startswith("东城区文旅局 派单工作单")
    assert title("lab/lab1_朝阳区疾控中心实验室").startswith("朝阳区疾控中心实验室(lab1) 派单工作单")
    assert title("lab/lab2").startswith("检测机构(lab2) 派单工作单")
    hotels = {
        r["身份证号"][-4:]: (r["姓名"], r["酒店"], r["酒店电话"])
        for f in ("hotel/110101_东城区文旅局", "hotel/110105_朝阳区文旅局")
        for r in read_csv(folder / f"{f}.csv")
    }
    assert hotels == {
        "0005": ("姓名0005", "长青大酒店(交道口店)", "15100000002"),
        "0006": ("'=HYPERLINK(1)", "HTL-9", ""),
    }
    assert [r["采样时间"] for r in read_csv(folder / "lab/lab2.csv")] == ["2022-05-08 10:00"]
    assert [r["健康宝弹窗"] for r in read_csv(folder / "outside_beijing/12345_12345市民服务热线.csv")] == ["绿码"]


def test_an_xlsx_work_order_prints_landscape_one_page_wide_with_title_and_header_on_every_page(folder):
    from openpyxl import load_workbook

    ws = load_workbook(folder / f"{COMMUNITY}.xlsx").active
    last = "P"  # 16 columns
    assert ws.title == "社区"
    assert [str(m) for m in ws.merged_cells.ranges] == [f"A1:{last}1"]
    assert ws["A1"].font.b
    assert [c.value for c in ws[2]] == [c.header for c in columns("community")]
    assert ws.max_row == 2 + 3
    assert (ws.page_setup.orientation, ws.page_setup.paperSize) == ("landscape", 9)  # A4
    assert (ws.page_setup.fitToWidth, ws.page_setup.fitToHeight, ws.sheet_properties.pageSetUpPr.fitToPage) == (
        1,
        0,
        True,
    )
    assert ws.print_title_rows == "$1:$2"
    assert ws.auto_filter.ref == f"A2:{last}5"
    assert ws.freeze_panes == "A3"


def test_an_xlsx_work_order_has_date_cells_text_ids_and_feedback_drop_downs(folder):
    from openpyxl import load_workbook

    ws = load_workbook(folder / f"{COMMUNITY}.xlsx").active
    col = {c.value: c.column_letter for c in ws[2]}
    assert [ws[f"{col['序号']}{r}"].value for r in (3, 4, 5)] == [1, 2, 3]
    for header in ("弹窗时间", "首次派单", "完成时限"):
        cell = ws[f"{col[header]}3"]
        assert cell.is_date and cell.number_format == "yyyy-mm-dd hh:mm", header
    assert ws[f"{col['完成时限']}3"].value == datetime(2022, 5, 11, 1)
    assert ws[f"{col['首次派单']}4"].value == T
    assert ws[f"{col['完成时限']}3"].font.color.rgb.endswith("C00000")  # overdue in red
    assert (ws[f"{col['身份证号']}3"].data_type, ws[f"{col['联系电话']}4"].value) == ("s", "13800000001")
    assert ws[f"{col['核查时间']}3"].number_format == "yyyy-mm-dd hh:mm"
    checks = {(dv.type, str(dv.sqref)): dv.formula1 for dv in ws.data_validations.dataValidation}
    assert checks == {
        ("list", f"{col['核查结果']}3:{col['核查结果']}5"): (
            '"已核实:非本人涉疫,已核实:已落实管控,已提醒本人,本人已检测/已申报,联系不上,不在本辖区,其他(见备注)"'
        ),
        ("date", f"{col['核查时间']}3:{col['核查时间']}5"): "DATE(2020,1,1)",
    }
    lab = load_workbook(folder / "lab/lab2.xlsx").active
    (outcome,) = [dv for dv in lab.data_validations.dataValidation if dv.type == "list"]
    assert outcome.formula1 == '"已上传结果,样本无效需重采,查无此样本,其他(见备注)"'


def test_the_index_lists_every_work_order_with_its_counts_for_the_command_centre(folder):
    rows = read_csv(folder / "index.csv")
    assert [
        (r["派发类型"], r["接收单位"], r["代码"], r["联系电话"], r["条数"], r["新增"], r["持续"], r["超期"])
        for r in rows
    ] == [
        ("社区", "朝阳区建外街道 光华里社区(110105001001)", "110105001001", "15100000001", "3", "2", "1", "1"),
        ("社区", "朝阳区朝外街道 社区(110105002001)", "110105002001", "", "1", "1", "0", "0"),
        ("区文旅局", "东城区文旅局", "110101", "", "1", "1", "0", "0"),
        ("区文旅局", "朝阳区文旅局", "110105", "", "1", "1", "0", "0"),
        ("12345热线", "12345市民服务热线", "12345", "", "1", "1", "0", "0"),
        ("检测机构", "朝阳区疾控中心实验室(lab1)", "lab1", "", "1", "0", "1", "1"),
        ("检测机构", "检测机构(lab2)", "lab2", "", "1", "1", "0", "0"),
    ]
    assert [r["工作单文件"] for r in rows] == [f"{f}.xlsx" for f in FILES]
    assert (rows[0]["区"], rows[0]["街道"]) == ("朝阳区", "建外街道")
    from openpyxl import load_workbook

    ws = load_workbook(folder / "index.xlsx").active
    assert ws["A1"].value == f"派单索引 · 运行 {RUN} · 数据截至 2022-05-12 01:00 · 7 份工作单,共 9 条,其中超期 2 条"
    assert ws.page_setup.orientation == "landscape" and ws.print_title_rows == "$1:$2"


def test_rewriting_a_run_replaces_its_folder(folder, tmp_path):
    out = tmp_path / RUN
    write(out, LINES, NAMES, RUN, T)
    write(out, LINES[:1], Names(), RUN, T)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "community/110105001_建外街道/110105001001.csv",
        "community/110105001_建外街道/110105001001.xlsx",
        "index.csv",
        "index.xlsx",
    ]


def test_spreadsheet_cells_starting_with_a_formula_character_get_a_leading_quote():
    assert [safe_cell(v) for v in ("=1+1", "+86", "-2", "@SUM(A1)", "\tx", "\rx", "张三", None, "a=b")] == [
        "'=1+1",
        "'+86",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        "张三",
        "",
        "a=b",
    ]


def test_names_that_a_file_system_cannot_take_become_safe_file_names(tmp_path):
    names = Names(communities={"110105001001": {"name": "光华里/二期 .社区", "office_phone": None}})
    out = tmp_path / RUN
    written = write(out, [line("0001", "community", "110105001001"), line("0002", "hotel", "?")], names, RUN, T)
    assert sorted(p.relative_to(out).as_posix() for p in written if p.suffix == ".xlsx") == [
        "community/110105001_建外街道/110105001001_光华里_二期_.社区.xlsx",
        "hotel/unknown_文旅局(酒店所在区未登记).xlsx",
        "index.xlsx",
    ]


def test_a_line_not_done_by_the_runs_as_of_is_overdue_and_one_due_later_is_not():
    due_now = line("0001", "community", "110105001001", first=(FIRST, T - timedelta(days=1)))
    assert due_now["due_by"] == T
    assert cells(due_now, 1, NAMES, T)["overdue"] == "已超期"
    assert cells(due_now, 1, NAMES, T - timedelta(seconds=1))["overdue"] == ""
