"""Versioned policy (policy.toml): the run uses the version in force at its as-of."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from jobs.settings import settings


@dataclass(frozen=True)
class Policy:
    id: str
    effective_from: datetime
    home_prefix: str
    popups_enabled: tuple[str, ...]
    display_order: tuple[str, ...]
    window_days: int
    trigger_hours: int
    entry_group_hours: int
    pre_entry_nat_hours: int
    quarantine_days: int
    colocation_minutes: int
    companion_grid_m: int
    companion_overlap_minutes: int
    companion_dwell_hours: int
    trip_window_days: int
    trip_min_stay_hours: float
    status_keep_released_days: int
    audit_window_days: int
    drug_categories: tuple[str, ...]
    symptom_categories: tuple[str, ...]
    dispatch_pending_hours: int
    dispatch_due_hours: tuple[tuple[str, float], ...]  # (action, hours), from the TOML table
    extra: dict = field(default_factory=dict, compare=False)

    def enabled(self, code: str) -> bool:
        return code in self.popups_enabled


def policy_path() -> Path:
    return settings().policy


def load_versions(path: Path | None = None) -> list[Policy]:
    data = tomllib.loads((path or policy_path()).read_text(encoding="utf-8"))
    names = set(Policy.__dataclass_fields__) - {"extra"}
    out = []
    for v in data["version"]:
        missing = names - set(v)
        if missing:
            raise SystemExit(f"policy version {v.get('id')!r} lacks {', '.join(sorted(missing))}")
        kw = {k: _frozen(v[k]) for k in names}
        out.append(Policy(**kw, extra={k: v[k] for k in set(v) - names}))
    return sorted(out, key=lambda p: p.effective_from)


def _frozen(value):
    """A TOML list as a tuple, a table as sorted (key, value) pairs: a version is immutable and comparable."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    return value


def policy_at(as_of: datetime, path: Path | None = None) -> Policy:
    versions = [p for p in load_versions(path) if p.effective_from <= as_of]
    if not versions:
        raise SystemExit(f"no policy version is in force at {as_of:%Y-%m-%d %H:%M}")
    return versions[-1]


# -- policy over time --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    """A version and the stretch of instants it governs: [start, stop), None = unbounded. `next_id` is the version
    that takes over at `stop`."""

    policy: Policy
    start: datetime | None
    stop: datetime | None
    next_id: str | None = None


def applied_from(
    t: datetime, recorded: dict[str, datetime], last_as_of: datetime | None, path: Path | None = None
) -> list[dict]:
    """When each version known at T takes effect. A version is dated by its effective_from, except one that a run
    first saw after its effective_from had passed (before the last completed run's as-of): it cannot rewrite what
    was published, so it takes effect at the as-of of that first run. `recorded` holds what earlier runs applied
    (run_log.policy_applied), so every later run and rerun dates it alike."""
    out = []
    for p in load_versions(path):
        if p.id in recorded:
            at, note = recorded[p.id], None
        elif last_as_of is not None and p.effective_from < last_as_of:
            at = max(t, p.effective_from)
            note = (
                f"effective_from {p.effective_from:%Y-%m-%d %H:%M} is before the last completed run's as-of "
                f"{last_as_of:%Y-%m-%d %H:%M}: applied from {at:%Y-%m-%d %H:%M}, as published facts stand"
            )
        else:
            at, note = p.effective_from, None
        if at <= t:
            out.append({"id": p.id, "effective_from": p.effective_from, "applied_from": at, "note": note, "policy": p})
    if not out:
        raise SystemExit(f"no policy version is in force at {t:%Y-%m-%d %H:%M}")
    return sorted(out, key=lambda v: (v["applied_from"], v["effective_from"]))


def spans(applied: list[dict], t: datetime) -> list[Span]:
    """The versions governing the stretch a run evaluates (its rules' longest reach back from T), oldest first.
    The oldest also governs everything before it: what it decided there was published by earlier runs."""
    out: list[Span] = []
    for i, v in enumerate(applied):
        stop = applied[i + 1]["applied_from"] if i + 1 < len(applied) else None
        if stop is not None and stop <= v["applied_from"]:
            continue  # superseded at the instant it took effect
        out.append(Span(v["policy"], v["applied_from"], stop, applied[i + 1]["id"] if stop else None))
    reach = max(out[-1].policy.window_days, out[-1].policy.trip_window_days, out[-1].policy.quarantine_days + 1)
    horizon = t - timedelta(days=2 * reach)
    kept = [s for s in out if s.stop is None or s.stop > horizon]
    return [Span(kept[0].policy, None, kept[0].stop, kept[0].next_id), *kept[1:]]


def in_force(sp: list[Span], x: datetime) -> Policy:
    return next(s.policy for s in reversed(sp) if s.start is None or s.start <= x)
