"""Health events: cases, NAT samples and results, drug purchases, clinic visits, community verifications, trip
declarations and risk announcements (and the risk windows they make, which decide who gets a verification)."""

from __future__ import annotations

import random
from collections import defaultdict

from jobs.devtools.generate.common import DAY, FAR_FUTURE, HOME_PREFIX, HOUR, MIN
from jobs.devtools.generate.people import _Person

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
SYMPTOMS = (
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
)
_NOTES = {
    "not_exposed": ("亲属使用本人手机号", "车票已退，未出行", "已核实,本人未前往", ""),
    "cleared": ("已完成居家健康监测", "14天健康监测期满", ""),
    "keep": ("待核酸结果", "需继续健康监测", ""),
}


class Health:
    """Mixin of `_Generator`: the events shared by the scenario and the day loop, and a person's events of a day."""

    # ---- events shared by planner and day loop ----------------------------------------------------------
    def announce(self, area: str, building: str, level: str, eff: int, ann: int) -> None:
        self.ann_plan.append((area, building, level, eff, ann))
        self.emit("risk_announcements", ann, [self.nid("RA"), area, building, level, self.ts(eff), self.ts(ann)])

    def case(self, pid: str, phone: str, county: str, ctype: str, case_day: int, rep: int) -> None:
        self.emit("case_reports", rep, [self.nid("CR"), pid, phone, county, ctype, self.ds(case_day), self.ts(rep)])

    def nat(
        self, pid: str, t: int, site: str, rng: random.Random, result: str | None = None, report: int | None = None
    ) -> None:
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

    def verify(
        self, p: _Person, t: int, outcome: str, signed: bool, rng: random.Random, note: str | None = None
    ) -> None:
        comm = p.community or p.home_comm
        if not comm or not comm.startswith(HOME_PREFIX):
            return
        note = rng.choice(_NOTES[outcome]) if note is None else note
        self.emit(
            "verifications",
            t,
            [
                self.nid("VF"),
                p.pid,
                comm,
                self.ts(t),
                outcome,
                "true" if signed else "false",
                f"OP{rng.randint(1, 500):04d}",
                note,
            ],
        )

    def declare(self, p: _Person, t: int, counties: list[str], entered: int | None) -> None:
        self.emit(
            "trip_declarations",
            t,
            [self.nid("TD"), p.pid, self.ts(t), ";".join(counties), self.ts(entered) if entered is not None else ""],
        )

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
                end = next((e for a, e, lv in anns[i + 1 :] if lv == "low"), FAR_FUTURE)
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
                self.emit(
                    "drug_purchases", t, [self.nid("DP"), p.pid, f"PH{s[0]}{rng.randint(1, 30):03d}", cat, self.ts(t)]
                )
                if r() < 0.5:
                    self.nat(p.pid, self.daytime(t + 2 * HOUR + int(r() * 28 * HOUR)), self.site(s[1], s[0], rng), rng)
        if u_clin < 0.006:
            s, t = when(8, 20)
            if t is not None:
                sym = ";".join(sorted(rng.sample(SYMPTOMS, 1 + int(r() * 3)), key=SYMPTOMS.index)) if r() < 0.7 else ""
                self.emit(
                    "clinic_visits", t, [self.nid("CV"), p.pid, f"CL{s[0]}{rng.randint(1, 9):02d}", self.ts(t), sym]
                )
                if sym and r() < 0.5:
                    self.nat(p.pid, self.daytime(t + HOUR + int(r() * 10 * HOUR)), self.site(s[1], s[0], rng), rng)
        if u_nat < 0.2:
            s, t = when(7, 20)
            if t is not None:
                self.nat(p.pid, t, self.site(s[1], s[0], rng), rng)
