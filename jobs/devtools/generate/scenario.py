"""The scenario every run should see: case counties outside Beijing, risk announcements, a cluster of Beijing
cases, and persons placed so that each popup kind shows on the first day (`manifest.json` names them)."""

from __future__ import annotations

import random
from collections import defaultdict

from jobs.devtools.generate.common import DAY, HOUR, MIN
from jobs.devtools.generate.people import _Carrier, _Person, _Phone


class Scenario:
    """Mixin of `_Generator`: the counties CC1-CC3 and SC, and the plan of planted events."""

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
            for cc, first, last, p in (
                (self.cc1, -10, days - 1, 0.85),
                (self.cc2, -12, self.cc2_last, 0.8),
                (self.cc3, self.cc3_first, days - 1, 0.8),
            ):
                if first <= day <= last and (day in (first, last, -1) or r() < p):
                    for _ in range(1 + rng.randrange(3)):
                        rep = day * D + 8 * HOUR + rng.randrange(14 * HOUR)
                        pid = self.other_pid(cc, rng) if r() < 0.8 else ""
                        phone = f"19{rng.randrange(10**9):09d}" if r() < 0.3 else ""
                        self.case(pid, phone, cc, "local", day - (1 if r() < 0.3 else 0), rep)
            if day >= -5 and r() < 0.4:
                port = rng.choice([*g.border_codes, "110113", "310115"])
                self.case(
                    self.other_pid(rng.choice(g.out_counties), rng),
                    "",
                    port,
                    "imported",
                    day,
                    day * D + 9 * HOUR + rng.randrange(12 * HOUR),
                )

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
        elig = [
            p
            for p in residents
            if p.primary is not None
            and p.primary.carrier is p
            and p.hosp is None
            and any(b[0] == p.primary.number for b in p.binds)
            and (not cluster or p.home_comm[:9] != cluster[:9])
        ]
        roles = (
            "cc_visit",
            "border",
            "starred",
            "refund",
            "refund_late",
            "scan_b1",
            "scan_b3",
            "scan_b4",
            "scan_b2",
            "drug",
            "clinic",
            "relative_phone",
            "companion",
            "inbound",
        )
        chosen = rng.sample(elig, min(len(elig), len(roles)))
        self.scenario: dict[str, str] = {}
        for role, p in zip(roles, chosen, strict=False):
            p.fixed = True
            self.scenario[role] = p.pid
            site = self.site(p.home_comm, p.home, rng)
            if role == "cc_visit":  # in CC1 on day 0 (>= 4 h), back in Beijing by train at noon
                tr = self.make_trip(
                    p, self.cc1, None, "train", -3 * D + 10 * HOUR, 6 * HOUR, 6 * HOUR + 30 * MIN, 6 * HOUR, rng
                )
                p.trips.append(tr)
                self.tickets(p, tr, "train", -5 * D + 20 * HOUR, rng)
                self.declare(p, 1 * D + 18 * HOUR, [self.cc1], tr.back_arr)
                self.nat(p.pid, 1 * D + 9 * HOUR, site, rng, "negative", 1 * D + 15 * HOUR)
            elif role == "border":
                dest = rng.choice(g.border_codes)
                tr = self.make_trip(
                    p, dest, None, "flight", -2 * D + 9 * HOUR, 4 * HOUR, 2 * D + 10 * HOUR, 4 * HOUR, rng
                )
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
                self.emit(
                    "drug_purchases",
                    8 * HOUR + 30 * MIN,
                    [
                        self.nid("DP"),
                        p.pid,
                        f"PH{p.home}{rng.randint(1, 30):03d}",
                        "antipyretic",
                        self.ts(8 * HOUR + 30 * MIN),
                    ],
                )
            elif role == "clinic":
                self.emit(
                    "clinic_visits",
                    9 * HOUR + 40 * MIN,
                    [
                        self.nid("CV"),
                        p.pid,
                        f"CL{p.home}{rng.randint(1, 9):02d}",
                        self.ts(9 * HOUR + 40 * MIN),
                        "fever;dry_cough",
                    ],
                )
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
                self.emit(
                    "inbound_entries",
                    -3 * D + 16 * HOUR,
                    [self.nid("IE"), p.pid, self.ds(-3), "首都国际机场", "", self.ts(-3 * D + 16 * HOUR)],
                )
        hotel_guests = [p for p in self.persons if p.kind == 1 and not p.fixed]
        if hotel_guests:
            p = rng.choice(hotel_guests)
            self.emit(
                "inbound_entries",
                6 * HOUR,
                [self.nid("IE"), p.pid, self.ds(0), "二连浩特公路口岸", "21", self.ts(6 * HOUR)],
            )
        # trips already under way or booked before the first day
        trng = random.Random(f"{self.seed}/trips0")
        for c in [*self.persons, *self.relatives]:
            if not c.fixed and trng.random() < 0.05:
                self.random_trip(c, trng.randrange(-6, 3), trng)
        self.windows = self.risk_windows()
        self.log(
            f"[generate] scenario: case counties {self.cc1} {self.cc2} {self.cc3}, starred {self.sc}, "
            f"Beijing cases {len(cases)}, roles {len(self.scenario)}"
        )
