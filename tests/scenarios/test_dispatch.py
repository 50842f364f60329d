"""Dispatch lists: routing per route and action, one line per person/route/action, the Chinese reason lines for every
reason_type; on the scenario lake's two runs, the first dispatch and due time a line keeps while it stays open, and
the work orders each recipient gets (only its own people, names from the reference feeds as of the run). The file
format itself (headers, print setup, drop-downs, index) is tests/unit/test_workorders.py's."""

from __future__ import annotations

import csv
import json

import pytest

from jobs.keys import person_key_py
from jobs.reasons_text import why_line
from tests.dispatch_lake import AS_OF1, AS_OF2, EVIL_NAME, EXTRA, RUN1, RUN2, scenario_lake
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


# --- on the scenario lake -----------------------------------------------------------------------------------
PEOPLE = {**P, **EXTRA}
NAME_OF = {person_key_py(p): n for n, p in PEOPLE.items()}


def masked(name: str) -> str:
    return PEOPLE[name][:6] + "********" + PEOPLE[name][-4:]


@pytest.fixture(scope="module")
def lake(spark):
    return scenario_lake(spark)


@pytest.fixture(scope="module")
def gold(spark, lake):
    """Each run's lines: (person, route_type, route_code, action, reasons, due_by, first_dispatched_at, first run)."""
    rows = lake.read_gold(spark, "dispatch_list").collect()
    return {
        rid: sorted(
            (
                NAME_OF[r["person_key"]],
                r["route_type"],
                r["route_code"],
                r["action"],
                len(r["reason_keys"]),
                r["due_by"].isoformat(),
                r["first_dispatched_at"].isoformat(),
                r["first_run_id"],
            )
            for r in rows
            if r["run_id"] == rid
        )
        for rid in (RUN1, RUN2)
    }


def read_csv(path):
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def orders(lake, run_id) -> dict[str, list[dict]]:
    """A run's work orders (CSV) by the path the index gives, without the suffix."""
    folder = lake.root / "exports" / "dispatch" / run_id
    return {
        r["工作单文件"][:-5]: read_csv(folder / (r["工作单文件"][:-5] + ".csv")) for r in read_csv(folder / "index.csv")
    }


