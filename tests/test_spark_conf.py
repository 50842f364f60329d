"""The Spark settings of jobs/spark.py that change how queries run (no session needed)."""

from __future__ import annotations

import pytest

from jobs.spark import builder_config

CODEGEN = ("spark.sql.codegen.wholeStage", "spark.sql.codegen.factoryMode")


def codegen(conf: dict) -> tuple:
    return tuple(conf.get(k) for k in CODEGEN)


def test_code_generation_is_on_for_runs_and_off_for_the_tests_small_frames(monkeypatch):
    monkeypatch.delenv("SCREENING_CODEGEN", raising=False)
    assert codegen(builder_config("run")) == (None, None)  # Spark's defaults: generated code
    assert codegen(builder_config("tests", testing=True)) == ("false", "NO_CODEGEN")


@pytest.mark.parametrize(("value", "testing", "expected"), [
    ("off", False, ("false", "NO_CODEGEN")),  # a small lake (the Airflow end-to-end test, a demo)
    ("on", True, (None, None)),               # the tests with generated code, as production runs
])
def test_screening_codegen_overrides_the_default(monkeypatch, value, testing, expected):
    monkeypatch.setenv("SCREENING_CODEGEN", value)
    assert codegen(builder_config("x", testing=testing)) == expected
