"""Where people are: venues and their scans, trips and their tickets, and on each day where every carrier of a
phone is (`segments`) and what its phones report (telecom stays, grid dwells)."""

from __future__ import annotations

import random
from collections import defaultdict

from jobs.devtools.generate.common import DAY, HOME_PREFIX, HOUR, MIN
from jobs.devtools.generate.people import _Carrier, _Person, _Phone

_VENUE_KINDS = ("超市", "便利店", "餐厅", "药店", "菜市场", "写字楼", "银行网点", "健身房", "理发店", "商场")
_STATION = {
    "train": ("110106", "110101", "110102", "110105"),
    "flight": ("110113", "110115"),
    "coach": ("110106", "110105", "110108"),
}


class _Trip:
    __slots__ = ("dest", "dest_comm", "out_dep", "out_arr", "back_dep", "back_arr", "tr_out", "tr_back", "lead", "lag")


class Movement:
    """Mixin of `_Generator`: venues, venue scans, trips and tickets, a day's whereabouts and phone records."""

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

    def scan(self, p: _Person, v, t: int, rng: random.Random, stype: str | None = None) -> None:
        stype = stype or ("checkin" if rng.random() < 0.75 else "payment")
        self.emit("venue_scans", t, [self.nid("SC"), p.pid, v[0], stype, self.ts(t)])

    # ---- trips ------------------------------------------------------------------------------------------
    def make_trip(
        self,
        c: _Carrier,
        dest: str,
        dest_comm: str | None,
        mode: str | None,
        out_dep: int,
        out_dur: int,
        back_dep: int,
        back_dur: int,
        rng: random.Random,
    ) -> _Trip:
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

    def tickets(
        self,
        p: _Person,
        trip: _Trip,
        mode: str,
        purchase: int,
        rng: random.Random,
        refund_at: int | None = None,
        change: bool = False,
    ) -> None:
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
        rows = [
            [out_id, p.pid, mode, a, b, ts(out_dep), ts(out_arr), "issued", ts(purchase)],
            [back_id, p.pid, mode, b, a, ts(trip.back_dep), ts(trip.back_arr), "issued", ts(purchase + 37)],
        ]
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
                active = (
                    [self.cc1]
                    + ([self.cc2] if dep_day <= self.cc2_last else [])
                    + ([self.cc3] if dep_day >= self.cc3_first - 3 else [])
                )
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
            refund = (
                purchase + rng.randrange(max(MIN, out_dep - purchase - HOUR))
                if r() < 0.8
                else out_dep + HOUR + rng.randrange(20 * HOUR)
            )
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
                self.nat(
                    p.pid,
                    self.daytime(trip.back_arr + 3 * HOUR + rng.randrange(21 * HOUR)),
                    self.site(p.home_comm, p.home, rng),
                    rng,
                )
        else:
            if r() < 0.5:
                self.declare(p, trip.out_dep - HOUR - rng.randrange(11 * HOUR), [p.home], trip.out_arr)
            if r() < 0.6:
                t = self.daytime(trip.out_dep - 8 * HOUR - rng.randrange(30 * HOUR))
                self.nat(p.pid, t - DAY if t > trip.out_dep - 2 * HOUR else t, self.site(None, p.home, rng), rng)

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
            for cty, comm, a, b in (
                (c.home, c.home_comm, d0, t.out_dep - t.lead),
                (t.dest, t.dest_comm, t.out_arr + t.lag, t.back_dep - t.lead),
                (c.home, c.home_comm, t.back_arr + t.lag, d1),
            ):
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
                segs += [
                    (c.work, c.work_comm, arrive, noon),
                    (c.work, lunch, noon + 5 * MIN, noon + 50 * MIN),
                    (c.work, c.work_comm, noon + 55 * MIN, off),
                ]
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
