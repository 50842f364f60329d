"""Dispatch work orders (outputs.md, "Dispatch exports"): the files each recipient of a run's dispatch lines gets.

Pure Python (csv, openpyxl) on plain rows: jobs/dispatch.py gathers the lines with name, masked ID and contact
phone, and the names of communities and facilities as known at the run's as-of. Under the run's folder:

- `community/<street>/<community>.xlsx`: one per community, its residents only, folders by street;
- `hotel/<county>_<区>文旅局.xlsx`: one per district culture and tourism bureau, its hotels' guests, with the hotel;
- `outside_beijing/12345_12345市民服务热线.xlsx`: the hotline's list (people outside Beijing or not in `persons`);
- `lab/<lab>.xlsx`: one per lab, its samples still without a result (policy `dispatch_pending_hours`);
- `index.xlsx`: every work order with its line counts, for the command centre.

Each also as CSV (UTF-8 with BOM, header first). A file or folder name is the code, then the name people know
(`110105001001_光华里社区`); without a name in the reference feeds, the code alone. A work order prints: a title
row (recipient, run, as-of), the header repeated on every page, landscape, one page wide.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from jobs.reasons_text import ACTION_ZH, POPUP_ZH, ROUTE_ZH, district_name, street_name

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
ROUTES = ("community", "hotel", "outside_beijing", "lab")  # the folders, in the index's order
NO_PHONE = "无登记电话"
NO_NAME = "未登记"
NEW, CARRIED, OVERDUE = "新增", "持续", "已超期"
DATE_FORMAT = "yyyy-mm-dd hh:mm"
# the feedback the recipient fills in: drop-down choices of 核查结果 per route (no comma: Excel's list separator)
PERSON_OUTCOMES = (
    "已核实:非本人涉疫",
    "已核实:已落实管控",
    "已提醒本人",
    "本人已检测/已申报",
    "联系不上",
    "不在本辖区",
)
OUTCOMES = {
    "community": (*PERSON_OUTCOMES, "其他(见备注)"),
    "hotel": (*PERSON_OUTCOMES, "已离店", "其他(见备注)"),
    "outside_beijing": (*PERSON_OUTCOMES, "其他(见备注)"),
    "lab": ("已上传结果", "样本无效需重采", "查无此样本", "其他(见备注)"),
}


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    width: float
    kind: str = "text"  # text, date, int


FEEDBACK = [
    Column("outcome", "核查结果", 15),
    Column("checker", "核查人", 7),
    Column("checked_at", "核查时间", 16, "date"),
    Column("note", "备注", 14),
]


def columns(route_type: str) -> list[Column]:
    """A work order's columns: who, what and why, when, then the blank feedback columns."""
    who = [
        Column("n", "序号", 5, "int"),
        Column("name", "姓名", 8),
        Column("id_masked", "身份证号", 19),
        Column("phone", "联系电话", 12),
    ]
    if route_type == "hotel":
        who += [Column("hotel", "酒店", 16), Column("hotel_phone", "酒店电话", 12)]
    since = "采样时间" if route_type == "lab" else "弹窗时间"
    what = [
        Column("popup", "健康宝弹窗", 7),
        Column("action", "处置要求", 9),
        Column("why", "原因", 40),
        Column("since", since, 16, "date"),
        Column("first_dispatched_at", "首次派单", 16, "date"),
        Column("state", "新增/持续", 6),
        Column("due_by", "完成时限", 17, "date"),
        Column("overdue", "超期", 7),
    ]
    return who + what + FEEDBACK


INDEX_COLUMNS = [
    Column("route", "派发类型", 10),
    Column("district", "区", 10),
    Column("street", "街道", 14),
    Column("recipient", "接收单位", 36),
    Column("code", "代码", 14),
    Column("phone", "联系电话", 12),
    Column("lines", "条数", 7, "int"),
    Column("new", "新增", 7, "int"),
    Column("carried", "持续", 7, "int"),
    Column("overdue", "超期", 7, "int"),
    Column("file", "工作单文件", 60),
]


