"""The `screening run` entry point end to end (spec/outputs.md) and the timing guarantees of spec/rules.md:
re-runs change nothing, hourly runs end where one nightly run ends, and the as-of cut is exact to the second.

Spark is slow here, so the generated landing set (sf 0.0005, 2022-05-01 .. 05-03, seed 7) is made once for the
module and the console command (`screening run ... --as-of 2022-05-03T01:00:00 --mode nightly`) runs on it once,
in a subprocess with its own JVM. Its lake is the nightly lake the other tests compare with (the re-run and the
hourly runs are in-process, on copies of it). The expected values below follow from the generator's scenario plan
(jobs/devtools/generate/scenario.py, `plan`: persons with a role, dated relative to 2022-05-01 00:00) read against rules.md.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from jobs.devtools.generate import generate
from jobs.keys import person_key_py
from jobs.lake import Lake
from jobs.policy import policy_at
from jobs.run import run
from tests.landing import resident_id, write_feed

# small_jobs: the in-process runs use one partition and no AQE; the console command keeps its own settings
# (AQE on, local[*]), compared with them below
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("small_jobs")]  # minutes of Spark: deselect with -m "not slow"

ROOT = Path(__file__).resolve().parents[2]
START = date(2022, 5, 1)
T = datetime(2022, 5, 3, 1, 0)  # start + 2 days, 01:00
NIGHTLY_RUN = "nightly-20220503T010000"
HOURLY = [T - timedelta(hours=h) for h in (18, 12, 6, 0)]  # 05-02 07:00, 13:00, 19:00, 05-03 01:00
GOLD = ("popup_reasons", "popup_status", "assignment_list", "release_list", "run_log")
PUBLISHED = ("popup_reasons", "popup_status", "assignment_list", "release_list")
ID_RE = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
PHONE_RE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")


def dt(s: str) -> datetime:
    return datetime.fromisoformat(s)


def quiet(*_):
    pass


def screening_run(landing: Path, lake: Path, as_of: str, mode: str) -> subprocess.CompletedProcess:
    """The console command in a subprocess (its own JVM), with the tests' PII key (conftest), not the dev key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    env["SCREENING_PII_KEY"] = os.environ["SCREENING_PII_KEY"]
    env["SCREENING_SHUFFLE_PARTITIONS"] = "1"  # tiny data; the in-process runs below differ (no AQE)
    env["SCREENING_DQ_SUITES"] = "1"  # the end-to-end run validates with every suite
    exe = Path(sys.executable).with_name("screening")  # .venv/bin/screening
    return subprocess.run(
        [str(exe), "run", "--landing", str(landing), "--lake", str(lake), "--as-of", as_of, "--mode", mode],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    """The generated landing set and the nightly lake the console command makes of it at T."""
    root = tmp_path_factory.mktemp("run")
    landing = root / "landing"
    generate(landing, sf=0.0005, start=START, days=3, seed=7, log=quiet)
    manifest = json.loads((landing / "_generated" / "manifest.json").read_text(encoding="utf-8"))
    lake = root / "nightly"
    res = screening_run(landing, lake, T.isoformat(), "nightly")
    return SimpleNamespace(
        root=root,
        landing=landing,
        manifest=manifest,
        cli=res,
        lake=lake,
        role={role: person_key_py(pid) for role, pid in manifest["scenario"]["persons"].items()},
    )


def nightly_lake(gen) -> Lake:
    if gen.cli.returncode != 0:
        pytest.fail(f"`screening run` exited {gen.cli.returncode}:\n{gen.cli.stdout[-3000:]}\n{gen.cli.stderr[-3000:]}")
    return Lake(gen.lake)


def table(spark, lake: Lake, name: str, drop: tuple[str, ...] = ()) -> list[dict]:
    return [{k: v for k, v in r.asDict().items() if k not in drop} for r in lake.read_gold(spark, name).collect()]


def rows_sorted(rows: list[dict]) -> list[tuple]:
    tup = [tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(r.items())) for r in rows]
    return sorted(tup, key=lambda t: tuple("" if v is None else str(v) for _, v in t))


