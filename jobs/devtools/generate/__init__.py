"""Deterministic synthetic landing data for every feed of schemas/feeds/.

`generate(landing, sf, start, days, seed)` writes `<landing>/<feed>/<feed>_<YYYYMMDD>.csv` (one file per day;
`border_port_counties` is one reference file) plus `<landing>/_generated/manifest.json`, which lists every
injected bad row (feed, file, 1-based physical line, reason) and a per-feed summary.

Scale: sf=1 is about 1,000,000 persons. A row lands in the file of the day of its knowledge time (rows known
before `start` land in the first day's file; rows known after the last day are not landed). All randomness
comes from `random.Random` streams seeded by strings derived from `seed`, so equal arguments give
byte-identical files and the good rows do not depend on `bad_share`.

The generator is one object, `_Generator`, made of a mixin per topic; it draws from many seeded streams and some
are shared by several methods, so the methods must keep their call order:
- `common.py`: time units, the feeds (columns and keys from schemas/feeds/), formatting, codes, routing a row to
  the file of its day;
- `people.py`: persons, phones, registrations, Kit bindings, names, ID numbers, division codes;
- `movement.py`: venues and scans, trips and tickets, where everyone is each day, telecom stays and grid dwells;
- `health.py`: cases, NAT samples and results, drug purchases, clinic visits, verifications, trip declarations,
  risk announcements;
- `scenario.py`: the case counties and the planted persons every run should see;
- `reference.py`: the optional reference feeds (names of communities, hotels, labs and test sites);
- `defects.py`: the injected bad rows and the manifest;
- `files.py`: the CSV writer (`_File`), a day's files and the baseline;
- here: the generator's state, the day loop and `generate(...)`.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

from jobs.devtools.generate.common import DAILY_FEEDS, DAY, FAR_FUTURE, FEEDS, HOUR, Core
from jobs.devtools.generate.defects import Defects
from jobs.devtools.generate.files import Files, _File
from jobs.devtools.generate.health import Health
from jobs.devtools.generate.movement import Movement
from jobs.devtools.generate.people import People, _geo
from jobs.devtools.generate.reference import Reference
from jobs.devtools.generate.scenario import Scenario

_PORTS = (
    "首都国际机场",
    "大兴国际机场",
    "天津港",
    "二连浩特公路口岸",
    "满洲里公路口岸",
    "上海浦东国际机场",
    "广州白云国际机场",
    "瑞丽口岸",
)


class _Generator(Core, People, Movement, Health, Scenario, Reference, Defects, Files):
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
            self.choose_forced()

    # ---- the day loop -----------------------------------------------------------------------------------
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
                    open_binds = [
                        b for b in p.binds if b[2] is None and (p.primary is None or b[0] != p.primary.number)
                    ]
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
        self.reference_changes(d)

    def run(self) -> dict:
        self.landing.mkdir(parents=True, exist_ok=True)
        self.choose_counties()
        self.build_population()
        self.build_venues()
        self.build_reference()
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
        self.write_manifest()
        self.log(json.dumps(self.stats))
        return self.stats


def generate(
    landing: str | Path,
    sf: float,
    start: date,
    days: int,
    seed: int,
    bad_share: float = 0.002,
    log=print,
    grid_split: int = 1,
) -> dict:
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