@dataclass(frozen=True)
class Names:
    """Names people recognise, from the reference feeds as of the run (code → row); empty when a feed is absent."""

    communities: dict[str, dict] = field(default_factory=dict)  # community_code → name, office_phone
    facilities: dict[str, dict] = field(default_factory=dict)  # facility_id → kind, name, county_code, contact_phone

    def community(self, code: str) -> str | None:
        return (self.communities.get(code) or {}).get("name")

    def facility(self, fid: str | None) -> str | None:
        return (self.facilities.get(fid) or {}).get("name") if fid else None

    def facility_phone(self, fid: str | None) -> str | None:
        return (self.facilities.get(fid) or {}).get("contact_phone") if fid else None


@dataclass(frozen=True)
class Recipient:
    route_type: str
    route_code: str
    label: str  # as the title row and the index name it
    district: str
    street: str
    phone: str | None
    path: str  # relative to the run's folder, without the suffix


def safe_cell(value) -> str:
    """Text for a spreadsheet cell: formulas are neutralised with a leading quote (CSV/XLSX injection)."""
    if value is None:
        return ""
    s = value if isinstance(value, str) else str(value)
    return "'" + s if s.startswith(FORMULA_START) else s


def file_name(code: str, name: str | None = None) -> str:
    """`code_name` with what a file system or a zip tool cannot take replaced; the code alone without a name."""
    safe = lambda s: re.sub(r'[\\/:*?"<>|\s\x00-\x1f]+', "_", s).strip("._")  # noqa: E731
    code = safe(code) or "unknown"
    return f"{code}_{safe(name)[:40]}" if name and safe(name) else code


def recipient(route_type: str, route_code: str, names: Names) -> Recipient:
    if route_type == "community":
        street = route_code[:9]
        name = names.community(route_code)
        label = f"{district_name(route_code)}{street_name(street)} {name or '社区'}({route_code})"
        sdir = file_name(street, street_name(street) if street_name(street) != street else None)
        phone = (names.communities.get(route_code) or {}).get("office_phone")
        return Recipient(
            route_type,
            route_code,
            label,
            district_name(route_code),
            street_name(street),
            phone,
            f"community/{sdir}/{file_name(route_code, name)}",
        )
    if route_type == "hotel":
        known = route_code.isdigit()
        district = district_name(route_code) if known else "酒店所在区未登记"
        label = f"{district}文旅局" if known else "文旅局(酒店所在区未登记)"
        return Recipient(route_type, route_code, label, district, "", None, f"hotel/{file_name(route_code, label)}")
    if route_type == "lab":
        name = names.facility(route_code)
        county = (names.facilities.get(route_code) or {}).get("county_code")
        return Recipient(
            route_type,
            route_code,
            f"{name or '检测机构'}({route_code})",
            district_name(county) if county else "",
            "",
            names.facility_phone(route_code),
            f"lab/{file_name(route_code, name)}",
        )
    label = "12345市民服务热线"
    return Recipient(route_type, route_code, label, "", "", None, f"outside_beijing/{file_name(route_code, label)}")


def cells(line: dict, n: int, names: Names, as_of: datetime) -> dict:
    """One line of a work order, by column key. `line`: a dispatch_list row with name, id_masked, phone."""
    overdue = line["due_by"] <= as_of  # not done by its due time, as far as the run knows
    code = line.get("display_code")
    return {
        "n": n,
        "name": line.get("name") or NO_NAME,
        "id_masked": line.get("id_masked") or "",
        "phone": line.get("phone") or NO_PHONE,
        "hotel": names.facility(line.get("hotel_id")) or line.get("hotel_id") or "",
        "hotel_phone": names.facility_phone(line.get("hotel_id")) or "",
        "popup": POPUP_ZH.get(code, code) if code else "绿码",
        "action": ACTION_ZH[line["action"]],
        "why": line["why"],
        "since": line.get("since"),
        "first_dispatched_at": line["first_dispatched_at"],
        "state": NEW if line["first_run_id"] == line["run_id"] else CARRIED,
        "due_by": line["due_by"],
        "overdue": OVERDUE if overdue else "",
    }