def reasons_of(rows: list[dict], key: str) -> list[tuple]:
    out = [
        (
            r["popup_code"],
            r["reason_type"],
            r["cause"],
            r["status"],
            r["raised_at"],
            r["released_at"],
            r["release_basis"],
        )
        for r in rows
        if r["person_key"] == key
    ]
    return sorted(out, key=lambda t: (t[4], t[0], t[2]))


def landed(landing: Path, pattern: re.Pattern) -> set[str]:
    """Every field of any landed file that is wholly `pattern` (stripped, upper case)."""
    found = set()
    for path in landing.glob("*/*.csv"):
        with open(path, encoding="utf-8-sig", newline="") as f:
            for row in csv.reader(f):
                found.update(v.strip().upper() for v in row if pattern.fullmatch(v.strip()))
    return found


def landed_ids(landing: Path) -> set[str]:
    """Every 18-character ID number in any landed file."""
    return landed(landing, ID_RE)


def ticket_dest(landing: Path, pid: str, depart_at: str) -> str:
    for path in sorted((landing / "tickets").glob("*.csv")):
        with open(path, encoding="utf-8-sig", newline="") as f:
            for row in csv.DictReader(f):
                if row["person_id"] == pid and row["depart_at"] == depart_at:
                    return row["dest_county"]
    raise AssertionError(f"no ticket of {pid} departing {depart_at}")


