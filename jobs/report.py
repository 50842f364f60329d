"""The nightly run report: one self-contained HTML page, `<lake>/reports/<run_id>.html` (no network needed:
charts are inline SVG made with matplotlib, text kept as text so the browser draws the Chinese names).

First a summary strip (people, reasons and dispatch lines, each labelled, and the data-quality status) and
relative links to the run's work orders and Data Docs. Sections: active reasons by popup code and reason type;
this run's assignments and releases; people with an active popup per home district over the last 14 runs (chart);
median hours from popup to release per code (chart); data quality as tables (run_log.dq_summary, as recorded);
rows loaded and rejected per feed; dispatch backlog per street. Only gold tables and counts: no ID number, name
or phone.
"""

from __future__ import annotations

import html
import io
import json
import warnings
from pathlib import Path

from pyspark.sql import functions as F

from jobs import schemas
from jobs.catalog import register
from jobs.reasons_text import ACTION_ZH, BASIS_ZH, POPUP_ZH, ROUTE_ZH, TYPE_ZH, district_name, street_name

RUNS_SHOWN = 14
CSS = """body{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f0f0f0}td.n{text-align:right}.muted{color:#777;font-size:12px}.bad{color:#b00;font-weight:bold}
.strip{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}.card{border:1px solid #ccc;border-radius:6px;
padding:8px 12px;min-width:130px}.card .v{font-size:24px;font-weight:bold}.card .l{font-size:12px}
.card.bad .v{color:#b00}.card.warn .v,.warn{color:#b60}.card.ok .v,.ok{color:#070}h3{font-size:14px}"""


def _table(headers: list[str], rows: list[list], numeric: set[int] | None = None) -> str:
    if not rows:
        return '<p class="muted">无 (none)</p>'
    numeric = numeric if numeric is not None else {i for i, v in enumerate(rows[0]) if isinstance(v, int | float)}
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=n' if i in numeric else ''}>{html.escape('' if v is None else str(v))}</td>"
            for i, v in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


# matplotlib is imported when a chart is drawn, not with this module: only a nightly run's report draws any.
def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # text stays text: the browser renders Chinese with its own fonts
    plt.rcParams["svg.hashsalt"] = "screening"  # same data → same SVG ids
    warnings.filterwarnings("ignore", message="Glyph .* missing from font")
    return plt