@pytest.mark.slow
def test_dispatch_routes_each_person_once_per_route_and_action(gold):
    c, d = "110105001001", "2022-05-11T01:00:00"
    assert [x[:6] for x in gold[RUN1]] == [
        ("clinic", "community", c, "remind_test", 1, d),
        ("colocated", "community", c, "verify_report", 1, d),
        ("hotel_guest", "hotel", "110101", "remind_test", 1, d),
        ("hotel_guest", "lab", "lab2", "chase_upload", 1, "2022-05-10T13:00:00"),
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
    assert {x[6:] for x in gold[RUN1]} == {(AS_OF1.isoformat(), RUN1)}  # the first run: everything is new


@pytest.mark.slow
def test_a_line_still_open_in_the_next_run_keeps_its_first_dispatch_and_due_time(gold):
    """RUN2 comes two days after RUN1: what RUN1 dispatched and is still open keeps RUN1's due time, now past."""
    first = {x[0:4]: x[5:] for x in gold[RUN1]}
    new = [x for x in gold[RUN2] if x[0:4] not in first]
    assert new == [
        ("hotel_guest2", "hotel", "110105", "remind_test", 1, "2022-05-13T01:00:00", AS_OF2.isoformat(), RUN2)
    ]  # the clinic visit of 05-10 20:00: due 24 h after RUN2
    carried = [(x[0:4], x[5:]) for x in gold[RUN2] if x[0:4] in first]
    assert carried == [(k, first[k]) for k, _ in carried]
    assert {k[0] for k, _ in carried} == {x[0] for x in gold[RUN1]} - {"nat_late"}  # its result arrived
    assert [k for k, (due, _, _) in carried if due > AS_OF2.isoformat()] == []  # so all of them are overdue


@pytest.mark.slow
def test_work_orders_say_new_or_carried_over_and_which_are_overdue(lake):
    run2 = orders(lake, RUN2)
    state = {
        (f.split("/")[0], r["姓名"]): (r["首次派单"], r["新增/持续"], r["完成时限"], r["超期"])
        for f, rows in run2.items()
        for r in rows
    }
    assert state[("hotel", "酒店乙")] == ("2022-05-12 01:00", "新增", "2022-05-13 01:00", "")
    assert state[("community", "测试starred")] == ("2022-05-10 01:00", "持续", "2022-05-11 01:00", "已超期")
    assert state[("lab", "'" + EVIL_NAME)] == ("2022-05-10 01:00", "持续", "2022-05-10 13:00", "已超期")
    assert [(r["新增/持续"], r["超期"]) for r in orders(lake, RUN1)["lab/lab2"]] == [("新增", "")]


@pytest.mark.slow
def test_each_recipient_gets_only_its_own_people(lake, gold):
    """A community sees its residents, a 文旅局 its district's hotel guests, a lab its samples, 12345 the rest."""
    for run_id in (RUN1, RUN2):
        got = {f: sorted(r["身份证号"] for r in rows) for f, rows in orders(lake, run_id).items()}
        want: dict[str, list[str]] = {}
        for x in gold[run_id]:
            want.setdefault((x[1], x[2]), []).append(masked(x[0]))
        index = {
            (r["代码"], r["工作单文件"][:-5]) for r in read_csv(lake.root / "exports/dispatch" / run_id / "index.csv")
        }
        assert {f: sorted(want[(f.split("/")[0], code)]) for code, f in index} == got, run_id
    run2 = {f: [r["姓名"] for r in rows] for f, rows in orders(lake, RUN2).items()}
    assert run2["hotel/110101_东城区文旅局"] == ["'" + EVIL_NAME]
    assert run2["hotel/110105_朝阳区文旅局"] == ["酒店乙"]
    assert run2["lab/lab2"] == ["'" + EVIL_NAME]
    assert run2["community/110105002_朝外街道/110105002001"] == ["未申报"]
    assert sorted(run2["outside_beijing/12345_12345市民服务热线"]) == ["京外甲", "未登记"]
    assert [r["姓名"] for r in orders(lake, RUN1)["lab/lab1_北京市朝阳区疾病预防控制中心实验室"]] == ["测试nat_late"]
    community = run2["community/110105001_建外街道/110105001001_光华里北社区"]
    assert sorted(set(community)) == sorted(f"测试{n}" for n, *_ in gold[RUN2] if n in P)


@pytest.mark.slow
def test_recipients_and_hotels_are_named_from_the_reference_feeds_as_of_the_run_else_by_code(lake):
    run1, run2 = orders(lake, RUN1), orders(lake, RUN2)
    # community 110105001001 was renamed between the runs; 110105002001, HTL-9 and lab2 are not in the feeds
    assert sorted(f for f in run1 if f.startswith("community/")) == [
        "community/110105001_建外街道/110105001001_光华里社区",
        "community/110105002_朝外街道/110105002001",
    ]
    assert "community/110105001_建外街道/110105001001_光华里北社区" in run2
    hotels = {r["姓名"]: (r["酒店"], r["酒店电话"]) for f in run2 if f.startswith("hotel/") for r in run2[f]}
    assert hotels == {"'" + EVIL_NAME: ("长青大酒店(交道口店)", "15100000002"), "酒店乙": ("HTL-9", "")}
    index = {
        r["代码"]: (r["接收单位"], r["联系电话"]) for r in read_csv(lake.root / "exports/dispatch" / RUN1 / "index.csv")
    }
    assert index == {
        "110105001001": ("朝阳区建外街道 光华里社区(110105001001)", "15100000001"),
        "110105002001": ("朝阳区朝外街道 社区(110105002001)", ""),
        "110101": ("东城区文旅局", ""),
        "12345": ("12345市民服务热线", ""),
        "lab1": ("北京市朝阳区疾病预防控制中心实验室(lab1)", "15100000003"),
        "lab2": ("检测机构(lab2)", ""),
    }


@pytest.mark.slow
def test_work_orders_carry_masked_ids_contact_phones_plain_reasons_and_neutralised_names(lake):
    from openpyxl import load_workbook

    run1 = orders(lake, RUN1)
    (hotel,) = run1["hotel/110101_东城区文旅局"]
    assert (hotel["序号"], hotel["姓名"], hotel["身份证号"], hotel["联系电话"], hotel["处置要求"]) == (
        "1",
        "'" + EVIL_NAME,
        masked("hotel_guest"),
        "13800001234",
        "提醒核酸检测",
    )
    assert hotel["原因"] == "您于 5月8日 09:00 在诊所 cl9 就诊,症状:干咳"
    out = run1["outside_beijing/12345_12345市民服务热线"]
    assert sorted((o["姓名"], o["身份证号"], o["联系电话"]) for o in out) == [
        ("京外甲", masked("outside"), "13800005678"),
        ("未登记", masked("unlisted"), "无登记电话"),  # not in persons: the ID from the drug purchase
    ]
    community = run1["community/110105001_建外街道/110105001001_光华里社区"]
    assert [r["序号"] for r in community] == [str(i) for i in range(1, len(community) + 1)]
    rel = [c for c in community if c["身份证号"] == masked("relative_unsigned")]
    assert [(c["处置要求"], c["原因"]) for c in rel] == [
        (
            "核实并上报",
            "登记在您身份证名下的手机号 139****0001 于 5月3日 在河北路北区停留,"
            "公告 a-130203 于 5月1日 00:00 公布为中风险(自 5月1日 00:00 起)",
        )
    ]
    assert [(x["采样时间"], x["原因"]) for x in run1["lab/lab1_北京市朝阳区疾病预防控制中心实验室"]] == [
        ("2022-05-08 12:00", "核酸样本 n-late 于 5月8日 12:00 采样,超过24小时仍未上传核酸平台,本人弹窗④因此未能解除")
    ]
    folder = lake.root / "exports" / "dispatch" / RUN1
    ws = load_workbook(folder / "community/110105001_建外街道/110105001001_光华里社区.xlsx").active
    assert ws["A1"].value.startswith(
        f"朝阳区建外街道 光华里社区(110105001001) 派单工作单 · 运行 {RUN1} · 数据截至 2022-05-10 01:00"
    )
    assert ws.max_row == len(community) + 2
    text = "".join(p.read_text(encoding="utf-8-sig") for p in folder.rglob("*.csv"))
    assert not any(p in text for p in PEOPLE.values())  # no raw ID number anywhere


@pytest.mark.slow
def test_the_index_counts_each_work_orders_lines_new_carried_and_overdue(lake, gold):
    rows = read_csv(lake.root / "exports" / "dispatch" / RUN2 / "index.csv")
    assert [(r["派发类型"], r["代码"], r["条数"], r["新增"], r["持续"], r["超期"]) for r in rows] == [
        ("社区", "110105001001", "8", "0", "8", "8"),
        ("社区", "110105002001", "1", "0", "1", "1"),
        ("区文旅局", "110101", "1", "0", "1", "1"),
        ("区文旅局", "110105", "1", "1", "0", "0"),
        ("12345热线", "12345", "2", "0", "2", "2"),
        ("检测机构", "lab2", "1", "0", "1", "1"),
    ]
    assert sum(int(r["条数"]) for r in rows) == len(gold[RUN2])


@pytest.mark.slow
def test_republishing_a_run_rewrites_its_lines_and_work_orders_the_same(spark, lake, gold):
    from jobs.dispatch import publish
    from jobs.policy import policy_at

    before = orders(lake, RUN2)
    counts = publish(spark, lake, AS_OF2, RUN2, policy_at(AS_OF2), log=lambda *_: None)
    rows = lake.read_gold(spark, "dispatch_list")
    assert counts["dispatch_lines"] == len(gold[RUN2])
    assert (
        rows.count()
        == rows.select("run_id", "route_type", "route_code", "person_key", "action").distinct().count()
        == len(gold[RUN1]) + len(gold[RUN2])
    )
    assert orders(lake, RUN2) == before  # the same first dispatch and due times: it carries over from RUN1 again


def test_a_lake_without_the_reference_feeds_names_nothing_so_the_codes_show(spark, tmp_path):
    from jobs.dispatch import reference_names
    from jobs.lake import Lake
    from jobs.workorders import Names

    lines = spark.createDataFrame(
        [("community", "110105001001", None), ("hotel", "110101", "HTL-7"), ("lab", "lab1", None)],
        "route_type string, route_code string, hotel_id string",
    )
    assert reference_names(spark, Lake(tmp_path / "lake"), lines, AS_OF1) == Names({}, {})
