"""The run gates of outputs.md, as plain functions of numbers (no Spark): each returns the checks it made.

A check is a dict: gate, subject (a feed or a popup code or "run"), status (`ok`, `tripped`, `no_history`),
message (one line with the numbers) and the numbers themselves. `trips(checks)` keeps the tripped ones in the
(gate, message, details) form jobs.run.halt() takes. Thresholds come from data_quality/gates.toml.
"""

from __future__ import annotations

import json
import statistics
import tomllib
from functools import cache

from jobs.schemas import optional_feeds
from jobs.settings import settings

GATE_NAMES = (
    "reject_share",
    "feed_empty",
    "feed_volume",
    "feed_suite",
    "assign_volume",
    "release_volume",
    "release_share",
    "gold_suite",
)


def config(path: str | None = None) -> dict:
    """The thresholds: data_quality/gates.toml, or the file named by SCREENING_DQ_GATES."""
    return _load(str(path or settings().dq_gates))


@cache
def _load(path: str) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def check(gate: str, subject: str, tripped: bool | None, message: str, **numbers) -> dict:
    status = "no_history" if tripped is None else ("tripped" if tripped else "ok")
    return {"gate": gate, "subject": subject, "status": status, "message": message, **numbers}


def trips(checks: list[dict]) -> list[tuple[str, str, dict]]:
    out = []
    for c in checks:
        if c["status"] == "tripped":
            details = {k: v for k, v in c.items() if k not in ("gate", "status", "message")}
            out.append((c["gate"], c["message"], details))
    return out


# -- history -------------------------------------------------------------------------------------------------
def recent_runs(run_log_rows: list[dict], mode: str, run_id: str, cfg: dict) -> list[dict]:
    """Completed runs of the same mode before this one, newest first, at most history.runs of them; the JSON
    columns parsed."""
    runs = [r for r in run_log_rows if r["status"] == "completed" and r["mode"] == mode and r["run_id"] != run_id]
    runs.sort(key=lambda r: (r["as_of"], r["finished_at"] or r["started_at"]), reverse=True)
    out = []
    for r in runs[: cfg["history"]["runs"]]:
        out.append(
            {
                "run_id": r["run_id"],
                "as_of": r["as_of"],
                **{k: json.loads(r.get(k) or "{}") for k in ("rows_in", "rows_rejected", "rows_out", "dq_summary")},
            }
        )
    return out


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else 0.0


# -- feed gates ----------------------------------------------------------------------------------------------
def feed_checks(
    loaded: dict[str, int], rejected: dict[str, int], rejected_files: dict[str, int], history: list[dict], cfg: dict
) -> list[dict]:
    out = []
    rs, fe, fv = cfg["reject_share"], cfg["feed_empty"], cfg["feed_volume"]
    min_runs = cfg["history"]["min_runs"]
    # an optional feed (feeds.md: reference lists that only name things) never "should have arrived": neither its
    # silence nor its volume halts a run; its rejected share does, as any feed's
    optional = set(optional_feeds())
    for feed in sorted(loaded):
        n_ok, n_bad, n_files = loaded[feed], rejected.get(feed, 0), rejected_files.get(feed, 0)
        total = n_ok + n_bad
        # reject_share
        limit = rs.get("feeds", {}).get(feed, rs["max_share"])
        share = n_bad / total if total else 0.0
        if n_files:
            out.append(
                check(
                    "reject_share",
                    feed,
                    True,
                    f"{feed}: {n_files} file(s) rejected whole (missing columns), {n_bad} of {total} rows rejected",
                    rejected_files=n_files,
                    rows=total,
                    rejected=n_bad,
                )
            )
        elif total >= rs["min_rows"]:
            out.append(
                check(
                    "reject_share",
                    feed,
                    share > limit,
                    f"{feed}: {n_bad} of {total} rows rejected ({share:.1%}, threshold {limit:.1%})",
                    rows=total,
                    rejected=n_bad,
                    share=round(share, 4),
                    threshold=limit,
                )
            )
        # feed_empty: expected only after k substantial deliveries in a row (each at least min_recent_rows), so a
        # feed of 1, 1, 1 rows a run going silent is a quiet day, not a broken feed (nothing recorded, like
        # feed_volume under min_median)
        if feed not in fe.get("never_expected", []) and feed not in optional:
            k, floor = fe["expected_after"], max(1, fe.get("feeds", {}).get(feed, fe["min_recent_rows"]))
            last = [h["rows_in"].get(feed, 0) for h in history[:k]]
            expected = len(last) == k and all(x >= floor for x in last)
            if expected:
                out.append(
                    check(
                        "feed_empty",
                        feed,
                        n_ok == 0,
                        f"{feed}: {n_ok} rows loaded in this run "
                        f"({n_bad} rejected); it delivered {', '.join(map(str, last))} rows in the last "
                        f"{k} runs",
                        rows=n_ok,
                        rejected=n_bad,
                        recent=last,
                    )
                )
        # feed_volume
        past = [h["rows_in"].get(feed, 0) for h in history]
        past = [x for x in past if x > 0]
        low, high = fv.get("feeds", {}).get(feed, (fv["low"], fv["high"]))
        if n_ok == 0 or feed in optional:
            continue  # absence is feed_empty's business
        if len(past) < min_runs:
            out.append(
                check(
                    "feed_volume",
                    feed,
                    None,
                    f"{feed}: {len(past)} earlier deliveries (< {min_runs})",
                    rows=n_ok,
                    runs=len(past),
                )
            )
            continue
        med = _median(past)
        if med < fv["min_median"]:
            continue
        ratio = n_ok / med
        out.append(
            check(
                "feed_volume",
                feed,
                not (low <= ratio <= high),
                f"{feed}: {n_ok} rows loaded, {ratio:.2f}× the median {med:g} of the last {len(past)} "
                f"deliveries (allowed {low:g}×–{high:g}×)",
                rows=n_ok,
                median=med,
                ratio=round(ratio, 3),
                low=low,
                high=high,
                recent=past,
            )
        )
    return out