def _order(line: dict, names: Names) -> tuple:
    # a 文旅局's guests hotel by hotel; then the most urgent first
    hotel = names.facility(line.get("hotel_id")) or line.get("hotel_id") or ""
    return (hotel, line["due_by"], line["action"], line.get("id_masked") or "", line["person_key"])


def write(folder: Path, lines: list[dict], names: Names, run_id: str, as_of: datetime) -> list[Path]:
    """Every work order of the run and the index, each XLSX and CSV; returns the files written. A re-run of the
    run id rewrites its folder."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    groups: dict[tuple[str, str], list[dict]] = {}
    for line in lines:
        groups.setdefault((line["route_type"], line["route_code"]), []).append(line)
    written, index = [], []
    for route_type, route_code in sorted(groups, key=lambda k: (ROUTES.index(k[0]), k[1])):
        who = recipient(route_type, route_code, names)
        part = sorted(groups[(route_type, route_code)], key=lambda x: _order(x, names))
        rows = [cells(x, i, names, as_of) for i, x in enumerate(part, start=1)]
        counts = {
            "lines": len(rows),
            "new": sum(r["state"] == NEW for r in rows),
            "carried": sum(r["state"] == CARRIED for r in rows),
            "overdue": sum(bool(r["overdue"]) for r in rows),
        }
        title = (
            f"{who.label} 派单工作单 · 运行 {run_id} · 数据截至 {as_of:%Y-%m-%d %H:%M} · 共 {counts['lines']} 条:"
            f"新增 {counts['new']},持续 {counts['carried']},其中超期 {counts['overdue']}"
        )
        cols = columns(route_type)
        csv_path, xlsx_path = folder / f"{who.path}.csv", folder / f"{who.path}.xlsx"  # a name may hold a dot
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(csv_path, cols, rows)
        write_xlsx(xlsx_path, ROUTE_ZH[route_type], title, cols, rows, OUTCOMES[route_type])
        written += [csv_path, xlsx_path]
        index.append(
            {
                "route": ROUTE_ZH[route_type],
                "district": who.district,
                "street": who.street,
                "recipient": who.label,
                "code": route_code,
                "phone": who.phone or "",
                **counts,
                "file": f"{who.path}.xlsx",
            }
        )
    total = sum(r["lines"] for r in index)
    title = (
        f"派单索引 · 运行 {run_id} · 数据截至 {as_of:%Y-%m-%d %H:%M} · {len(index)} 份工作单,共 {total} 条,"
        f"其中超期 {sum(r['overdue'] for r in index)} 条"
    )
    write_csv(folder / "index.csv", INDEX_COLUMNS, index)
    write_xlsx(folder / "index.xlsx", "派单索引", title, INDEX_COLUMNS, index, None)
    return [*written, folder / "index.csv", folder / "index.xlsx"]


def _lines(value, width: float) -> int:
    """Lines a text takes in a wrapped cell `width` characters wide (a Chinese character is almost two): rather
    one too many, which prints blank, than one too few, which prints cut off."""
    if not isinstance(value, str):
        return 1
    return max(1, math.ceil(sum(1.8 if ord(ch) > 0x2E7F else 1 for ch in value) / max(1, width - 1)))


def _text(value, kind: str) -> str:
    if value is None:
        return ""
    if kind == "date":
        return f"{value:%Y-%m-%d %H:%M}"
    return safe_cell(value)


def write_csv(path: Path, cols: list[Column], rows: list[dict]) -> None:
    """UTF-8 with BOM (Excel opens it as such), the header first, no title row: one row a line."""
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow([c.header for c in cols])
        w.writerows([[_text(r.get(c.key), c.kind) for c in cols] for r in rows])


def write_xlsx(
    path: Path, sheet: str, title: str, cols: list[Column], rows: list[dict], outcomes: tuple[str, ...] | None
) -> None:
    """A sheet that prints: title row, header row repeated on each page, autofilter, landscape, one page wide,
    real date cells, text cells for IDs and phones; with `outcomes`, drop-downs in the feedback columns."""
    from openpyxl import Workbook  # here, not at the top: about a second to import, and only this writes XLSX
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation
    from openpyxl.worksheet.page import PageMargins

    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    last = get_column_letter(len(cols))
    ws.append([safe_cell(title)])
    ws.merge_cells(f"A1:{last}1")
    ws["A1"].font = Font(bold=True, size=13)
    ws["A1"].alignment = Alignment(vertical="center", wrap_text=True)
    ws.row_dimensions[1].height = 30
    ws.append([c.header for c in cols])
    head_fill = PatternFill("solid", fgColor="DDDDDD")
    for c in ws[2]:
        c.font = Font(bold=True)
        c.fill = head_fill
        c.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    ws.row_dimensions[2].height = 30  # two lines: a narrow column's header wraps
    wrap = Alignment(vertical="top", wrap_text=True)
    body, red = Font(size=10), Font(size=10, color="C00000", bold=True)
    for r in rows:
        ws.append([r.get(c.key) if c.kind != "text" else safe_cell(r.get(c.key)) for c in cols])
    for i, row in enumerate(ws.iter_rows(min_row=3), start=3):  # once: ws[n] scans the whole sheet on every call
        late = any(c.value == OVERDUE for c, col in zip(row, cols, strict=True) if col.key == "overdue")
        for c, col in zip(row, cols, strict=True):
            if col.kind == "date":
                c.number_format = DATE_FORMAT
            elif col.kind == "text":
                c.data_type = "s"  # IDs and phones stay text
            c.alignment = wrap
            c.font = red if late and col.key in ("due_by", "overdue") else body
        # a row as high as its longest wrapped text: LibreOffice does not fit row heights on opening a file
        ws.row_dimensions[i].height = 15 * max(_lines(c.value, col.width) for c, col in zip(row, cols, strict=True))
    for i, col in enumerate(cols, start=1):
        ws.column_dimensions[get_column_letter(i)].width = col.width
    end = max(3, ws.max_row)
    ws.auto_filter.ref = f"A2:{last}{max(2, ws.max_row)}"
    ws.freeze_panes = "A3"
    ws.print_title_rows = "1:2"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages down as it takes
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.gridLines = True
    ws.page_margins = PageMargins(left=0.4, right=0.4, top=0.5, bottom=0.6)
    ws.oddFooter.center.text = "第 &P 页,共 &N 页"
    if outcomes:
        keys = [c.key for c in cols]
        at = {k: get_column_letter(keys.index(k) + 1) for k in ("outcome", "checked_at")}
        choice = DataValidation(type="list", formula1='"' + ",".join(outcomes) + '"', allow_blank=True)
        choice.error, choice.errorTitle = "请从下拉列表中选择核查结果", "核查结果"
        when = DataValidation(type="date", operator="greaterThan", formula1="DATE(2020,1,1)", allow_blank=True)
        when.error, when.errorTitle = "请填写日期时间,例如 2022-05-10 14:30", "核查时间"
        for dv, col in ((choice, at["outcome"]), (when, at["checked_at"])):
            dv.showErrorMessage = True
            ws.add_data_validation(dv)
            dv.add(f"{col}3:{col}{end}")
        for row in ws.iter_rows(min_row=3, min_col=keys.index("checked_at") + 1, max_col=keys.index("checked_at") + 1):
            row[0].number_format = DATE_FORMAT
    wb.save(path)