def district_chart(series: dict[str, list[tuple[str, int]]], runs: list[str]) -> str:
    """A line per district over the runs; with one run a line has one point, so bars by district instead."""
    plt = _plt()
    if len(runs) == 1 and series:
        bars = sorted(((dict(p).get(runs[0], 0), k) for k, p in series.items()), reverse=True)
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(bars) + 1))
        labels = [district_name(None if k == "outside" else k) for _, k in bars]
        ax.barh(labels[::-1], [n for n, _ in bars][::-1], color="#4c72b0")
        ax.set_xlabel(f"people with an active popup ({runs[0]})")
        return _svg(fig)
    fig, ax = plt.subplots(figsize=(10, 4.2))
    for district, pts in sorted(series.items()):
        by_run = dict(pts)
        ax.plot(
            range(len(runs)),
            [by_run.get(r, 0) for r in runs],
            marker="o",
            label=district_name(None if district == "outside" else district)
            + ("" if district == "outside" else f" {district}"),
        )
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels([r.split("-", 1)[-1] for r in runs], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("people with an active popup")
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    else:  # a legend of no lines only warns
        ax.text(0.5, 0.5, "no active popups in these runs", transform=ax.transAxes, ha="center", va="center")
    return _svg(fig)


def median_chart(rows: list[tuple[str, float]]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.bar([f"popup {c}" for c, _ in rows], [h for _, h in rows], color="#4c72b0")
    for i, (_, h) in enumerate(rows):
        ax.text(i, h, f"{h:g}", ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("median hours to release")
    return _svg(fig)


def gather(spark, lake, run_id: str, run_row: dict | None = None) -> dict:
    register(
        spark,
        lake,
        "popup_reasons run_log assignment_list release_list dispatch_list person_area popup_to_release_by_code",
    )
    if run_row is not None:
        schema = schemas.gold_schema("run_log")
        (
            lake.read_gold(spark, "run_log")
            .where(F.col("run_id") != run_id)
            .unionByName(spark.createDataFrame([run_row], schema))
            .createOrReplaceTempView("run_log")
        )
    q = lambda s: [tuple(r) for r in spark.sql(s).collect()]  # noqa: E731
    run = spark.sql(f"SELECT * FROM run_log WHERE run_id = '{run_id}'").first()
    if run is None:
        raise SystemExit(f"report: run {run_id} is not in run_log")
    runs = [
        r[0]
        for r in q(f"""SELECT run_id FROM run_log WHERE (status = 'completed' OR run_id = '{run_id}')
        AND as_of <= (SELECT as_of FROM run_log WHERE run_id = '{run_id}') ORDER BY as_of DESC, run_id DESC
        LIMIT {RUNS_SHOWN}""")
    ][::-1]
    in_runs = ", ".join(f"'{r}'" for r in runs)
    per_district = q(f"""
        WITH r AS (SELECT p.person_key, f.as_of AS first_as_of, x.as_of AS release_as_of FROM popup_reasons p
                   JOIN run_log f ON f.run_id = p.first_run_id LEFT JOIN run_log x ON x.run_id = p.release_run_id)
        SELECT l.run_id, coalesce(a.district_code, 'outside'), count(DISTINCT r.person_key)
        FROM run_log l JOIN r ON r.first_as_of <= l.as_of AND (r.release_as_of IS NULL OR r.release_as_of > l.as_of)
        LEFT JOIN person_area a ON a.person_key = r.person_key
        WHERE l.run_id IN ({in_runs}) GROUP BY 1, 2""")
    summary = (
        spark.sql(f"""SELECT
        (SELECT count(DISTINCT person_key) FROM popup_reasons WHERE status = 'active') AS people_active,
        (SELECT count(*) FROM assignment_list WHERE run_id = '{run_id}') AS reasons_assigned,
        (SELECT count(DISTINCT person_key) FROM assignment_list WHERE run_id = '{run_id}') AS people_assigned,
        (SELECT count(*) FROM release_list WHERE run_id = '{run_id}') AS reasons_released,
        (SELECT count(DISTINCT person_key) FROM release_list WHERE run_id = '{run_id}') AS people_released,
        (SELECT count(DISTINCT person_key) FROM release_list WHERE run_id = '{run_id}' AND person_green)
          AS people_green""")
        .first()
        .asDict()
    )
    return {
        "run": run.asDict(),
        "summary": summary,
        "runs": runs,
        "per_district": per_district,
        "active": q("""SELECT popup_code, reason_type, count(*), count(DISTINCT person_key) FROM popup_reasons
                       WHERE status = 'active' GROUP BY 1, 2 ORDER BY 1, 2"""),
        "assigned": q(f"""SELECT popup_code, reason_type, count(*) FROM assignment_list WHERE run_id = '{run_id}'
                          GROUP BY 1, 2 ORDER BY 1, 2"""),
        "released": q(f"""SELECT popup_code, release_basis, count(*), sum(CASE WHEN person_green THEN 1 ELSE 0 END)
                          FROM release_list WHERE run_id = '{run_id}' GROUP BY 1, 2 ORDER BY 1, 2"""),
        "median": q("SELECT popup_code, released, median_hours, p90_hours FROM popup_to_release_by_code ORDER BY 1"),
        "backlog": q(f"""SELECT route_type, coalesce(street_code, route_code), action, count(*), min(since),
                                count_if(due_by <= as_of), count_if(first_run_id = run_id)
                         FROM dispatch_list WHERE run_id = '{run_id}' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""),
    }


def _json(text: str | None) -> dict:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {"(unreadable)": text}


MODE_ZH = {"nightly": "夜间全量", "hourly": "每小时增量"}


def _card(label: str, value, note: str = "", cls: str = "") -> str:
    return (
        f'<div class="card {cls}"><div class="v">{html.escape(str(value))}</div>'
        f'<div class="l">{html.escape(label)}</div><div class="muted">{html.escape(note)}</div></div>'
    )


def dq_status(dq: dict) -> tuple[str, str]:
    """(text, css class): halted by a gate, warnings (failed expectations or tripped checks that did not halt), or
    passed."""
    if "halted_by" in dq:
        return f"熔断 halted: {dq['halted_by'].get('gate')}", "bad"
    failed = sum(v.get("failed", 0) for st in DQ_STAGES for v in (dq.get(st) or {}).get("suites", {}).values())
    tripped = sum(len(g.get("tripped", [])) for st in DQ_STAGES for g in (dq.get(st) or {}).get("gates", {}).values())
    if failed or tripped or dq.get("suites_failed"):
        return f"有告警 warnings: {failed} expectations, {tripped} gate checks", "warn"
    if not any((dq.get(st) or {}).get("suites") for st in DQ_STAGES):
        return "未运行 no suites ran", "warn"
    return "通过 passed", "ok"


def summary_strip(d: dict) -> str:
    """The answer first: people, this run's changes, dispatch lines and data quality, each labelled people,
    reasons or lines."""
    s, backlog = d["summary"], d["backlog"]
    by_route: dict[str, int] = {}
    for rt, _, _, n, _, _, _ in backlog:
        by_route[rt] = by_route.get(rt, 0) + n
    overdue = sum(r[5] for r in backlog)
    text, cls = dq_status(_json(d["run"].get("dq_summary")))
    routes = " · ".join(f"{ROUTE_ZH.get(r, r)} {n}" for r, n in sorted(by_route.items()))
    return (
        '<div class="strip">'
        + _card("人 有生效弹窗 (people with an active popup)", s["people_active"])
        + _card("人 本次新增原因 (people assigned)", s["people_assigned"], f"{s['reasons_assigned']} 条原因 reasons")
        + _card("人 本次解除原因 (people released)", s["people_released"], f"{s['reasons_released']} 条原因 reasons")
        + _card("人 转为绿码 (people green again)", s["people_green"])
        + _card("条 派单 (dispatch lines)", sum(by_route.values()), routes)
        + _card("条 超期 (overdue lines)", overdue, "", "bad" if overdue else "")
        + _card("数据质量 (data quality)", text.split(" ", 1)[0], text.split(" ", 1)[-1], cls)
        + "</div>"
    )


def links(run_id: str) -> str:
    """Relative links (the report sits in <lake>/reports/): the run's work orders and Data Docs."""
    return (
        f'<p>派单工作单 (work orders): <a href="../exports/dispatch/{html.escape(run_id)}/index.xlsx">index.xlsx</a> · '
        f'<a href="../exports/dispatch/{html.escape(run_id)}/">folder</a> · 数据质量详情 (Data Docs): '
        '<a href="../dq/docs/index.html">dq/docs/index.html</a></p>'
    )


DQ_STAGES = ("feeds", "results", "published")
# What the gates counted, said plainly: a first run's release list also holds reasons raised and released before it,
# which no gate counts (they were never active in gold).
DQ_COUNT_ZH = {
    "people_assigned": "people_assigned: 人 本次新增原因 (people assigned; assign_volume gate)",
    "people_released": "people_released: 人 此前生效、本次解除 (people whose active reasons this run releases; "
    "release_volume gate)",
    "late_rows": "late_rows: 条 迟到记录 (rows known before the previous run's as-of, delivered late)",
}
DQ_STAGE_ZH = {"feeds": "载入数据 feeds", "results": "筛查结果 results", "published": "发布 published"}


def dq_tables(dq: dict) -> list[str]:
    """The data-quality record as tables: its status, each suite, each gate, and the other counts."""
    text, cls = dq_status(dq)
    out = [f'<p class="{cls}">{html.escape(text)}</p>']
    if "halted_by" in dq:
        out.append(f"<p>{html.escape(str(dq['halted_by'].get('message', '')))}</p>")
    suites = [
        [
            DQ_STAGE_ZH[st],
            name,
            "通过" if v.get("success") else "未通过",
            v.get("expectations"),
            v.get("failed"),
            v.get("failed_gating"),
        ]
        for st in DQ_STAGES
        for name, v in sorted((dq.get(st) or {}).get("suites", {}).items())
    ]
    out.append("<h3>检查套件 (expectation suites)</h3>")
    out.append(_table(["阶段 stage", "suite", "结果", "expectations", "failed", "failed, gating"], suites))
    gates = [
        [DQ_STAGE_ZH[st], gate, g.get("checked", 0), g.get("no_history", 0), "; ".join(g.get("tripped", [])) or "—"]
        for st in DQ_STAGES
        for gate, g in sorted((dq.get(st) or {}).get("gates", {}).items())
    ]
    out.append("<h3>熔断闸门 (gates: a tripped gate halts the run)</h3>")
    out.append(_table(["阶段 stage", "gate", "checked", "no history", "tripped"], gates, numeric={2, 3}))
    counts = [
        [DQ_COUNT_ZH.get(k, k), v]
        for k, v in sorted(dq.items())
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    counts += [
        [f"{st}.{k}", v]
        for st in DQ_STAGES
        for k, v in sorted((dq.get(st) or {}).items())
        if isinstance(v, int | float) and not isinstance(v, bool) and k != "seconds"
    ]
    out.append("<h3>计数 (counts)</h3>")
    out.append(_table(["item", "value"], counts, numeric={1}))
    return out


def render(d: dict) -> str:
    run = d["run"]
    out = [
        f"<!doctype html><html lang=zh><head><meta charset=utf-8><title>运行报告 {html.escape(run['run_id'])}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>健康宝弹窗筛查 运行报告 · {html.escape(run['run_id'])}</h1>",
        f"<p>数据截至 (as-of) {run['as_of']:%Y-%m-%d %H:%M} · {MODE_ZH.get(run['mode'], run['mode'] or '')} "
        f"({html.escape(run['mode'] or '')}) · 政策版本 (policy) {html.escape(run.get('policy_version') or '')}</p>",
        summary_strip(d),
        links(run["run_id"]),
    ]
    out.append('<h2 id="active">生效中的弹窗原因 (active reasons by popup code and reason type)</h2>')
    out.append(
        _table(
            ["弹窗", "原因类型", "reason_type", "原因数", "人数"],
            [[POPUP_ZH.get(c, c), TYPE_ZH.get(t, t), t, n, p] for c, t, n, p in d["active"]],
        )
    )
    out.append('<h2 id="assigned">本次运行新增 (assigned in this run)</h2>')
    out.append(
        _table(
            ["弹窗", "原因类型", "reason_type", "新增"],
            [[POPUP_ZH.get(c, c), TYPE_ZH.get(t, t), t, n] for c, t, n in d["assigned"]],
        )
    )
    out.append(f"<p>合计 {sum(r[2] for r in d['assigned'])} 条原因新增 (reasons assigned).</p>")
    out.append('<h2 id="released">本次运行解除 (released in this run)</h2>')
    out.append(
        _table(
            ["弹窗", "解除依据", "release_basis", "解除", "转绿码"],
            [[POPUP_ZH.get(c, c), BASIS_ZH.get(b, b), b, n, g] for c, b, n, g in d["released"]],
        )
    )
    out.append(f"<p>合计 {sum(r[2] for r in d['released'])} 条原因解除 (reasons released).</p>")
    out.append(
        f'<h2 id="districts">各区弹窗人数 (people with an active popup per district, last {len(d["runs"])} runs)</h2>'
    )
    series: dict[str, list] = {}
    for rid, dist, n in d["per_district"]:
        series.setdefault(dist, []).append((rid, n))
    out.append(district_chart(series, d["runs"]) if d["runs"] else '<p class="muted">无</p>')
    last = sorted(((dist, dict(p).get(d["runs"][-1], 0)) for dist, p in series.items()), key=lambda x: (-x[1], x[0]))
    out.append(
        _table(
            ["区", "district_code", f"人数 ({d['runs'][-1] if d['runs'] else ''})"],
            [[district_name(None if k == "outside" else k), k, n] for k, n in last],
        )
    )
    out.append('<h2 id="median">弹窗到解除的时长 (median hours from popup to release, per code)</h2>')
    if d["median"]:
        out.append(median_chart([(c, float(m)) for c, _, m, _ in d["median"]]))
    out.append(
        _table(
            ["弹窗", "已解除", "中位小时数", "P90 小时数"],
            [[POPUP_ZH.get(c, c), n, m, p] for c, n, m, p in d["median"]],
            numeric={1, 2, 3},
        )
    )
    out.append('<h2 id="dq">数据质量 (data quality, run_log.dq_summary)</h2>')
    out += dq_tables(_json(run.get("dq_summary")))
    if run.get("overrides"):
        out.append(f"<p>Overrides: {html.escape(run['overrides'])}</p>")
    out.append('<h2 id="rejects">各数据源载入与拒收 (rows loaded and rejected per feed, this run)</h2>')
    rows_in, rejected = _json(run.get("rows_in")), _json(run.get("rows_rejected"))
    out.append(
        _table(
            ["feed", "loaded", "rejected"],
            [[f, rows_in.get(f, 0), rejected.get(f, 0)] for f in sorted(set(rows_in) | set(rejected))],
        )
    )
    out.append('<h2 id="dispatch">派单待办 (dispatch backlog per street, this run)</h2>')
    out.append(
        _table(
            ["派发类型", "街道/对象", "代码", "处置要求", "条数 (lines)", "新增 (new)", "最早弹窗", "超期 (overdue)"],
            [
                [
                    ROUTE_ZH.get(rt, rt),
                    street_name(code) if rt == "community" else "",
                    code,
                    ACTION_ZH.get(a, a),
                    n,
                    new,
                    f"{s:%Y-%m-%d %H:%M}" if s else "",
                    late,
                ]
                for rt, code, a, n, s, late, new in d["backlog"]
            ],
            numeric={4, 5, 7},
        )
    )
    out.append("<p class=muted>Generated by jobs/report.py from the gold tables; no personal data.</p></body></html>")
    return "\n".join(out)


def write(spark, lake, run_id, log=print, run_row: dict | None = None) -> Path:
    """The run's report. `run_row`: its run_log row while the run is still publishing (it is committed last)."""
    path = Path(lake.root) / "reports" / f"{run_id}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(gather(spark, lake, run_id, run_row)), encoding="utf-8")
    log(f"report: {path}")
    return path
