"""What the generator's modules share: time units, the feeds (their columns and keys read from schemas/feeds/), and
`Core`, the part of the generator that formats times and ids, makes division codes and routes each row to the file
of its day."""

from __future__ import annotations

import random
from datetime import timedelta

from jobs import schemas

DAY = 86400
HOUR = 3600
MIN = 60
FAR_PAST = -(10**12)
FAR_FUTURE = 10**12
HOME_PREFIX = "11"

# The feeds in the order the generator opens, fills and closes their files, which is the order of the bad rows in
# the manifest: keep it. Each feed's columns (in order) and key are those of schemas/feeds/<feed>.json.
FEED_ORDER = (
    "persons",
    "phone_registrations",
    "kit_bindings",
    "telecom_stays",
    "grid_dwells",
    "tickets",
    "venues",
    "venue_scans",
    "case_reports",
    "risk_announcements",
    "border_port_counties",
    "inbound_entries",
    "drug_purchases",
    "clinic_visits",
    "nat_samples",
    "nat_results",
    "trip_declarations",
    "verifications",
    "communities",
    "facilities",
)
if set(FEED_ORDER) != set(schemas.FEEDS):
    raise RuntimeError(f"schemas/feeds/ has {sorted(schemas.FEEDS)}, the generator writes {sorted(FEED_ORDER)}")
FEEDS: dict[str, tuple[str, ...]] = {f: tuple(c["name"] for c in schemas.feed_spec(f)["columns"]) for f in FEED_ORDER}
KEYS: dict[str, tuple[str, ...]] = {f: tuple(schemas.feed_spec(f)["key"]) for f in FEED_ORDER}
REFERENCE_FEEDS = ("border_port_counties",)
DAILY_FEEDS = tuple(f for f in FEEDS if f not in REFERENCE_FEEDS)

_HMS = tuple(f"T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY))


class Core:
    """Mixin of `_Generator` (its state is set up in `_Generator.__init__`): formatting, codes, routing."""

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
