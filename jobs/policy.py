"""Versioned policy (policy.toml): the run uses the version in force at its as-of."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from jobs import ROOT


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
    extra: dict = field(default_factory=dict, compare=False)

    def enabled(self, code: str) -> bool:
        return code in self.popups_enabled


def policy_path() -> Path:
    return Path(os.environ.get("SCREENING_POLICY", ROOT / "policy.toml"))


def load_versions(path: Path | None = None) -> list[Policy]:
    data = tomllib.loads((path or policy_path()).read_text(encoding="utf-8"))
    names = set(Policy.__dataclass_fields__) - {"extra"}
    out = []
    for v in data["version"]:
        missing = names - set(v)
        if missing:
            raise SystemExit(f"policy version {v.get('id')!r} lacks {', '.join(sorted(missing))}")
        kw = {k: (tuple(v[k]) if isinstance(v[k], list) else v[k]) for k in names}
        out.append(Policy(**kw, extra={k: v[k] for k in set(v) - names}))
    return sorted(out, key=lambda p: p.effective_from)


def policy_at(as_of: datetime, path: Path | None = None) -> Policy:
    versions = [p for p in load_versions(path) if p.effective_from <= as_of]
    if not versions:
        raise SystemExit(f"no policy version is in force at {as_of:%Y-%m-%d %H:%M}")
    return versions[-1]
