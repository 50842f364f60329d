"""Dispatch lists: routing per route and action, masking, one line per person/route/action, the Chinese reason
lines for every reason_type, export files (BOM CSV, XLSX, formula neutralising)."""

from __future__ import annotations

import csv
import json
import re

import pytest

from jobs.dispatch import EXPORT_COLUMNS, safe_cell, write_files
from jobs.keys import person_key_py
from jobs.reasons_text import why_line
from tests.dispatch_lake import EVIL_NAME, EXTRA, RUN1, RUN2, scenario_lake
from tests.scenarios import P


def ev(*items, count=None):
    return json.dumps({"count": count or len(items), "items": list(items)}, ensure_ascii=False)


# --- one plain-Chinese line per reason_type (evidence as the rules write it) -------------------------------
WHY = {
    "case_county": (
        ev(
            {
                "feed": "telecom_stays",
                "record_id": "s1",
                "county": "152501",
                "phone": "138****5678",
                "link_type": "registered",
                "present_from": "2022-05-03T08:00:00",
                "present_to": "2022-05-03T12:00:00",
            }
        ),
        "登记在您身份证名下的手机号 138****5678 于 5月3日 在内蒙古二连浩特市停留,该地14天内有本土病例",
    ),
    "border_county": (
        ev(
            {
                "feed": "telecom_stays",
                "record_id": "s1",
                "county": "152501",
                "port": "二连浩特",
                "phone": "139****0010",
                "link_type": "unbound",
                "present_from": "2022-05-01T08:00:00",
            },
            {"feed": "telecom_stays", "record_id": "s2"},
        ),
        "您健康宝曾绑定(已解绑)的手机号 139****0010 于 5月1日 在内蒙古二连浩特市(二连浩特口岸所在县)停留(另有1条记录)",
    ),
    "inbound_quarantine": (
        ev(
            {
                "feed": "inbound_entries",
                "record_id": "e-1",
                "port": "PEK",
                "entry_date": "2022-05-01",
                "quarantine_days": 21,
            }
        ),
        "您于 5月1日 经 PEK 入境,需隔离 21 天,期满次日0时自动解除",
    ),
    "risk_area_visit": (
        ev(
            {
                "feed": "venue_scans",
                "record_id": "sc1",
                "venue": "超市甲",
                "scan_type": "checkin",
                "scanned_at": "2022-05-02T10:00:00",
                "area": "110108001001",
                "announcement_id": "a-up1",
                "risk_level": "medium",
                "effective_from": "2022-05-01T00:00:00",
                "announced_at": "2022-05-06T12:00:00",
                "retroactive": True,
            }
        ),
        "您于 5月2日 10:00 在超市甲扫码登记,该场所位于北京海淀区万寿路街道(社区 110108001001),公告 a-up1 于 "
        "5月6日 12:00 公布为中风险(自 5月1日 00:00 起),为您离开后追溯升级",
    ),
    "county_risk_area": (
        ev(
            {
                "feed": "telecom_stays",
                "record_id": "s",
                "county": "130203",
                "phone": "139****0002",
                "link_type": "bound",
                "present_from": "2022-05-03T08:00:00",
                "announcement_id": "a-130203",
                "risk_level": "high",
                "effective_from": "2022-05-01T00:00:00",
                "announced_at": "2022-05-01T00:00:00",
                "retroactive": False,
            }
        ),
        "您健康宝绑定的手机号 139****0002 于 5月3日 在河北路北区停留,公告 a-130203 于 5月1日 00:00 公布为高风险"
        "(自 5月1日 00:00 起)",
    ),
    "case_colocation": (
        ev(
            {
                "feed": "venue_scans",
                "record_id": "sc",
                "venue_id": "v-cafe",
                "scanned_at": "2022-05-04T10:20:00",
                "case_id": "c",
                "case_scanned_at": "2022-05-04T10:00:00",
            }
        ),
        "您于 5月4日 10:20 在场所 v-cafe 扫码,一名病例于 5月4日 10:00 在同一场所扫码",
    ),
    "companion": (
        ev({"feed": "grid_dwells", "record_id": "g1", "grid_id": "G77", "phone": "139****0001", "link_type": "bound"}),
        "您健康宝绑定的手机号 139****0001 与一名病例的手机在网格 G77 有时空伴随",
    ),
    "declared_risk_county": (
        ev(
            {
                "feed": "trip_declarations",
                "record_id": "td",
                "county": "130102",
                "declared_at": "2022-05-06T10:00:00",
                "area": "130102001001",
                "risk_level": "medium",
            }
        ),
        "您于 5月6日 10:00 申报的14天到访地河北长安区有中风险地区(河北长安区建北街道(社区 130102001001))",
    ),
    "entry_72h": (
        ev({"feed": "tickets", "record_id": "t-9", "entered_at": "2022-05-05T10:00:00", "link_type": "ticket"}),
        "您的车票/机票 t-9(未退票) 于 5月5日 10:00 进(返)京",
    ),
    "drug_purchase": (
        ev(
            {
                "feed": "drug_purchases",
                "record_id": "d",
                "pharmacy_id": "ph1",
                "drug_category": "antipyretic",
                "purchased_at": "2022-05-08T10:00:00",
            }
        ),
        "您于 5月8日 10:00 在药店 ph1 购买退热类药品",
    ),
    "clinic_visit": (
        ev(
            {
                "feed": "clinic_visits",
                "record_id": "cv",
                "clinic_id": "cl1",
                "symptoms": ["fever", "sore_throat"],
                "visited_at": "2022-05-08T15:00:00",
            }
        ),
        "您于 5月8日 15:00 在诊所 cl1 就诊,症状:发热、咽痛",
    ),
    "no_pre_entry_nat": (
        ev(
            {
                "feed": "trip_declarations",
                "record_id": "td-2",
                "declared_at": "2022-05-06T10:00:00",
                "entered_beijing_at": "2022-05-04T10:00:00",
                "entry_declared": True,
            }
        ),
        "您于 5月4日 10:00 进京,未查到进京前48小时内的核酸阴性记录",
    ),
    "declaration_required": (
        ev(
            {
                "feed": "telecom_stays",
                "record_id": "s",
                "city": "1301",
                "county": "130102",
                "phone": "139****0021",
                "link_type": "bound",
                "present_from": "2022-05-03T08:00:00",
                "stay_hours": 8.0,
            }
        ),
        "您健康宝绑定的手机号 139****0021 于 5月3日 在河北石家庄市停留8.0小时,该市有中高风险地区(行程卡带*),尚未申报行程",
    ),
}