# -- the console command -------------------------------------------------------------------------------------
def test_screening_run_end_to_end_on_generated_data(spark, gen):
    res = gen.cli
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    lake = Lake(gen.lake)
    for name in GOLD:
        assert lake.exists(lake.gold(name)), name

    reasons = table(spark, lake, "popup_reasons")
    active = [r for r in reasons if r["status"] == "active"]
    released = [r for r in reasons if r["status"] == "released"]
    assign = table(spark, lake, "assignment_list")
    release = table(spark, lake, "release_list")

    # run_log: one completed run, with the policy in force at T and the ingest counts of the manifest
    (log,) = table(spark, lake, "run_log")
    assert (log["run_id"], log["mode"], log["as_of"], log["status"], log["policy_version"]) == (
        NIGHTLY_RUN,
        "nightly",
        T,
        "completed",
        "2022-01-v1",
    )
    assert policy_at(T).id == "2022-01-v1"
    assert log["started_at"] <= log["finished_at"]
    summary = gen.manifest["summary"]
    assert json.loads(log["rows_rejected"]) == {f: s["bad_rows"] for f, s in summary.items()}
    assert json.loads(log["rows_in"]) == {f: s["rows"] - s["bad_rows"] for f, s in summary.items()}

    # the printed summary line, with the numbers of the tables
    green_again = {r["person_key"] for r in release if r["person_green"]}
    m = re.search(
        r"^screened at 2022-05-03 01:00:00 with policy 2022-01-v1: (\d+) active reasons; in this run's lists "
        r"(\d+) reasons assigned and (\d+) reasons released; (\d+) people green again$",
        res.stdout,
        re.M,
    )
    assert m, res.stdout[-3000:]
    assert tuple(map(int, m.groups())) == (len(active), len(assign), len(release), len(green_again))
    assert len(active) > 40 and len(released) > 10 and green_again

    # data quality: every suite ran and passed (feeds delivered, screened reasons, published tables), no gate
    # tripped, and the summary names the Data Docs index, which exists
    dq = json.loads(log["dq_summary"])
    delivered = {f for f, s in summary.items() if s["rows"] > s["bad_rows"]}
    assert dq["suites_run"] == len(delivered) + 3 and dq["suites_failed"] == []
    assert f"data docs: {lake.root / 'dq' / 'docs' / 'index.html'}" in res.stdout
    assert (lake.root / "dq" / "docs" / "index.html").is_file()
    assert "ERROR Executor" not in res.stderr, res.stderr[-3000:]  # no failed Spark task, even a tolerated one
    for banner in ("Using Spark's default log4j profile", "Setting default log level", "NativeCodeLoader"):
        assert banner not in res.stderr, res.stderr[-3000:]  # the JVM logs errors only (jobs/log4j2.properties)

    # first run: every reason was assigned by it, and the assignment list is exactly those reasons
    assert {r["first_run_id"] for r in reasons} == {NIGHTLY_RUN}
    assert len(assign) == len(reasons) == len({(r["person_key"], r["reason_key"]) for r in reasons})
    assert sorted(
        (r["run_id"], r["as_of"], r["person_key"], r["popup_code"], r["reason_type"], r["reason_key"], r["raised_at"])
        for r in assign
    ) == sorted(
        (NIGHTLY_RUN, T, r["person_key"], r["popup_code"], r["reason_type"], r["reason_key"], r["raised_at"])
        for r in reasons
    )
    # the release list is exactly the released reasons; person_green says no active reason is left
    still_active = {r["person_key"] for r in active}
    assert sorted(
        (
            r["run_id"],
            r["as_of"],
            r["person_key"],
            r["popup_code"],
            r["reason_key"],
            r["released_at"],
            r["release_basis"],
            r["person_green"],
        )
        for r in release
    ) == sorted(
        (
            NIGHTLY_RUN,
            T,
            r["person_key"],
            r["popup_code"],
            r["reason_key"],
            r["released_at"],
            r["release_basis"],
            r["person_key"] not in still_active,
        )
        for r in released
    )
    assert {r["release_run_id"] for r in released} == {NIGHTLY_RUN}
    assert {r["release_run_id"] for r in active} == {None}

    # popup_status (rules.md, "A person's state"): active people and people released within 14 days
    order = ["2", "3", "1", "5", "4", "T"]
    status = {r["person_key"]: r for r in table(spark, lake, "popup_status")}
    recent = {r["person_key"] for r in released if r["released_at"] >= T - timedelta(days=14)}
    assert set(status) == still_active | recent
    for pk, s in status.items():
        mine = [r for r in active if r["person_key"] == pk]
        codes = sorted({r["popup_code"] for r in mine}, key=order.index)
        since = (
            min(r["raised_at"] for r in mine)
            if mine
            else max(r["released_at"] for r in released if r["person_key"] == pk)
        )
        assert (s["active_codes"], s["display_code"], s["green"], s["since"], s["updated_run_id"]) == (
            codes,
            codes[0] if codes else None,
            not codes,
            since,
            NIGHTLY_RUN,
        ), pk

    # no raw ID number in any gold table (person keys are HMACs of the ID with SCREENING_PII_KEY)
    ids = landed_ids(gen.landing)
    assert len(ids) > 500
    texts = []
    gold_dirs = sorted(p.name for p in (gen.lake / "gold").iterdir() if (p / "_delta_log").is_dir())
    assert set(GOLD) <= set(gold_dirs)
    for name in gold_dirs:
        for r in table(spark, lake, name):
            texts.extend(json.dumps(v, ensure_ascii=False, default=str) for v in r.values() if v is not None)
    text = "\n".join(texts).upper()
    assert [i for i in ids if i in text] == []
    assert all(re.fullmatch(r"[0-9a-f]{64}", r["person_key"]) for r in reasons)

    # the scenario persons, as rules.md says they must come out at T
    landing = gen.landing
    cc1, cc2, _cc3 = gen.manifest["scenario"]["case_counties"]
    sc = gen.manifest["scenario"]["starred_county"]
    role = gen.role

    def of(r, *types):
        return [x for x in reasons_of(reasons, role[r]) if not types or x[1] in types]

    # ② entered 04-28 (reported 16:00), 21 days by policy: until 00:00 on 04-28 + 22 days
    assert of("inbound") == [
        ("2", "inbound_quarantine", "entry=IE0000000001", "active", dt("2022-04-28T16:00:00"), None, None)
    ]
    (inb,) = [r for r in active if r["person_key"] == role["inbound"]]
    assert inb["release_eligible_at"] == dt("2022-05-20T00:00:00")
    # ① + ③ county: arrived in CC1 by train on 04-28 16:00, left on 05-01 06:30 (left_14d from 05-15 06:30)
    assert of("cc_visit", "case_county", "county_risk_area") == [
        ("1", "case_county", f"county={cc1}", "active", dt("2022-04-28T16:00:00"), None, None),
        ("3", "county_risk_area", f"area={cc1}", "active", dt("2022-04-28T16:00:00"), None, None),
    ]
    (cc,) = [r for r in active if r["person_key"] == role["cc_visit"] and r["popup_code"] == "1"]
    assert cc["release_eligible_at"] == dt("2022-05-15T06:30:00")

    def prompt(r):  # the trip-declaration prompt (when it was raised depends on the phone's stays)
        return [(x[0], x[2], x[3], x[5], x[6]) for x in of(r, "declaration_required")]

    # declared on 05-02 18:00 (cc_visit) and 20:00 (starred): the prompt is released (declared), 3e raised
    assert prompt("cc_visit") == [("T", f"city={cc1[:4]}", "released", dt("2022-05-02T18:00:00"), "declared")]
    assert of("cc_visit", "declared_risk_county") == [
        ("3", "declared_risk_county", f"county={cc1}", "active", dt("2022-05-02T18:00:00"), None, None)
    ]
    assert prompt("starred") == [("T", f"city={sc[:4]}", "released", dt("2022-05-02T20:00:00"), "declared")]
    assert of("starred", "declared_risk_county") == [
        ("3", "declared_risk_county", f"county={sc}", "active", dt("2022-05-02T20:00:00"), None, None)
    ]
    # ⑤ flew to a border port county, landing on 04-29 13:00
    pid = gen.manifest["scenario"]["persons"]["border"]
    assert of("border") == [
        (
            "5",
            "border_county",
            f"county={ticket_dest(landing, pid, '2022-04-29T09:00:00')}",
            "active",
            dt("2022-04-29T13:00:00"),
            None,
            None,
        )
    ]
    # refunded before departure: never in CC1; refunded after the fact: withdrawn at the refund
    assert [x for x in of("refund") if cc1 in x[2] or cc1[:4] in x[2]] == []
    assert of("refund_late") == [
        (
            "1",
            "case_county",
            f"county={cc2}",
            "released",
            dt("2022-05-01T14:00:00"),
            dt("2022-05-02T09:00:00"),
            "evidence_withdrawn",
        ),
        (
            "3",
            "county_risk_area",
            f"area={cc2}",
            "released",
            dt("2022-05-01T14:00:00"),
            dt("2022-05-02T09:00:00"),
            "evidence_withdrawn",
        ),
    ]
    # ③ venue scans on 05-01: b1 (check-in 09:10, later `cleared`: eligible 14 days after the exposure),
    # b3 (payment 10:20, `keep`), b2 (15:00, retroactive medium), b4 (upgrade announced only on 05-03 12:00)
    for r_, at in (("scan_b1", "09:10"), ("scan_b3", "10:20"), ("scan_b2", "15:00")):
        assert [(x[0], x[3], x[4], x[5]) for x in of(r_, "risk_area_visit")] == [
            ("3", "active", dt(f"2022-05-01T{at}:00"), None)
        ], r_
    (b1,) = [r for r in active if r["person_key"] == role["scan_b1"]]
    assert b1["release_eligible_at"] == dt("2022-05-15T09:10:00")
    assert of("scan_b4", "risk_area_visit") == []
    # ④ antipyretic at 08:30, clinic visit with fever at 09:40
    assert of("drug", "drug_purchase") == [
        ("4", "drug_purchase", "purchase=DP0000000001", "active", dt("2022-05-01T08:30:00"), None, None)
    ]
    assert [x[:3] + x[4:5] for x in of("clinic", "clinic_visit")] == [
        ("4", "clinic_visit", "visit=CV0000000001", dt("2022-05-01T09:40:00"))
    ]
    # a phone registered to the person, used by a relative living in CC1: through a `registered` link
    (rel,) = [r for r in active if r["person_key"] == role["relative_phone"] and r["popup_code"] == "1"]
    assert rel["cause"] == f"county={cc1}"
    assert {i.get("link_type") for i in json.loads(rel["evidence"])["items"]} == {"registered"}


