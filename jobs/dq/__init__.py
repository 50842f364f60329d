"""Data-quality gates and Great Expectations suites (issue 5, not landed yet): no gate trips."""

from __future__ import annotations


def feed_gates(ctx) -> list[tuple[str, str, dict]]:
    """(gate, one-line message, numbers) for every feed gate that trips on this run's deliveries."""
    return []


def result_gates(ctx, staged) -> list[tuple[str, str, dict]]:
    """(gate, one-line message, numbers) for every result gate that trips on the screened reasons."""
    return []


def validate_published(ctx) -> None:
    """Suites on the published gold tables (recorded, not gating: the run's lists are already written)."""
