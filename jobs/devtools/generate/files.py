"""The landing files: `_File` writes one CSV (and puts the bad rows among the good ones); `Files` opens, fills and
closes a day's files and writes what is known before the first day into them."""

from __future__ import annotations

import csv
import os
import random
from datetime import timedelta
from typing import TYPE_CHECKING

from jobs.devtools.generate.common import DAILY_FEEDS, FEEDS

if TYPE_CHECKING:
    from jobs.devtools.generate import _Generator


class _File:
    """One CSV file being written; counts physical lines and injects bad rows after good ones."""

    __slots__ = (
        "gen",
        "feed",
        "rel",
        "path",
        "tmp",
        "fh",
        "w",
        "line",
        "good",
        "bad",
        "skip",
        "brng",
        "forced",
        "force_at",
        "template",
    )

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


class Files:
    """Mixin of `_Generator`: a day's files, and the baseline landed in the first day's files."""

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
        self.write_reference_baseline()