# -- hourly == nightly ---------------------------------------------------------------------------------------
def test_hourly_runs_end_in_same_state_as_nightly(spark, gen, tmp_path):
    a = nightly_lake(gen)  # one nightly run at T (the console command)
    b = Lake(tmp_path / "hourly")
    # All files are landed and already ingested (bronze and its file register as the nightly's first ingest
    # left them: no run yet, so no late rows); every hourly run finds nothing new to ingest.
    shutil.copytree(a.root / "bronze", b.root / "bronze")
    lines: list[str] = []
    for t in HOURLY:
        assert run(str(gen.landing), str(b.root), t, mode="hourly", log=lines.append) == 0
    run_ids = [f"hourly-{t:%Y%m%dT%H%M%S}" for t in HOURLY]
    # the first run recomputes everyone (no earlier run); the next three screen only the affected people
    assert len([x for x in lines if re.match(r"hourly: \d+ people to screen \(changes since ", x)]) == 3

    reasons_a = table(spark, a, "popup_reasons")
    reasons_b = table(spark, b, "popup_reasons")
    assert len(reasons_a) > 50
    assert rows_sorted(
        [{k: v for k, v in r.items() if k not in ("first_run_id", "release_run_id")} for r in reasons_a]
    ) == rows_sorted([{k: v for k, v in r.items() if k not in ("first_run_id", "release_run_id")} for r in reasons_b])
    assert rows_sorted(table(spark, a, "popup_status", drop=("updated_run_id",))) == rows_sorted(
        table(spark, b, "popup_status", drop=("updated_run_id",))
    )
    assert {r["updated_run_id"] for r in table(spark, b, "popup_status")} == {run_ids[-1]}

    # The earlier runs saw the day happen: every run assigned and released something ...
    assign_b, release_b = table(spark, b, "assignment_list"), table(spark, b, "release_list")
    assert {r["run_id"] for r in assign_b} == set(run_ids)
    assert {r["run_id"] for r in release_b} == set(run_ids)
    assert {r["first_run_id"] for r in reasons_b} == set(run_ids)
    assert {r["release_run_id"] for r in reasons_b} == {None, *run_ids}
    # ... and the lists published over the four runs hold the same facts as the nightly run's lists.
    fact = ("person_key", "popup_code", "reason_type", "reason_key", "raised_at")
    assert sorted(tuple(r[c] for c in fact) for r in assign_b) == sorted(
        tuple(r[c] for c in fact) for r in table(spark, a, "assignment_list")
    )
    fact = ("person_key", "popup_code", "reason_key", "released_at", "release_basis")
    assert sorted(tuple(r[c] for c in fact) for r in release_b) == sorted(
        tuple(r[c] for c in fact) for r in table(spark, a, "release_list")
    )

    # Scenario persons, run by run. refund_late's tickets (arrival in CC2 on 05-01 14:00) are refunded on
    # 05-02 09:00: raised by the 07:00 run, withdrawn by the 13:00 run, with the refund's instant.
    def runs_of(role):
        return sorted(
            (
                r["popup_code"],
                r["reason_type"],
                r["first_run_id"],
                r["release_run_id"],
                r["released_at"],
                r["release_basis"],
            )
            for r in reasons_b
            if r["person_key"] == gen.role[role]
        )

    withdrawn = dt("2022-05-02T09:00:00")
    assert runs_of("refund_late") == [
        ("1", "case_county", run_ids[0], run_ids[1], withdrawn, "evidence_withdrawn"),
        ("3", "county_risk_area", run_ids[0], run_ids[1], withdrawn, "evidence_withdrawn"),
    ]
    # cc_visit declares CC1 on 05-02 18:00: the 19:00 run releases the trip prompt (declared) and raises 3e;
    # starred declares on 05-02 20:00: the same happens in the run at T.
    for role, declared, run_id in (
        ("cc_visit", "2022-05-02T18:00:00", run_ids[2]),
        ("starred", "2022-05-02T20:00:00", run_ids[3]),
    ):
        mine = [r for r in reasons_b if r["person_key"] == gen.role[role]]
        prompt = [r for r in mine if r["popup_code"] == "T"]
        e3 = [r for r in mine if r["reason_type"] == "declared_risk_county"]
        assert [(r["first_run_id"], r["release_run_id"], r["released_at"], r["release_basis"]) for r in prompt] == [
            (run_ids[0], run_id, dt(declared), "declared")
        ], role
        assert [(r["first_run_id"], r["status"], r["raised_at"]) for r in e3] == [(run_id, "active", dt(declared))], (
            role
        )


