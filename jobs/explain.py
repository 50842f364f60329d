"""`screening explain PERSON_ID_OR_KEY --lake DIR [--as-of TS] [--lang zh|en]`: why a person has (or had) a popup.

Shows what the latest completed run at or before TS published (default: the latest run): every reason active
then or released in the 14 days before, with what was matched, through which phone and link, the area and
times, the announcement (and whether it was retroactive), what releases it and when, and what the person and
the community should do; plus NAT samples still missing on the platform and the run's dispatch lines. This
answers the seed's FAQ questions. Output holds no raw ID number or full phone.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta

from jobs.asof_time import parse_as_of
from jobs.reasons_text import (
    ACTION_ZH,
    BASIS_ZH,
    FEED_ZH,
    LEVEL_ZH,
    POPUP_ZH,
    ROUTE_ZH,
    TYPE_EN,
    TYPE_ZH,
    detail_zh,
    item_en,
    item_zh,
    items,
    time_en,
    time_zh,
)
from jobs.settings import path_option
from jobs.spark import get_spark

# The CLI imports this module at start-up to add its subcommand, and `screening --help` must not load pyspark:
# the modules behind the command (catalog, asof, keys, lake) are imported in the functions that use them.

ID_RE = re.compile(r"^\d{17}[\dXx]$")
KEY_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_ITEMS = 5

ADVICE_ZH = {
    "1": (
        "本人:离开该县满14天,或该县连续14天无新增本土病例、转为低风险后自动解除;在京外请暂缓来京。",
        "社区:无需上报,到期自动解除。",
    ),
    "2": ("本人:按要求履行入境隔离义务,隔离期满次日0时自动解除。", "社区:落实隔离管理,无需上报解除。"),
    "3": (
        "本人:到居住地社区报到(住酒店找区文旅局,在京外联系12345),如实说明行程;按要求做核酸检测。",
        "社区:核实行程后上报解除(非本人涉疫:立即解除;已落实管控:末次暴露满14天后解除)。",
    ),
    "4": (
        "本人:立即完成核酸检测,健康宝查询到阴性结果后自动解除;如未自动解除,请联系检测机构上传结果。",
        "社区:提醒本人检测;检测结果超过24小时未上传的,督促检测机构上传。",
    ),
    "5": ("本人:离开该县满14天后自动解除;在京外非必须不进(返)京。", "社区:无需上报,到期自动解除。"),
    "T": ("本人:在健康宝完成“本人信息登记”(行程申报)。", "社区:提醒本人完成申报。"),
}
ADVICE_EN = {
    "1": (
        "You: released automatically 14 days after leaving, or when the county has 14 quiet days or turns low-risk.",
        "Community: nothing to report; it releases by itself.",
    ),
    "2": (
        "You: complete the quarantine; it releases at 00:00 the day after it ends.",
        "Community: manage the quarantine.",
    ),
    "3": (
        "You: report to your community (hotel guests: the district culture and tourism bureau; outside Beijing: 12345) "
        "and have your trip verified.",
        "Community: verify and report the release (not exposed: at once; cleared: 14 days after the last exposure).",
    ),
    "4": (
        "You: take a NAT now; a negative result releases it. If it does not, ask the lab to upload the result.",
        "Community: remind the person; chase labs whose results are over 24 h late.",
    ),
    "5": ("You: released automatically 14 days after leaving the county.", "Community: nothing to report."),
    "T": ("You: complete the trip declaration in Health Kit.", "Community: remind the person to declare."),
}


def resolve_key(who: str) -> str:
    from jobs.keys import person_key_py

    w = who.strip()
    if ID_RE.match(w):
        return person_key_py(w.upper())
    if KEY_RE.match(w.lower()):
        return w.lower()
    raise SystemExit(f"screening explain: {who[:4]}… is neither an 18-character ID number nor a 64-hex person key")


def published_reasons(spark, lake, run, latest: bool):
    """popup_reasons as it stood when `run` completed: Delta time travel to the last commit before the run's
    finished_at. The current table when `run` is the latest, or when that version is gone (older than the audit
    window VACUUM keeps); `gather` then rebuilds statuses from first_run_id / release_run_id."""
    from jobs.catalog import version_at

    path = lake.gold("popup_reasons")
    if latest or run["finished_at"] is None or not lake.exists(path):
        return lake.read_gold(spark, "popup_reasons")
    v = version_at(path, run["finished_at"])
    try:
        df = spark.read.format("delta").option("versionAsOf", v).load(path)
        df.limit(1).collect()  # fails here, not later, when VACUUM removed that version's files
        return df
    except Exception:  # noqa: BLE001 (any read failure of an old version: the rebuild below is still correct)
        return lake.read_gold(spark, "popup_reasons")


def gather(spark, lake, who: str, at: datetime | None = None) -> dict:
    """Everything `render` needs, read from the lake (reasons as published by the chosen run)."""
    from pyspark.sql import functions as F

    from jobs import asof
    from jobs.asof import ts
    from jobs.keys import mask_id, person_key
    from jobs.views import area_names

    key = resolve_key(who)
    runs = lake.read_gold(spark, "run_log").where(F.col("status") == "completed")
    if at is not None:
        runs = runs.where(F.col("as_of") <= ts(at))
    run = runs.orderBy(F.col("as_of").desc(), F.col("run_id").desc()).first()
    if run is None:
        raise SystemExit(f"screening explain: no completed run in {lake.root}" + (f" at or before {at}" if at else ""))
    t, window = run["as_of"], timedelta(days=14)
    as_ofs = {r["run_id"]: r["as_of"] for r in lake.read_gold(spark, "run_log").select("run_id", "as_of").collect()}
    reasons = []
    for r in published_reasons(spark, lake, run, latest=at is None).where(F.col("person_key") == key).collect():
        first, rel = as_ofs.get(r["first_run_id"]), as_ofs.get(r["release_run_id"])
        if first is None or first > t:
            continue  # not yet published by that run
        d = r.asDict()
        if rel is not None and rel <= t:
            if d["released_at"] < t - window:
                continue
        else:  # active as published then
            d.update(status="active", released_at=None, release_basis=None, release_detail=None)
        reasons.append(d)
    reasons.sort(key=lambda d: (d["status"] != "active", d["raised_at"], d["reason_key"]))
    samples = asof.current(asof.as_of(lake.read_bronze(spark, "nat_samples"), "nat_samples", t)).where(
        person_key(F.col("person_id")) == key
    )
    results = asof.as_of(lake.read_bronze(spark, "nat_results"), "nat_results", t).select("sample_id")
    missing = [
        r.asDict()
        for r in samples.join(results, "sample_id", "left_anti")
        .where(F.col("sampled_at") <= ts(t - timedelta(hours=24)))
        .select("sample_id", "lab_id", "sampled_at")
        .collect()
    ]
    pers = (
        asof.current(asof.as_of(lake.read_bronze(spark, "persons"), "persons", t))
        .where(person_key(F.col("person_id")) == key)
        .select(mask_id(F.col("person_id")).alias("id_masked"))
        .first()
    )
    dispatch = [
        r.asDict()
        for r in lake.read_gold(spark, "dispatch_list")
        .where((F.col("run_id") == run["run_id"]) & (F.col("person_key") == key))
        .collect()
    ]
    codes = {d["route_code"] for d in dispatch} | {m["lab_id"] for m in missing}
    names = area_names(spark, lake.read_bronze(spark, "communities"), lake.read_bronze(spark, "facilities"), t)
    return {
        "key": key,
        "names": {r["code"]: r["name"] for r in names.where(F.col("code").isin(*codes)).collect()} if codes else {},
        "id_masked": pers["id_masked"] if pers else None,
        "run_id": run["run_id"],
        "as_of": t,
        "reasons": reasons,
        "missing_nat": sorted(missing, key=lambda m: m["sampled_at"]),
        "dispatch": sorted(dispatch, key=lambda d: d["action"]),
    }


def _release_zh(r: dict) -> str:
    if r["status"] == "released":
        return f"已于 {time_zh(r['released_at'])} 解除,依据:{BASIS_ZH.get(r['release_basis'], r['release_basis'])}" + (
            f"({detail_zh(r['release_detail'])})" if r.get("release_detail") else ""
        )
    rule = r.get("release_rule") or ""
    code = r["popup_code"]
    if code == "3":
        text = (
            "社区核实为非本人涉疫后解除"
            + ("(经名下登记手机号关联的,需本人签署承诺书)" if "commitment" in rule else "")
            + ",或核实已落实管控措施、末次暴露满14天后解除"
        )
    elif code == "4":
        m = re.search(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2})", rule)
        text = (
            f"查询到 {time_zh(m.group(1))} 及以后采样的核酸阴性结果后自动解除" if m else "查询到核酸阴性结果后自动解除"
        )
    elif code == "T":
        text = "完成行程申报后解除,或该行程满14天后解除"
    elif code == "2":
        text = "隔离期满次日0时自动解除"
    else:
        text = "离开满14天,或该县连续14天无新增本土病例、转为低风险后自动解除"
    if r.get("release_eligible_at"):
        text += f";预计 {time_zh(r['release_eligible_at'])} 可解除"
    return "未解除。解除条件:" + text


def _release_en(r: dict) -> str:
    if r["status"] == "released":
        return f"released {time_en(r['released_at'])} ({r['release_basis']}" + (
            f": {r['release_detail']})" if r.get("release_detail") else ")"
        )
    s = f"active; released by: {r.get('release_rule') or '?'}"
    return s + (f"; due {time_en(r['release_eligible_at'])}" if r.get("release_eligible_at") else "")


def _links_zh(its: list[dict]) -> str:
    names = {"registered": "登记在您身份证名下", "bound": "健康宝绑定", "unbound": "健康宝曾绑定(已解绑)"}
    out = []
    for e in its:
        if e.get("phone"):
            out.append(f"手机号 {e['phone']}({names.get(e.get('link_type'), e.get('link_type'))})")
        elif e.get("feed") == "tickets":
            out.append(f"车票/机票 {e.get('record_id')}")
        elif e.get("feed") == "venue_scans":
            out.append("本人扫码记录")
        else:
            out.append(f"{FEED_ZH.get(e.get('feed'), e.get('feed'))}记录 {e.get('record_id')}")
    return "、".join(dict.fromkeys(out))


def _announcements_zh(its: list[dict]) -> list[str]:
    out = []
    for e in its:
        if not e.get("announcement_id") or not e.get("announced_at"):
            continue
        s = (
            f"公告 {e['announcement_id']}:{time_zh(e['announced_at'])} 公布为{LEVEL_ZH.get(e.get('risk_level'), '中高风险')},"
            f"自 {time_zh(e.get('effective_from'))} 起生效"
        )
        if e.get("retroactive") in (True, "true"):
            s += "。追溯升级:公布时您已离开,该地在您离开后才被列为风险地区"
        out.append(s)
    return list(dict.fromkeys(out))


def named(data: dict, code: str) -> str:
    """光华里社区(110105001001): a community, district or lab by the name the reference feeds gave it at the run."""
    name = data.get("names", {}).get(code)
    return f"{name}({code})" if name else code


def render(data: dict, lang: str = "zh") -> str:
    zh = lang == "zh"
    who = data["id_masked"] or f"{'人员编号' if zh else 'person_key'} {data['key'][:12]}…"
    lines = [
        f"人员 {who}(运行 {data['run_id']} 发布,数据截至 {data['as_of']:%Y-%m-%d %H:%M})"
        if zh
        else f"Person {who}  (as published by run {data['run_id']}, as-of {data['as_of']:%Y-%m-%d %H:%M})"
    ]
    active = [r for r in data["reasons"] if r["status"] == "active"]
    if not data["reasons"]:
        lines.append(
            "近14天内没有弹窗原因:健康宝为绿码。"
            if zh
            else "No popup reason active or released in the last 14 days: the code is green."
        )
    elif not active:
        lines.append(
            "目前没有生效的弹窗原因:健康宝为绿码。以下原因已解除:"
            if zh
            else "No active reason: the code is green. Released in the last 14 days:"
        )
    for i, r in enumerate(data["reasons"], 1):
        its, n = items(r["evidence"])
        code, rtype = r["popup_code"], r["reason_type"]
        if zh:
            state = f"生效中(自 {time_zh(r['raised_at'])} 起)" if r["status"] == "active" else "已解除"
            lines.append(f"{i}. 【{POPUP_ZH.get(code, code)} {TYPE_ZH.get(rtype, rtype)}】{state}")
            for e in its[:MAX_ITEMS]:
                lines.append(f"   依据:{item_zh(rtype, e)}")
            if n > MAX_ITEMS:
                lines.append(f"   ……共 {n} 条记录")
            lines.append(f"   途径:{_links_zh(its)}")
            lines += [f"   {a}" for a in _announcements_zh(its)]
            lines.append(f"   {_release_zh(r)}")
            if r["status"] == "active":
                me, community = ADVICE_ZH.get(code, ("", ""))
                if any(e.get("link_type") == "registered" for e in its):
                    me += "如该号码实为亲属使用,请到社区说明并签署疫情防控承诺书。"
                lines += [f"   {me}", f"   {community}"]
        else:
            state = f"active since {time_en(r['raised_at'])}" if r["status"] == "active" else "released"
            lines.append(f"{i}. [popup {code}: {TYPE_EN.get(rtype, rtype)}] {state}")
            for e in its[:MAX_ITEMS]:
                lines.append(f"   evidence: {item_en(rtype, e)}")
            if n > MAX_ITEMS:
                lines.append(f"   ... {n} records in all")
            lines.append(f"   {_release_en(r)}")
            if r["status"] == "active":
                me, community = ADVICE_EN.get(code, ("", ""))
                if any(e.get("link_type") == "registered" for e in its):
                    me += " If a relative uses that phone, tell your community and sign the commitment letter."
                lines += [f"   {me}", f"   {community}"]
    for m in data["missing_nat"]:
        lines.append(
            f"核酸样本 {m['sample_id']} 于 {time_zh(m['sampled_at'])} 采样,超过24小时平台仍无结果:"
            f"请联系检测机构 {named(data, m['lab_id'])} 上传结果(已派单督促)。"
            if zh
            else f"NAT sample {m['sample_id']} taken {time_en(m['sampled_at'])} has no result on the platform after "
            f"24 h: ask lab {m['lab_id']} to upload it."
        )
    for d in data["dispatch"]:
        if d["action"] == "chase_upload":
            continue
        late = d["due_by"] <= data["as_of"]  # due when first dispatched: not done by then, it is overdue
        lines.append(
            f"派单:{ROUTE_ZH.get(d['route_type'])} {named(data, d['route_code'])} —— {ACTION_ZH.get(d['action'])},"
            f"时限 {time_zh(d['due_by'])}" + (",已超期" if late else "")
            if zh
            else f"Dispatched: {d['route_type']} {d['route_code']} must {d['action']} by {time_en(d['due_by'])}"
            + (" (overdue)" if late else "")
        )
    return "\n".join(lines)


def cmd_explain(args) -> int:
    from jobs.lake import Lake

    resolve_key(args.person)  # fail fast, before Spark starts
    at = parse_as_of(args.as_of) if args.as_of else None
    lake = Lake(args.lake)
    data = gather(get_spark("screening-explain"), lake, args.person, at)
    sys.stdout.write(render(data, args.lang) + "\n")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("explain", help="why a person has (or had) a popup, in plain Chinese (or --lang en)")
    p.add_argument("person", help="18-character ID number or 64-hex person key")
    path_option(p, "lake", "the lake folder")
    p.add_argument("--as-of", help="as published by the latest run at or before this time (default: latest run)")
    p.add_argument("--lang", choices=["zh", "en"], default="zh")
    p.set_defaults(func=cmd_explain)
