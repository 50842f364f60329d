"""Injected bad rows: which reasons a feed can carry, how a good row is turned into a bad one, and the manifest
that lists every bad row (feed, file, 1-based physical line, reason)."""

from __future__ import annotations

import json
import math
import os
import random
from collections import defaultdict
from datetime import date, datetime, timedelta

from jobs.devtools.generate.common import FEEDS, KEYS
from jobs.devtools.generate.files import _File
from jobs.devtools.generate.people import check_digit

# Column types as far as bad-row injection needs them.
_T = {
    "persons": {
        "person_id": "pid",
        "birth_date": "date",
        "phone": "phone",
        "community_code": "community",
        "hotel_county_code": "county",
        "updated_at": "ts",
    },
    "phone_registrations": {"phone": "phone", "person_id": "pid", "registered_at": "ts", "deregistered_at": "ts"},
    "kit_bindings": {"person_id": "pid", "phone": "phone", "bound_at": "ts", "unbound_at": "ts"},
    "telecom_stays": {
        "phone": "phone",
        "county_code": "county",
        "first_seen": "ts",
        "last_seen": "ts",
        "reported_at": "ts",
    },
    "grid_dwells": {"phone": "phone", "start_at": "ts", "end_at": "ts", "reported_at": "ts"},
    "tickets": {
        "person_id": "pid",
        "mode": "enum",
        "origin_county": "county",
        "dest_county": "county",
        "depart_at": "ts",
        "arrive_at": "ts",
        "status": "enum",
        "status_at": "ts",
    },
    "venues": {"county_code": "county", "community_code": "community", "updated_at": "ts"},
    "venue_scans": {"person_id": "pid", "scan_type": "enum", "scanned_at": "ts"},
    "case_reports": {
        "person_id": "pid",
        "phone": "phone",
        "county_code": "county",
        "case_type": "enum",
        "case_date": "date",
        "reported_at": "ts",
    },
    "risk_announcements": {"area_code": "area", "risk_level": "enum", "effective_from": "ts", "announced_at": "ts"},
    "border_port_counties": {"county_code": "county", "valid_from": "date", "valid_to": "date"},
    "inbound_entries": {"person_id": "pid", "entry_date": "date", "reported_at": "ts"},
    "drug_purchases": {"person_id": "pid", "drug_category": "enum", "purchased_at": "ts"},
    "clinic_visits": {"person_id": "pid", "visited_at": "ts"},
    "nat_samples": {"person_id": "pid", "sampled_at": "ts"},
    "nat_results": {"person_id": "pid", "sampled_at": "ts", "result": "enum", "platform": "enum", "reported_at": "ts"},
    "trip_declarations": {"person_id": "pid", "declared_at": "ts", "counties": "counties", "entered_beijing_at": "ts"},
    "verifications": {
        "person_id": "pid",
        "community_code": "community",
        "verified_at": "ts",
        "outcome": "enum",
        "commitment_signed": "bool",
    },
    "communities": {
        "community_code": "community",
        "street_code": "street",
        "office_phone": "phone",
        "updated_at": "ts",
    },
    "facilities": {"kind": "enum", "county_code": "county", "contact_phone": "phone", "updated_at": "ts"},
}
# (start, end) columns; (observed, knowledge) columns. Scheduled/declared times are exempt (feeds.md).
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
}
REASONS = (
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
)
ID_REASONS = ("bad_id_checksum", "bad_id_birth_date", "bad_id_format")
# Where the guaranteed one-per-reason bad rows go: feeds that always have rows on the first day.
_FORCED_FEEDS = {
    "bad_type": ("persons", "telecom_stays", "kit_bindings", "venues"),
    "bad_id_checksum": ("persons", "phone_registrations", "kit_bindings"),
    "bad_id_birth_date": ("persons", "phone_registrations", "kit_bindings"),
    "bad_id_format": ("persons", "phone_registrations", "kit_bindings"),
    "unknown_county_code": ("telecom_stays", "venues", "case_reports"),
    "unknown_community_code": ("persons", "venues"),
    "bad_phone": ("telecom_stays", "phone_registrations", "persons"),
    "unknown_enum": ("risk_announcements", "case_reports"),
    "end_before_start": ("telecom_stays", "phone_registrations"),
    "observed_after_knowledge": ("telecom_stays", "case_reports"),
    "missing_key": ("persons", "telecom_stays", "venues", "risk_announcements"),
    "unknown_street_code": ("communities",),
}
_BAD_TS = ("2022-02-30T10:00:00", "yesterday", "2022-13-01T08:00:00", "2022-05-01T25:10:00", "unknown")
_BAD_DATE = ("2022-02-30", "2021-02-29", "2022-13-01", "yesterday")
_BAD_BOOL = ("maybe", "unknown", "signed")
_BAD_BIRTH = ("19990230", "20010229", "19851301", "19900000", "20220431")
_BAD_ENUM = {
    "mode": "bus",
    "status": "cancelled",
    "scan_type": "exit",
    "case_type": "suspected",
    "risk_level": "severe",
    "drug_category": "vitamin",
    "result": "pending",
    "platform": "hubei",
    "outcome": "unknown",
    "kind": "clinic",
}