# -- re-runs -------------------------------------------------------------------------------------------------
def test_rerun_same_as_of_leaves_tables_unchanged(spark, gen, tmp_path):
    """The first run is the console command's; the same run again (in-process, on a copy of its lake)."""
    lake = Lake(tmp_path / "lake")
    shutil.copytree(nightly_lake(gen).root, lake.root)
    before = {name: table(spark, lake, name) for name in PUBLISHED}
    assert run(str(gen.landing), str(lake.root), T, mode="nightly", log=quiet) == 0
    after = {name: table(spark, lake, name) for name in PUBLISHED}
    for name in PUBLISHED:
        assert rows_sorted(after[name]) == rows_sorted(before[name]), name
    assert len(after["popup_reasons"]) > 50 and after["release_list"]
    keys = {
        "popup_reasons": ("person_key", "reason_key"),
        "popup_status": ("person_key",),
        "assignment_list": ("run_id", "reason_key"),
        "release_list": ("run_id", "reason_key"),
    }
    for name, cols in keys.items():
        ks = [tuple(r[c] for c in cols) for r in after[name]]
        assert len(ks) == len(set(ks)), name
    assert [(r["run_id"], r["status"]) for r in table(spark, lake, "run_log")] == [(NIGHTLY_RUN, "completed")]


