"""The nightly run report: one self-contained HTML page, `<lake>/reports/<run_id>.html` (no network needed:
charts are inline SVG made with matplotlib, text kept as text so the browser draws the Chinese names).

Sections: active reasons by popup code and reason type; this run's assignments and releases; people with an
active popup per home district over the last 14 runs (chart); median hours from popup to release per code
(chart); data-quality status (run_log.dq_summary, as recorded); rows loaded and rejected per feed; dispatch
backlog per street. Only gold tables and counts: no ID number, name or phone.
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
th{background:#f0f0f0}td.n{text-align:right}.muted{color:#777;font-size:12px}.bad{color:#b00;font-weight:bold}"""


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
    plt = _plt()
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
    return {
        "run": run.asDict(),
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
                                count_if(due_by <= as_of)
                         FROM dispatch_list WHERE run_id = '{run_id}' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""),
    }


def _json(text: str | None) -> dict:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {"(unreadable)": text}


def render(d: dict) -> str:
    run = d["run"]
    out = [
        f"<!doctype html><html lang=zh><head><meta charset=utf-8><title>运行报告 {html.escape(run['run_id'])}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>健康宝弹窗筛查 运行报告 · {html.escape(run['run_id'])}</h1>",
        f"<p>as-of {run['as_of']:%Y-%m-%d %H:%M} · mode {html.escape(run['mode'] or '')} · policy "
        f"{html.escape(run.get('policy_version') or '')}</p>",
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
    out.append('<h2 id="dq">数据质量 (data-quality status, run_log.dq_summary)</h2>')
    dq = _json(run.get("dq_summary"))
    if "halted_by" in dq:
        out.append(f'<p class="bad">halted by gate {html.escape(str(dq["halted_by"].get("gate")))}</p>')
    out.append(
        _table(
            ["item", "value"],
            [
                [k, v if isinstance(v, int | float) else json.dumps(v, ensure_ascii=False)]
                for k, v in sorted(dq.items())
            ],
            numeric=set(),
        )
    )
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
            ["派发类型", "街道/对象", "代码", "处置要求", "条数", "最早弹窗", "超期"],
            [
                [
                    ROUTE_ZH.get(rt, rt),
                    street_name(code) if rt == "community" else "",
                    code,
                    ACTION_ZH.get(a, a),
                    n,
                    f"{s:%Y-%m-%d %H:%M}" if s else "",
                    late,
                ]
                for rt, code, a, n, s, late in d["backlog"]
            ],
            numeric={4, 6},
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