@pytest.mark.parametrize("reason_type", sorted(WHY))
def test_why_line_is_one_line_of_plain_chinese_for_every_reason_type(reason_type):
    evidence, expected = WHY[reason_type]
    assert why_line(reason_type, evidence) == expected


def test_every_reason_type_of_outputs_md_has_a_why_line():
    types = {
        "case_county",
        "inbound_quarantine",
        "risk_area_visit",
        "county_risk_area",
        "case_colocation",
        "companion",
        "declared_risk_county",
        "entry_72h",
        "drug_purchase",
        "clinic_visit",
        "no_pre_entry_nat",
        "border_county",
        "declaration_required",
    }
    assert set(WHY) == types


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


def test_export_files_are_bom_csv_and_xlsx_with_chinese_headers_and_neutralised_cells(tmp_path):
    from openpyxl import load_workbook

    row = {k: "" for k, _ in EXPORT_COLUMNS} | {
        "route_type": "hotel",
        "route_code": "110101",
        "street_code": "",
        "name": "=cmd()",
        "phone": "13800001234",
        "id_masked": "110101********0011",
    }
    files = write_files(tmp_path / "run", [row])
    assert sorted(f.name for f in files) == ["hotel.csv", "hotel.xlsx"]
    raw = (tmp_path / "run" / "hotel.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert rows[0] == [h for _, h in EXPORT_COLUMNS]
    assert rows[1][5:8] == ["'=cmd()", "110101********0011", "13800001234"]
    ws = load_workbook(tmp_path / "run" / "hotel.xlsx").active
    assert [c.value for c in ws[2]][5:8] == ["'=cmd()", "110101********0011", "13800001234"]
    assert ws["H2"].data_type == "s"


# --- on the scenario lake -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lake(spark):
    return scenario_lake(spark)


@pytest.fixture(scope="module")
def run1(spark, lake):
    names = {person_key_py(p): n for n, p in {**P, **EXTRA}.items()}
    rows = lake.read_gold(spark, "dispatch_list").collect()
    return {
        rid: sorted(
            (
                names[r["person_key"]],
                r["route_type"],
                r["route_code"],
                r["action"],
                len(r["reason_keys"]),
                r["due_by"].isoformat(),
            )
            for r in rows
            if r["run_id"] == rid
        )
        for rid in (RUN1, RUN2)
    }


@pytest.mark.slow
def test_dispatch_routes_each_person_once_per_route_and_action(run1):
    c, d = "110105001001", "2022-05-11T01:00:00"
    assert run1[RUN1] == [
        ("clinic", "community", c, "remind_test", 1, d),
        ("colocated", "community", c, "verify_report", 1, d),
        ("hotel_guest", "hotel", "110101", "remind_test", 1, d),
        ("nat_late", "community", c, "remind_test", 1, d),
        ("nat_late", "lab", "lab1", "chase_upload", 1, "2022-05-10T13:00:00"),
        ("no_nat", "community", c, "remind_test", 1, d),
        ("outside", "outside_beijing", "12345", "remind_test", 1, d),
        ("relative_unsigned", "community", c, "verify_report", 1, d),
        ("shop_payer", "community", c, "verify_report", 1, d),
        ("starred", "community", c, "verify_report", 1, d),
        ("undeclared", "community", "110105002001", "remind_declare", 1, d),
        ("unlisted", "outside_beijing", "12345", "remind_test", 1, d),
        ("upgraded_after", "community", c, "verify_report", 2, d),  # two areas upgraded after the visits: one line
        ("verified_between", "community", c, "verify_report", 1, d),  # the area upgraded after the verification
    ]


def read_csv(path):
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


@pytest.mark.slow
def test_exports_carry_masked_ids_contact_phones_and_neutralised_names(lake):
    from openpyxl import load_workbook

    folder = lake.root / "exports" / "dispatch" / RUN1
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{r}.{x}" for r in ("community", "hotel", "outside_beijing", "lab") for x in ("csv", "xlsx")
    )
    hotel = read_csv(folder / "hotel.csv")
    assert [
        (h["派发对象"], h["酒店"], h["姓名"], h["身份证号"], h["联系电话"], h["处置要求"], h["完成时限"]) for h in hotel
    ] == [
        (
            "东城区文旅局",
            "HTL-7",
            "'" + EVIL_NAME,
            "110101********" + EXTRA["hotel_guest"][-4:],
            "13800001234",
            "提醒核酸检测",
            "2022-05-11 01:00",
        )
    ]
    assert hotel[0]["原因"] == "您于 5月8日 09:00 在诊所 cl9 就诊,症状:干咳"
    out = read_csv(folder / "outside_beijing.csv")
    assert [(o["姓名"], o["身份证号"], o["联系电话"]) for o in out] == [
        ("京外甲", "130102********" + EXTRA["outside"][-4:], "13800005678"),
        ("", "130102********" + EXTRA["unlisted"][-4:], ""),
    ]  # not in persons: ID from the drug purchase
    community = read_csv(folder / "community.csv")
    # sorted by street then community: the scenario residents of 110105001001, then the undeclared traveller
    order = [(re.search(r"\((\d{9})\)$", c["街道"]).group(1), c["社区"]) for c in community]
    assert order == sorted(order)
    assert {c["街道"] for c in community} == {"建外街道(110105001)", "朝外街道(110105002)"}
    assert [(c["社区"], c["身份证号"], c["处置要求"]) for c in community if c["街道"].endswith("(110105002)")] == [
        ("110105002001", "110105********" + EXTRA["undeclared"][-4:], "提醒行程申报")
    ]
    rel = [c for c in community if c["身份证号"].endswith(P["relative_unsigned"][-4:])]
    assert [(c["处置要求"], c["原因"]) for c in rel] == [
        (
            "核实并上报",
            "登记在您身份证名下的手机号 139****0001 于 5月3日 在河北路北区停留,"
            "公告 a-130203 于 5月1日 00:00 公布为中风险(自 5月1日 00:00 起)",
        )
    ]
    lab = read_csv(folder / "lab.csv")
    assert [(x["检测机构"], x["原因"]) for x in lab] == [
        ("lab1", "核酸样本 n-late 于 5月8日 12:00 采样,超过24小时仍未上传核酸平台,本人弹窗④因此未能解除")
    ]
    ws = load_workbook(folder / "community.xlsx").active
    assert [c.value for c in ws[1]] == [h for _, h in EXPORT_COLUMNS]
    assert ws.max_row == len(community) + 1
    text = "".join(
        (folder / f).read_text(encoding="utf-8-sig") for f in ("community.csv", "hotel.csv", "outside_beijing.csv")
    )
    assert not any(p in text for p in (*P.values(), *EXTRA.values()))  # no raw ID number anywhere


@pytest.mark.slow
def test_republishing_a_run_rewrites_its_lines_without_duplicates(spark, lake, run1):
    from jobs.dispatch import publish
    from jobs.policy import policy_at
    from tests.dispatch_lake import AS_OF2

    counts = publish(spark, lake, AS_OF2, RUN2, policy_at(AS_OF2), log=lambda *_: None)
    rows = lake.read_gold(spark, "dispatch_list")
    assert counts["dispatch_lines"] == len(run1[RUN2])
    assert (
        rows.count()
        == rows.select("run_id", "route_type", "route_code", "person_key", "action").distinct().count()
        == len(run1[RUN1]) + len(run1[RUN2])
    )