# -- the as-of cut -------------------------------------------------------------------------------------------
CUT = datetime(2022, 5, 10, 12, 0, 0)
P_AT = resident_id("11010119800101001")  # known exactly at the cut: seen
P_LATE = resident_id("11010519850202002")  # inbound entry known one second after the cut
P_DRUG = resident_id("11010619900303003")  # drug purchase one second after the cut


def test_row_known_one_second_after_as_of_is_not_seen(spark, tmp_path):
    landing = tmp_path / "landing"
    write_feed(
        landing,
        "inbound_entries",
        [
            dict(
                entry_id="IE-AT",
                person_id=P_AT,
                entry_date="2022-05-10",
                port="首都国际机场",
                quarantine_days=None,
                reported_at="2022-05-10T12:00:00",
            ),
            dict(
                entry_id="IE-LATE",
                person_id=P_LATE,
                entry_date="2022-05-10",
                port="首都国际机场",
                quarantine_days=14,
                reported_at="2022-05-10T12:00:01",
            ),
        ],
    )
    write_feed(
        landing,
        "drug_purchases",
        [
            dict(
                purchase_id="DP-LATE",
                person_id=P_DRUG,
                pharmacy_id="PH1",
                drug_category="antiviral",
                purchased_at="2022-05-10T12:00:01",
            )
        ],
    )
    lake = Lake(tmp_path / "lake")
    one = timedelta(seconds=1)

    def reasons():
        return sorted(
            (
                r["person_key"],
                r["popup_code"],
                r["reason_type"],
                r["cause"],
                r["status"],
                r["raised_at"],
                r["release_eligible_at"],
                r["first_run_id"],
            )
            for r in table(spark, lake, "popup_reasons")
        )

    assert run(str(landing), str(lake.root), CUT, log=quiet) == 0
    at_cut = (
        person_key_py(P_AT),
        "2",
        "inbound_quarantine",
        "entry=IE-AT",
        "active",
        CUT,
        dt("2022-06-01T00:00:00"),
        "nightly-20220510T120000",
    )
    assert reasons() == [at_cut]

    assert run(str(landing), str(lake.root), CUT + one, log=quiet) == 0
    assert reasons() == sorted(
        [
            at_cut,
            (
                person_key_py(P_LATE),
                "2",
                "inbound_quarantine",
                "entry=IE-LATE",
                "active",
                CUT + one,
                dt("2022-05-25T00:00:00"),
                "nightly-20220510T120001",
            ),
            (
                person_key_py(P_DRUG),
                "4",
                "drug_purchase",
                "purchase=DP-LATE",
                "active",
                CUT + one,
                None,
                "nightly-20220510T120001",
            ),
        ]
    )
    assert sorted((r["run_id"], r["person_key"]) for r in table(spark, lake, "assignment_list")) == sorted(
        [
            ("nightly-20220510T120000", person_key_py(P_AT)),
            ("nightly-20220510T120001", person_key_py(P_LATE)),
            ("nightly-20220510T120001", person_key_py(P_DRUG)),
        ]
    )