class Defects:
    """Mixin of `_Generator`: the bad rows, and the manifest."""

    # ---- bad rows ---------------------------------------------------------------------------------------
    def choose_forced(self) -> None:
        """Where the guaranteed one-per-reason bad rows go (`_FORCED_FEEDS`)."""
        frng = random.Random(f"{self.seed}/forced")
        for kind in REASONS:
            self.forced[frng.choice(_FORCED_FEEDS[kind])].append(kind)

    def gap(self, rng: random.Random) -> int:
        if self.p_bad <= 0:
            return -1
        return int(math.log(1.0 - rng.random()) / math.log(1.0 - self.p_bad))

    def inject(self, f: _File, template: list[str], kind: str | None) -> None:
        feed = f.feed
        if kind is None:
            kind = f.brng.choice(self.kinds(feed))
        row = self.make_bad(feed, list(template), kind, f.brng)
        f.w.writerow(row)
        f.line += 1
        f.bad += 1
        self.manifest.append({"feed": feed, "file": f.rel, "line": f.line, "reason": kind})

    @staticmethod
    def kinds(feed: str) -> list[str]:
        types = set(_T[feed].values())
        out = ["bad_type"]
        if "pid" in types:
            out += ID_REASONS
        if types & {"county", "area", "counties"}:
            out.append("unknown_county_code")
        if types & {"community", "area"}:
            out.append("unknown_community_code")
        if "street" in types:
            out.append("unknown_street_code")
        if "phone" in types:
            out.append("bad_phone")
        if "enum" in types:
            out.append("unknown_enum")
        if feed in PAIRS:
            out.append("end_before_start")
        if feed in OBSERVED:
            out.append("observed_after_knowledge")
        out.append("missing_key")
        return out

    def fresh_bad_pid(self, base: str, rng: random.Random) -> str:
        county = base[:6] if base[:6] in self.geo.county_set else "110101"
        try:
            birth = datetime.strptime(base[6:14], "%Y%m%d").date()
        except ValueError:
            birth = date(1980, 1, 1)
        while True:  # sequence 900-999: never a generated person's
            s17 = f"{county}{birth:%Y%m%d}{rng.randrange(900, 1000):03d}"
            pid = s17 + check_digit(s17)
            if pid not in self.bad_keys:
                self.bad_keys.add(pid)
                return pid

    def fresh_bad_phone(self, rng: random.Random) -> str:
        while True:  # 17x numbers are never generated for good rows
            n = f"17{rng.randrange(10**9):09d}"
            if n not in self.bad_keys:
                self.bad_keys.add(n)
                return n

    def make_bad(self, feed: str, row: list[str], kind: str, rng: random.Random) -> list[str]:
        cols = FEEDS[feed]
        ix = {c: i for i, c in enumerate(cols)}
        types = _T[feed]
        # fresh key first, so the bad row never shares a good row's key
        if feed == "persons":
            row[0] = self.fresh_bad_pid(row[0], rng)
        elif feed in ("phone_registrations", "kit_bindings"):
            row[ix["phone"]] = self.fresh_bad_phone(rng)
        elif feed == "communities":  # sequence 900-999: never a generated community's
            while row[0] in self.bad_keys or not row[0][9:].startswith("9"):
                row[0] = f"{rng.choice(self.geo.bj_streets)}{rng.randrange(900, 1000)}"
            self.bad_keys.add(row[0])
            row[ix["street_code"]] = row[0][:9]
        elif feed == "border_port_counties":
            row[2] = (date.fromisoformat(row[2]) - timedelta(days=1000 + rng.randrange(1000))).isoformat()
        else:
            self.bad_seq[feed] += 1
            prefix = row[0].rstrip("0123456789")
            row[0] = f"{prefix}9{self.bad_seq[feed]:09d}"
        if kind == "bad_type":
            cands = [c for c, t in types.items() if t in ("ts", "date", "bool") and row[ix[c]] and c not in KEYS[feed]]
            if not cands:
                cands = [c for c, t in types.items() if t in ("ts", "date", "bool")]
            c = rng.choice(sorted(cands))
            pool = {"ts": _BAD_TS, "date": _BAD_DATE, "bool": _BAD_BOOL}[types[c]]
            row[ix[c]] = rng.choice(pool)
        elif kind in ID_REASONS:
            c = next(c for c, t in types.items() if t == "pid")
            base = row[ix[c]] if len(row[ix[c]]) == 18 else self.fresh_bad_pid("", rng)
            base = base[:17] + check_digit(base[:17])
            if kind == "bad_id_checksum":
                row[ix[c]] = base[:17] + rng.choice([d for d in "0123456789X" if d != base[17]])
            elif kind == "bad_id_birth_date":
                s17 = base[:6] + rng.choice(_BAD_BIRTH) + base[14:17]
                row[ix[c]] = s17 + check_digit(s17)
            else:
                row[ix[c]] = rng.choice(
                    (base[:17], base[:10] + "A" + base[11:], base + "0", base[:17] + "Y", base[:6] + base[8:17])
                )
        elif kind == "unknown_county_code":
            c = rng.choice(sorted(c for c, t in types.items() if t in ("county", "area", "counties")))
            bad = rng.choice(self.geo.unknown_counties)
            if types[c] == "counties":
                parts = row[ix[c]].split(";") if row[ix[c]] else []
                parts.insert(rng.randrange(len(parts) + 1), bad)
                row[ix[c]] = ";".join(parts)
            else:
                if feed == "persons" and not row[ix["hotel_id"]]:
                    row[ix["hotel_id"]] = f"HTL{bad}001"
                row[ix[c]] = bad
        elif kind == "unknown_community_code":
            c = next(c for c, t in types.items() if t in ("community", "area"))
            row[ix[c]] = f"{rng.choice(self.geo.unknown_counties)}{rng.randint(1, 20):03d}{rng.randint(1, 20):03d}"
            if feed == "persons":  # a community resident, not a hotel guest
                row[ix["hotel_id"]] = row[ix["hotel_county_code"]] = ""
        elif kind == "unknown_street_code":
            c = next(c for c, t in types.items() if t == "street")
            row[ix[c]] = f"{rng.choice(self.geo.unknown_counties)}{rng.randint(1, 20):03d}"
        elif kind == "bad_phone":
            c = next(c for c, t in types.items() if t == "phone")
            p = row[ix[c]] if len(row[ix[c]]) == 11 else f"139{rng.randrange(10**8):08d}"
            row[ix[c]] = rng.choice((p[:10], p + "7", "0" + p[1:], p[:5] + "O" + p[6:]))
        elif kind == "unknown_enum":
            c = rng.choice(sorted(c for c, t in types.items() if t == "enum"))
            row[ix[c]] = _BAD_ENUM[c]
        elif kind == "end_before_start":
            s, e = PAIRS[feed]
            if types[s] == "date":
                row[ix[e]] = (date.fromisoformat(row[ix[s]]) - timedelta(days=30)).isoformat()
            else:
                t0 = datetime.fromisoformat(row[ix[s]])
                row[ix[e]] = (t0 - timedelta(minutes=20 + rng.randrange(600))).strftime("%Y-%m-%dT%H:%M:%S")
        elif kind == "observed_after_knowledge":
            o, k = OBSERVED[feed]
            kt = datetime.fromisoformat(row[ix[k]])
            if types[o] == "date":
                row[ix[o]] = (kt.date() + timedelta(days=2)).isoformat()
            else:
                row[ix[o]] = (kt + timedelta(minutes=30 + rng.randrange(120))).strftime("%Y-%m-%dT%H:%M:%S")
        elif kind == "missing_key":
            row[ix[KEYS[feed][0]]] = ""
        else:  # pragma: no cover
            raise ValueError(kind)
        return row

    def write_manifest(self) -> None:
        """`<landing>/_generated/manifest.json`: the arguments, the scenario, the per-feed summary, every bad row."""
        reasons: dict[str, int] = defaultdict(int)
        for m in self.manifest:
            reasons[m["reason"]] += 1
        out = self.landing / "_generated"
        out.mkdir(exist_ok=True)
        manifest = {
            "args": {
                "sf": self.sf,
                "start": self.start.isoformat(),
                "days": self.days,
                "seed": self.seed,
                "bad_share": self.p_bad,
            },
            "persons": self.n_persons,
            "scenario": {
                "case_counties": [self.cc1, self.cc2, self.cc3],
                "starred_county": self.sc,
                "persons": self.scenario,
            },
            "summary": self.stats,
            "reasons": {k: reasons[k] for k in REASONS},
            "bad_rows": self.manifest,
        }
        tmp = out / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, out / "manifest.json")
