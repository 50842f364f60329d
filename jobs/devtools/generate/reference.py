"""The optional reference feeds `communities` and `facilities`: names people recognise for the codes the other
feeds use (every Beijing community `<street>001`..`<street>020`, the hotels `HTL<county>001`..`030`, the labs
`LAB001`..`040`, the Beijing test sites `SITE<street>01`..`06`), with office and contact phones.

A few codes are left out and a few phones are empty on purpose: the work orders then show the code, as feeds.md
says. During the period a few communities change their office phone and a few facilities are renamed, so the
feeds have versions (a run names things as known at its as-of). Every draw comes from streams of its own, so the
other feeds do not change with these.
"""

from __future__ import annotations

import random

from faker import Faker

from jobs.devtools.generate.common import DAY, HOUR

COMMUNITIES_PER_STREET = 20  # the generator's community codes: <street>001 .. <street>020
HOTELS_PER_COUNTY = 30  # People.hotel: HTL<county>001 .. 030
LABS = 40  # Health.nat: LAB001 .. LAB040
SITES_PER_STREET = 6  # Health.site: SITE<street>01 .. 06
LEFT_OUT = 0.02  # share of codes the feeds do not list (shown as codes)
NO_PHONE = 0.05  # share of rows without a phone

_STEMS = tuple(
    "和平 安华 光华 团结 幸福 建国 惠新 安贞 劲松 翠微 紫竹 万寿 永定 育新 康乐 新华 民主 "
    "友谊 胜利 青年 东风 向阳 阳光 金台 龙潭 北新 南苑 西苑 长青 福祥 丽泽 芳城 富力 "
    "百子湾 双花园 枣林 柳荫 槐房 杏园 桃园 梨园".split()
)  # name stems common in Beijing communities and hotels
_COMMUNITY_ENDS = ("东里", "西里", "南里", "北里", "一里", "二里", "三里", "家园", "花园", "新村", "苑", "园")
_VILLAGE_ENDS = ("园", "庄", "营", "坟", "堡", "窑", "河", "屯")
_HOTEL_ENDS = ("酒店", "大酒店", "宾馆", "商务酒店", "快捷酒店", "饭店", "公寓酒店")


def _short(name: str) -> str:
    """东华门街道 → 东华门, 马驹桥镇 → 马驹桥 (how a community's name starts, when it takes its street's)."""
    for suffix in ("街道办事处", "街道", "地区办事处", "地区", "镇", "乡"):
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


class Reference:
    """Mixin of `_Generator`: the reference feeds' first rows (landed with the first day) and their changes."""

    def _ref_phone(self, rng: random.Random) -> str:
        return "" if rng.random() < NO_PHONE else f"1{rng.choice('358')}{rng.randrange(10**9):09d}"

    def build_reference(self) -> None:
        """self.ref: {feed: {code: row}} of everything the feeds list before the first day."""
        self.ref = {"communities": {}, "facilities": {}}
        if not self.n_persons:
            return
        rng = random.Random(f"{self.seed}/reference")
        fake = Faker("zh_CN")
        fake.seed_instance(f"{self.seed}/reference")
        g = self.geo

        def known() -> int:  # some time in the year before the first day
            return -(1 + int(rng.random() * 365)) * DAY + int(rng.random() * DAY)

        def listed(out: dict[str, list[str]], row: list[str]) -> None:
            if rng.random() >= LEFT_OUT:
                out[row[0]] = row

        communities: dict[str, list[str]] = {}
        for street in g.bj_streets:
            sname = g.street_name[street]
            rural = sname.endswith(("镇", "乡"))
            taken: set[str] = set()
            for i in range(1, COMMUNITIES_PER_STREET + 1):
                code = f"{street}{i:03d}"
                name = ""
                while not name or name in taken:
                    u = rng.random()
                    if u < 0.35:
                        name = f"{fake.last_name()}家{rng.choice(_VILLAGE_ENDS)}"
                    elif u < 0.6:
                        name = f"{_short(sname)}{rng.choice(_COMMUNITY_ENDS)}"
                    else:
                        name = f"{rng.choice(_STEMS)}{rng.choice(_COMMUNITY_ENDS)}"
                taken.add(name)
                kind = "村" if rural and rng.random() < 0.6 else "社区"
                listed(communities, [code, name + kind, street, self._ref_phone(rng), self.ts(known())])
        facilities: dict[str, list[str]] = {}
        for county in g.bj_counties:
            streets = g.streets.get(county) or [county + "000"]
            for i in range(1, HOTELS_PER_COUNTY + 1):
                hid = f"HTL{county}{i:03d}"
                branch = _short(g.street_name.get(rng.choice(streets), ""))
                name = f"{rng.choice(_STEMS)}{rng.choice(_HOTEL_ENDS)}" + (f"({branch}店)" if branch else "")
                listed(facilities, [hid, "hotel", name, county, self._ref_phone(rng), self.ts(known())])
        for i in range(1, LABS + 1):
            county = rng.choice(g.bj_counties)
            u = rng.random()
            if u < 0.5:
                name = f"北京{fake.last_name()}{rng.choice(_STEMS)}医学检验实验室"
            elif u < 0.8:
                name = f"北京市{g.county_name[county]}疾病预防控制中心实验室"
            else:
                name = f"北京市{g.county_name[county]}{rng.choice(_STEMS)}医院检验科"
            facilities[f"LAB{i:03d}"] = [f"LAB{i:03d}", "lab", name, county, self._ref_phone(rng), self.ts(known())]
        for street in g.bj_streets:
            for i in range(1, SITES_PER_STREET + 1):
                sid = f"SITE{street}{i:02d}"
                name = f"{g.street_name[street]}第{i}核酸采样点"
                facilities[sid] = [sid, "test_site", name, street[:6], self._ref_phone(rng), self.ts(known())]
        self.ref.update(communities=communities, facilities=facilities)

    def write_reference_baseline(self) -> None:
        for feed, rows in self.ref.items():
            f = self.files[feed]
            for row in rows.values():
                f.write(row)

    def reference_changes(self, d: int) -> None:
        """Day d's changes: a community office's new phone, a renamed hotel (known that day, landed in its file)."""
        if not self.ref["communities"] or d == 0:
            return
        rng = random.Random(f"{self.seed}/reference/{d}")
        comms = self.ref["communities"]
        for code in rng.sample(sorted(comms), min(len(comms), 1 + len(comms) // 2000)):
            t = d * DAY + 9 * HOUR + int(rng.random() * 8 * HOUR)
            row = comms[code] = [*comms[code][:3], self._ref_phone(rng), self.ts(t)]
            self.emit("communities", t, row)
        hotels = sorted(k for k, v in self.ref["facilities"].items() if v[1] == "hotel")
        if hotels and rng.random() < 0.5:
            hid = rng.choice(hotels)
            old = self.ref["facilities"][hid]
            t = d * DAY + 10 * HOUR + int(rng.random() * 8 * HOUR)
            new = [hid, "hotel", f"{rng.choice(_STEMS)}{rng.choice(_HOTEL_ENDS)}", old[3], old[4], self.ts(t)]
            self.ref["facilities"][hid] = new
            self.emit("facilities", t, new)