# -- personal data and evidence (issue: reliability and security) -------------------------------------------
PRIVATE = ("bronze", "rejects")  # raw feeds, readable by the pipeline's user only (tests/e2e/test_reliability.py)


def landed_phones(landing: Path) -> set[str]:
    return landed(landing, PHONE_RE)


def personal_hits(text: str, ids: set[str], phones: set[str]) -> list[str]:
    """ID numbers and full phones of the landing found in `text` (by pattern, then checked against the landing,
    so a long number that merely looks like one, e.g. 17179869184 bytes in a Delta checksum, is not a hit)."""
    return sorted(
        {m.upper() for m in ID_RE.findall(text) if m.upper() in ids}
        | {m for m in PHONE_RE.findall(text) if m in phones}
    )


def test_no_raw_id_number_or_full_phone_in_any_file_the_run_wrote(spark, gen):
    """Every file of the lake outside the private bronze and rejects (gold and data-quality tables decoded, Delta
    logs, Data Docs, GX results, the run report, the dispatch exports) and the run's console output."""
    lake = nightly_lake(gen)
    ids, phones = landed_ids(gen.landing), landed_phones(gen.landing)
    assert len(ids) > 500 and len(phones) > 500
    scanned: dict[str, int] = {}
    found: dict[str, list[str]] = {}

    def scan(name: str, text: str, allow_phones: bool = False) -> None:
        scanned[name] = len(text)
        hits = personal_hits(text, ids, set() if allow_phones else phones)
        if hits:
            found[name] = hits[:3]

    scan("console stdout", gen.cli.stdout)
    scan("console stderr", gen.cli.stderr)
    tables = []
    for path in sorted(lake.root.rglob("*")):
        rel = path.relative_to(lake.root)
        if not path.is_file() or rel.parts[0] in PRIVATE:
            continue
        if path.suffix == ".parquet":
            tables.append(path.parent)
            continue
        if path.suffix == ".xlsx":
            from openpyxl import load_workbook

            cells = [
                str(c)
                for ws in load_workbook(path, read_only=True).worksheets
                for row in ws.iter_rows(values_only=True)
                for c in row
                if c is not None
            ]
            text = "\n".join(cells)
        else:
            text = path.read_bytes().decode("utf-8", errors="replace")
        # dispatch exports name the person for the community worker: contact phone yes, ID number masked
        scan(str(rel), text, allow_phones=rel.parts[0] == "exports")
    for table_dir in sorted(set(tables)):
        rows = spark.read.format("delta").load(str(table_dir)).collect()
        scan(
            str(table_dir.relative_to(lake.root)),
            "\n".join(json.dumps(r.asDict(recursive=True), ensure_ascii=False, default=str) for r in rows),
        )

    kinds = {Path(n).suffix or n for n in scanned}
    assert {".html", ".json", ".csv", ".xlsx", "console stdout"} <= kinds, kinds
    assert any(n.startswith("reports/") for n in scanned) and any(n.startswith("dq/docs/") for n in scanned)
    assert {"gold/popup_reasons", "gold/dispatch_list", "dq/results"} <= set(scanned)
    assert found == {}
    # and the exports did carry the contact phones, masked IDs (the scan above had something to find)
    export = "".join(p.read_text(encoding="utf-8-sig") for p in lake.root.glob("exports/dispatch/*/community/*/*.csv"))
    assert personal_hits(export, set(), phones) and re.search(r"\d{6}\*{8}\d{3}[\dX]", export)


