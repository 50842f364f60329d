"""Published facts stand, as a property (issue 38, point 7; rules.md "A person's state": "Published assignments
and releases are facts: later data can raise new reasons or release active ones, never rewrite what was
published", and "Precise semantics: effective knowledge time").

Over generated data, for as-of times T1 < T2 with no late row between them, every reason `popup_reasons` showed
at T1 is still there at T2 with the same identity (person_key, popup_code, reason_type, cause, raised_at,
first_run_id); one released at T1 is unchanged at T2 (status, released_at, release_basis, release_detail,
release_run_id); one active at T1 is at T2 still active, or released at an instant strictly after T1. A reason
new at T2 was raised strictly after T1. Active reasons may change their evidence and when they fall due.

No late rows: the whole landing set is there before the first run, so that run ingests every file (the later
runs ingest nothing) and every row counts from its own knowledge time; each run's `late_rows` is asserted 0.

One generated landing set (sf 0.0005 from 2022-05-01 for 7 days, seed 7, grid dwells reported in 4 pieces as the
bench lands them), plus corrections the generator does not make (`land_corrections`: re-deliveries of generated
rows known between the runs: venues moved into and out of risk areas, retroactive `low`s, stays re-reported
shorter, tickets refunded after the journey, case reports corrected) and a policy version in force from 05-05
08:00 (`policy_switch`: trip card window 7 days, quarantine 10 days, popup 1 off, as in 2022), and one nightly run
at T1 (05-04 01:00), whose lake is copied twice:
- nightly: one nightly run at T2 (05-07 01:00), across the corrections, the policy switch, the scenario's
  retroactive `low` (05-06 10:00), a verification (05-04 10:00), a medium -> high change, the lifting of case
  county CC2, and three days of cases, tests, scans and dwells;
- hourly: hourly runs through the day after T1 (10:30 and 22:00: the corrections, the day's dwell pieces,
  scans, NAT results and case reports become known before, between and after them), each compared with the run
  before, and the last with T1.
Spark is slow here, so the runs are few; `run` is what `screening run` calls (jobs/cli.py).
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from jobs.devtools.generate import generate
from jobs.lake import Lake
from jobs.run import run
from tests.landing import write_feed

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("small_jobs")]  # minutes of Spark: deselect with -m "not slow"

START, DAYS, SF, SEED, GRID_SPLIT = date(2022, 5, 1), 7, 0.0005, 7, 4
T1 = datetime(2022, 5, 4, 1, 0)
NIGHTLY_T2 = datetime(2022, 5, 7, 1, 0)
HOURLY = [datetime(2022, 5, 4, 10, 30), datetime(2022, 5, 4, 22, 0)]
CORRECTED_AT = [datetime(2022, 5, 4, 6, 0), datetime(2022, 5, 4, 13, 0), datetime(2022, 5, 4, 20, 0)]  # between runs
# A policy version in force from after the last hourly run and before T2, as 2022's changes (trip card window
# 14 -> 7 days, quarantine 21 -> 10 days, popup 1 switched off); added to the policy file before the first run.
# (Between hourly runs it would make the hourly run after it a full recompute, not an incremental one.)
SWITCH_AT = datetime(2022, 5, 5, 8, 0)
SWITCH = {
    "id": "test-2022-05-switch",
    "trip_window_days": 7,
    "quarantine_days": 10,
    "popups_enabled": ["2", "3", "4", "5", "T"],
}

IDENTITY = ("person_key", "popup_code", "reason_type", "cause", "raised_at", "first_run_id")
RELEASE = ("status", "released_at", "release_basis", "release_detail", "release_run_id")
SHOWN = (
    "popup_code",
    "reason_type",
    "cause",
    "status",
    "raised_at",
    "released_at",
    "release_basis",
    "release_detail",
    "first_run_id",
    "release_run_id",
)


def quiet(*_):
    pass


# -- corrections the generator does not make ----------------------------------------------------------------
def landed_rows(landing: Path, feed: str) -> list[dict]:
    """The good rows of a generated feed, in file order (the manifest's bad rows left out)."""
    bad = {
        (b["file"], b["line"]) for b in json.loads((landing / "_generated" / "manifest.json").read_text())["bad_rows"]
    }
    out = []
    for path in sorted((landing / feed).glob("*.csv")):
        rel = f"{feed}/{path.name}"
        with open(path, encoding="utf-8-sig", newline="") as f:
            for line, row in enumerate(csv.DictReader(f), 2):
                if (rel, line) not in bad:
                    out.append(row)
    return out


def land_corrections(landing: Path, t1: datetime, at: list[datetime], seed: int = SEED) -> dict[str, int]:
    """Re-deliveries of generated rows known by `t1`, with newer values known at the instants `at` (after t1),
    landed with everything else: venues moved into and out of risk areas, retroactive `low`s lifting areas with
    visits and stays under them from their start, stays re-reported shorter, tickets refunded after the journey,
    case reports corrected (phone withdrawn, another county). Rows are picked from the generated ones by `seed`,
    so the same arguments land the same files. Returns the rows written per feed."""
    rng = random.Random(f"{seed}/corrections")
    lo = t1 - timedelta(days=12)

    def ts(s: str) -> datetime:
        return datetime.fromisoformat(s)

    def fmt(x: datetime) -> str:
        return x.strftime("%Y-%m-%dT%H:%M:%S")

    def when(i: int) -> str:
        return fmt(at[i % len(at)])

    def pick(rows: list, n: int) -> list:
        return rng.sample(rows, min(n, len(rows)))

    venues = {v["venue_id"]: v for v in landed_rows(landing, "venues") if ts(v["updated_at"]) <= t1}
    scans = [
        s for s in landed_rows(landing, "venue_scans") if lo <= ts(s["scanned_at"]) <= t1 and s["venue_id"] in venues
    ]
    anns = [a for a in landed_rows(landing, "risk_announcements") if ts(a["announced_at"]) <= t1]
    lifted = {(a["area_code"], a["building_id"]) for a in anns if a["risk_level"] == "low"}
    risky = [
        a for a in anns if a["risk_level"] in ("medium", "high") and (a["area_code"], a["building_id"]) not in lifted
    ]
    bj_areas = [
        a for a in risky if a["area_code"].startswith("11") and len(a["area_code"]) == 12 and not a["building_id"]
    ]
    in_area = {v: [a for a in risky if venues[v]["community_code"].startswith(a["area_code"])] for v in venues}
    scanned = Counter(s["venue_id"] for s in scans)
    out: dict[str, list[dict]] = defaultdict(list)

    # venues: two scanned venues moved into a Beijing risk community, two moved out of their risk area
    quiet_comms = sorted(
        {
            v["community_code"]
            for v in venues.values()
            if v["community_code"].startswith("11")
            and not any(v["community_code"].startswith(a["area_code"]) for a in risky)
        }
    )
    outside = sorted(v for v in scanned if not in_area[v] and venues[v]["community_code"].startswith("11"))
    inside = sorted(v for v in scanned if in_area[v])
    for i, v in enumerate(pick(outside, 2)):
        area = bj_areas[i % len(bj_areas)]["area_code"]
        out["venues"].append(
            {**venues[v], "county_code": area[:6], "community_code": area, "building_id": "", "updated_at": when(i)}
        )
    for i, v in enumerate(pick(inside, 2)):
        comm = rng.choice(quiet_comms)
        out["venues"].append(
            {**venues[v], "county_code": comm[:6], "community_code": comm, "building_id": "", "updated_at": when(i + 1)}
        )

    # retroactive lows from the start of the period: a Beijing community with scans in it, and the area outside
    # Beijing that alone stars the city with the most stay hours
    stays = [
        s for s in landed_rows(landing, "telecom_stays") if lo <= ts(s["last_seen"]) and ts(s["reported_at"]) <= t1
    ]
    hours: Counter = Counter()
    for s in stays:
        hours[s["county_code"][:4]] += (ts(s["last_seen"]) - ts(s["first_seen"])).total_seconds() / 3600
    visited = [a for a in bj_areas if any(in_area[v] and a in in_area[v] for v in scanned)]
    per_city = Counter(a["area_code"][:4] for a in risky)  # a city starred by this area alone loses its star
    away = sorted(
        (a for a in risky if not a["area_code"].startswith("11") and per_city[a["area_code"][:4]] == 1),
        key=lambda a: (-hours[a["area_code"][:4]], a["announcement_id"]),
    )
    for i, a in enumerate(pick(visited, 1) + away[:1]):
        out["risk_announcements"].append(
            {**a, "announcement_id": f"RAX{i:07d}", "risk_level": "low", "announced_at": when(i + 2)}
        )

    # stays of at least 4 hours outside Beijing, where there were cases, risk areas or a border port, re-reported
    # as 20 minutes
    hot = (
        {c["county_code"] for c in landed_rows(landing, "case_reports")}
        | {a["area_code"][:6] for a in risky}
        | {b["county_code"] for b in landed_rows(landing, "border_port_counties")}
    )
    starred = {a["area_code"][:4] for a in risky}
    long_away = [
        s
        for s in stays
        if not s["county_code"].startswith("11")
        and (s["county_code"] in hot or s["county_code"][:4] in starred)
        and ts(s["last_seen"]) - ts(s["first_seen"]) >= timedelta(hours=4)
    ]
    for i, s in enumerate(pick(long_away, 3)):
        out["telecom_stays"].append(
            {**s, "last_seen": fmt(ts(s["first_seen"]) + timedelta(minutes=20)), "reported_at": when(i)}
        )

    # tickets refunded after the journey (the latest version known at T1 not refunded, arrived before T1): two
    # entries into Beijing within 72 hours, two journeys to a county with cases, risk areas or a border port
    latest: dict[str, dict] = {}
    for tk in landed_rows(landing, "tickets"):
        if ts(tk["status_at"]) <= t1 and (
            tk["ticket_id"] not in latest or tk["status_at"] >= latest[tk["ticket_id"]]["status_at"]
        ):
            latest[tk["ticket_id"]] = tk
    travelled = sorted(
        (tk for tk in latest.values() if tk["status"] != "refunded" and lo <= ts(tk["arrive_at"]) <= t1),
        key=lambda tk: tk["ticket_id"],
    )
    entries = [
        tk for tk in travelled if tk["dest_county"].startswith("11") and ts(tk["arrive_at"]) >= t1 - timedelta(hours=72)
    ]
    trips = [tk for tk in travelled if tk["dest_county"] in hot]
    for i, tk in enumerate(pick(entries, 2) + pick(trips, 2)):
        out["tickets"].append({**tk, "status": "refunded", "status_at": when(i + 1)})

    # local case reports corrected: the phone withdrawn, or another county
    cases = [
        c
        for c in landed_rows(landing, "case_reports")
        if c["case_type"] == "local" and lo <= ts(c["reported_at"]) <= t1
    ]
    with_phone = sorted((c for c in cases if c["phone"]), key=lambda c: c["case_id"])
    counties = sorted({c["county_code"] for c in cases})
    for i, c in enumerate(pick(with_phone, 2)):
        out["case_reports"].append({**c, "phone": "", "reported_at": when(i + 2)})
    for i, c in enumerate(pick([c for c in cases if not c["county_code"].startswith("11")], 1)):
        other = [x for x in counties if x != c["county_code"]]
        out["case_reports"].append(
            {**c, "county_code": rng.choice(other) if other else c["county_code"], "reported_at": when(i)}
        )

    for feed, rows in out.items():
        write_feed(landing, feed, rows, name="zz-corrections.csv")
    return {feed: len(rows) for feed, rows in out.items()}


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table, e.g. dispatch_due_hours
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(v, ensure_ascii=False)


@pytest.fixture(scope="module", autouse=True)
def policy_switch(tmp_path_factory):
    """The project's policy file with one more version, in force from SWITCH_AT (SCREENING_POLICY, restored after)."""
    import tomllib

    from jobs.policy import policy_path

    text = policy_path().read_text(encoding="utf-8")
    last = tomllib.loads(text)["version"][-1]
    assert last["effective_from"] < T1
    new = {**last, **SWITCH, "effective_from": SWITCH_AT}
    path = tmp_path_factory.mktemp("policy") / "policy.toml"
    path.write_text(
        text + "\n[[version]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in new.items()), encoding="utf-8"
    )
    old = os.environ.get("SCREENING_POLICY")
    os.environ["SCREENING_POLICY"] = str(path)
    yield path
    if old is None:
        os.environ.pop("SCREENING_POLICY", None)
    else:
        os.environ["SCREENING_POLICY"] = old


def snapshot(spark, lake: Lake) -> dict[tuple[str, str], dict]:
    return {(r["person_key"], r["reason_key"]): r.asDict() for r in lake.read_gold(spark, "popup_reasons").collect()}


def run_row(spark, lake: Lake, run_id: str) -> dict:
    row = lake.read_gold(spark, "run_log").where(f"run_id = '{run_id}'").first()
    assert row is not None and row["status"] == "completed", run_id
    return row.asDict()


def screened(spark, landing: Path, lake: Lake, as_of: datetime, mode: str) -> SimpleNamespace:
    """Run `screening run` at `as_of` on the lake; what popup_reasons and run_log said after it."""
    assert run(str(landing), str(lake.root), as_of, mode=mode, log=quiet) == 0, (mode, as_of)
    return SimpleNamespace(
        as_of=as_of, mode=mode, reasons=snapshot(spark, lake), log=run_row(spark, lake, f"{mode}-{as_of:%Y%m%dT%H%M%S}")
    )


@pytest.fixture(scope="module")
def base(spark, tmp_path_factory):
    """The landing set, all of it there before the first run, and the lake of the nightly run at T1."""
    root = tmp_path_factory.mktemp("published_facts")
    landing = root / "landing"
    generate(landing, sf=SF, start=START, days=DAYS, seed=SEED, grid_split=GRID_SPLIT, log=quiet)
    corrected = land_corrections(landing, T1, CORRECTED_AT)
    lake = Lake(root / "t1")
    first = screened(spark, landing, lake, T1, "nightly")
    return SimpleNamespace(root=root, landing=landing, lake=lake, first=first, corrected=corrected)


def copy_of(base, name: str) -> Lake:
    shutil.copytree(base.lake.root, base.root / name)
    return Lake(base.root / name)


@pytest.fixture(scope="module")
def nightly(spark, base):
    lake = copy_of(base, "nightly")
    return [base.first, screened(spark, base.landing, lake, NIGHTLY_T2, "nightly")]


@pytest.fixture(scope="module")
def hourly(spark, base):
    lake = copy_of(base, "hourly")
    return [base.first, *(screened(spark, base.landing, lake, t, "hourly") for t in HOURLY)]


# -- the property -------------------------------------------------------------------------------------------
def broken_facts(before: SimpleNamespace, after: SimpleNamespace) -> list[tuple[str, dict | None, dict | None]]:
    """(what is wrong, the row at T1, the row at T2) for every published fact of `before` that `after` rewrote."""
    t1, out = before.as_of, []
    for key, b in sorted(before.reasons.items(), key=lambda kv: (kv[1]["reason_type"], kv[0])):
        a = after.reasons.get(key)
        if a is None:
            out.append(("missing at T2", b, None))
            continue
        changed = [c for c in IDENTITY if a[c] != b[c]]
        if b["status"] == "released":
            changed += [c for c in RELEASE if a[c] != b[c]]
        if changed:
            out.append((f"{b['status']} at T1, changed: {', '.join(changed)}", b, a))
        elif b["status"] == "active" and a["status"] == "released" and not a["released_at"] > t1:
            out.append(("active at T1, released at or before T1", b, a))
    for key, a in sorted(after.reasons.items(), key=lambda kv: (kv[1]["reason_type"], kv[0])):
        if key not in before.reasons and not a["raised_at"] > t1:
            out.append(("new at T2, raised at or before T1", None, a))
    return out


def explain(before: SimpleNamespace, after: SimpleNamespace, broken: list, first: int = 8) -> str:
    """A readable diff: counts by kind and reason type, then the first offending rows, before and after."""
    counts = Counter((what.split(": ")[0], (b or a)["reason_type"]) for what, b, a in broken)
    lines = [
        f"{len(broken)} published facts of the {before.mode} run at {before.as_of} rewritten by the {after.mode} "
        f"run at {after.as_of}:"
    ]
    lines += [f"  {n:>4} x {rt}: {what}" for (what, rt), n in sorted(counts.items())]
    shown: Counter = Counter()
    for what, b, a in broken:
        rt = (b or a)["reason_type"]
        if shown[(what, rt)] >= 2 or sum(shown.values()) >= first:
            continue
        shown[(what, rt)] += 1
        r = b or a
        lines.append(f"- {what}: person {r['person_key'][:12]} reason {r['reason_key'][:12]} {rt} {r['cause']}")
        cols = [c for c in SHOWN if b is None or a is None or b[c] != a[c]] or list(SHOWN)
        for c in cols:
            lines.append(f"    {c:<15} T1: {None if b is None else b[c]!s:<40} T2: {None if a is None else a[c]!s}")
        if a is not None and a.get("evidence") != (b or {}).get("evidence"):
            lines.append(f"    evidence T1: {None if b is None else b['evidence'][:600]}")
            lines.append(f"    evidence T2: {a['evidence'][:600]}")
    return "\n".join(lines)


def check(before: SimpleNamespace, after: SimpleNamespace) -> None:
    broken = broken_facts(before, after)
    if broken:
        pytest.fail(explain(before, after, broken), pytrace=False)


# -- the data exercises it ----------------------------------------------------------------------------------
def test_no_row_is_late_and_only_the_first_run_ingests(nightly, hourly):
    for s in [*nightly, *hourly[1:]]:
        dq = json.loads(s.log["dq_summary"])
        assert dq.get("late_rows", 0) == 0, (s.mode, s.as_of, dq.get("late_rows"))
        if s is not nightly[0]:
            assert sum(json.loads(s.log["rows_in"]).values()) == 0, (s.mode, s.as_of, s.log["rows_in"])


def test_the_generated_data_exercises_the_property(base, nightly, hourly):
    """Reasons of every kind at T1, of both states, and between T1 and T2 releases, new reasons and withdrawals
    (a refund, a correction or a retroactive `low`), so the property cannot hold vacuously."""
    assert base.corrected == {"venues": 4, "risk_announcements": 2, "telecom_stays": 3, "tickets": 4, "case_reports": 3}
    t1 = nightly[0]
    at_t1 = Counter((r["reason_type"], r["status"]) for r in t1.reasons.values())
    types = {rt for rt, _ in at_t1}
    assert types >= {
        "case_county",
        "inbound_quarantine",
        "risk_area_visit",
        "county_risk_area",
        "companion",
        "declared_risk_county",
        "entry_72h",
        "drug_purchase",
        "clinic_visit",
        "border_county",
        "declaration_required",
        "case_colocation",
    }, at_t1
    assert sum(n for (_, st), n in at_t1.items() if st == "active") >= 60, at_t1
    assert sum(n for (_, st), n in at_t1.items() if st == "released") >= 15, at_t1
    for seq in (nightly, hourly):
        before, after = seq[0], seq[-1]
        released = [
            a
            for k, a in after.reasons.items()
            if k in before.reasons and before.reasons[k]["status"] == "active" and a["status"] == "released"
        ]
        new = [a for k, a in after.reasons.items() if k not in before.reasons]
        assert len(released) >= 5 and len(new) >= 10, (after.mode, len(released), len(new))
    released = [
        (a["reason_type"], a["release_basis"])
        for k, a in nightly[1].reasons.items()
        if nightly[0].reasons.get(k, {}).get("status") == "active" and a["status"] == "released"
    ]
    bases = Counter(b for _, b in released)
    assert {"evidence_withdrawn", "nat_negative"} <= set(bases) and bases["evidence_withdrawn"] >= 5, bases
    # the policy switch is in force at T2 (not yet at the hourly runs), and popup 1, active at T1, is released
    before_switch = t1.log["policy_version"]
    assert before_switch != SWITCH["id"]
    assert [s.log["policy_version"] for s in (*nightly, *hourly)] == [
        before_switch,
        SWITCH["id"],
        *[before_switch] * (1 + len(HOURLY)),
    ]
    assert ("case_county", "active") in at_t1 and ("case_county", "evidence_withdrawn") in released


# -- the property, nightly and hourly -----------------------------------------------------------------------
def test_a_nightly_run_rewrites_nothing_published_by_the_previous_night(nightly):
    check(*nightly)


@pytest.mark.parametrize("step", range(len(HOURLY)))
def test_an_hourly_run_rewrites_nothing_published_by_the_run_before(hourly, step):
    check(hourly[step], hourly[step + 1])


def test_hourly_runs_through_a_day_rewrite_nothing_published_by_the_night_before(hourly):
    check(hourly[0], hourly[-1])