# -- result gates --------------------------------------------------------------------------------------------
def result_checks(
    people_assigned: int,
    people_released: int,
    released_by_code: dict[str, int],
    active_by_code: dict[str, int],
    history: list[dict],
    cfg: dict,
) -> list[dict]:
    out = []
    min_runs = cfg["history"]["min_runs"]
    for gate, n, key in (
        ("assign_volume", people_assigned, "people_assigned"),
        ("release_volume", people_released, "people_released"),
    ):
        g = cfg[gate]
        past = [h["dq_summary"][key] for h in history if key in h.get("dq_summary", {})]
        verb = "assign" if gate == "assign_volume" else "release"
        if len(past) < min_runs:
            out.append(
                check(
                    gate,
                    "run",
                    None,
                    f"would {verb} {n} people; {len(past)} earlier runs (< {min_runs})",
                    people=n,
                    runs=len(past),
                )
            )
            continue
        med = _median(past)
        limit = g["high"] * med
        out.append(
            check(
                gate,
                "run",
                n > limit and n >= g["min_people"],
                f"would {verb} {n} people, the median of the last {len(past)} runs is {med:g} "
                f"(limit {g['high']:g}× = {limit:g}, and at least {g['min_people']})",
                people=n,
                median=med,
                limit=limit,
                recent=past,
            )
        )
    rs = cfg["release_share"]
    for code in sorted(active_by_code):
        active, rel = active_by_code[code], released_by_code.get(code, 0)
        if active < rs["min_active"]:
            continue
        share = rel / active
        out.append(
            check(
                "release_share",
                code,
                share > rs["max_share"],
                f"would release {rel} of the {active} people with an active popup {code} ({share:.0%}, "
                f"threshold {rs['max_share']:.0%})",
                people=rel,
                active=active,
                share=round(share, 4),
                threshold=rs["max_share"],
            )
        )
    return out


def suite_checks(gate: str, failed: list[dict]) -> list[dict]:
    """feed_suite / gold_suite: the failed expectations marked gate = true (one check per suite)."""
    by_suite: dict[str, list[dict]] = {}
    for f in failed:
        by_suite.setdefault(f["suite"], []).append(f)
    out = []
    for suite, fs in sorted(by_suite.items()):
        what = "; ".join(f"{f['label']} (observed {f['observed']})" for f in fs[:3])
        more = f" and {len(fs) - 3} more" if len(fs) > 3 else ""
        out.append(
            check(
                gate,
                suite,
                True,
                f"{suite}: {len(fs)} gating expectation(s) failed: {what}{more}",
                failed=[f["label"] for f in fs],
            )
        )
    return out