LINK_FEEDS = ("kit_bindings", "phone_registrations")  # persons.phone is a contact number, not a link


def test_every_active_reason_has_evidence_that_resolves_to_bronze_rows_satisfying_its_rule(spark, gen):
    """Walk every active reason's evidence back to the bronze rows it names, as known at the as-of."""
    lake = nightly_lake(gen)
    reasons = [r for r in table(spark, lake, "popup_reasons") if r["status"] == "active"]
    assert len(reasons) > 40

    def bronze(feed: str) -> dict[str, dict]:
        from jobs import schemas

        (key,) = schemas.feed_spec(feed)["key"]
        rows = spark.read.format("delta").load(lake.bronze(feed)).where(f"_known_at <= '{T}'").collect()
        out: dict[str, dict] = {}
        for r in sorted(rows, key=lambda r: r["_known_at"]):  # the version known last before the as-of
            out[str(r[key])] = r.asDict()
        return out

    feeds = {
        f: bronze(f)
        for f in (
            "telecom_stays",
            "tickets",
            "inbound_entries",
            "drug_purchases",
            "clinic_visits",
            "venue_scans",
            "trip_declarations",
            "grid_dwells",
            "case_reports",
            "risk_announcements",
        )
    }
    owners: dict[str, set[str]] = {}  # phone -> person keys linked to it by any link feed
    for feed in LINK_FEEDS:
        for r in spark.read.format("delta").load(lake.bronze(feed)).select("person_id", "phone").collect():
            if r["phone"]:
                owners.setdefault(r["phone"], set()).add(person_key_py(r["person_id"]))
    announcements = feeds["risk_announcements"]
    same_named = ("port", "pharmacy_id", "drug_category", "clinic_id", "venue_id", "scan_type", "grid_id")
    walked = {}
    for reason in reasons:
        items = json.loads(reason["evidence"])["items"]
        assert items, reason["reason_key"]
        for item in items:
            feed, rid = item["feed"], str(item["record_id"])
            row = feeds[feed].get(rid)
            assert row is not None, (reason["reason_type"], feed, rid)
            # the record belongs to the person: their own row, or a phone linked to them
            if "person_id" in row:
                assert person_key_py(row["person_id"]) == reason["person_key"], (feed, rid)
            else:
                assert reason["person_key"] in owners.get(row["phone"], set()), (feed, rid)
                assert item["phone"] == row["phone"][:3] + "****" + row["phone"][7:], (feed, rid)
            for col in same_named:
                if col in item and col in row:
                    assert str(item[col]) == str(row[col]), (feed, rid, col)
            # the place the rule matched is the record's place
            if "county" in item and feed in ("telecom_stays", "tickets"):  # a ticket: departing or arriving there
                places = [row["county_code"]] if feed == "telecom_stays" else [row["origin_county"], row["dest_county"]]
                assert item["county"] in places, (feed, rid)
                if reason["cause"].startswith("county="):
                    assert reason["cause"] == f"county={item['county']}", (feed, rid)
            if feed == "tickets":
                assert row["status"] != "refunded", rid  # rules.md: a refunded ticket is no presence
            if item.get("announcement_id"):
                ann = announcements[item["announcement_id"]]
                assert ann["risk_level"] in ("medium", "high"), item
            if item.get("case_record_id"):
                assert item["case_record_id"] in feeds["grid_dwells"], item
            walked[(reason["reason_type"], feed)] = walked.get((reason["reason_type"], feed), 0) + 1
    types = {t for t, _ in walked}
    assert {"case_county", "inbound_quarantine", "risk_area_visit", "drug_purchase", "border_county"} <= types, walked
