"""The `screening` command explains itself: --version, examples and exit codes in --help, paths from settings."""

from __future__ import annotations

import re

import pytest

from jobs.cli import build_parser, version
from jobs.run import EXIT_HALTED, EXIT_LOCKED


def test_version_names_the_package_and_the_spark_and_delta_it_runs_on():
    from importlib.metadata import version as installed

    assert version() == (
        f"screening {installed('screening')} (pyspark {installed('pyspark')}, delta-spark {installed('delta-spark')})"
    )


def test_version_prints_it_and_exits(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == version() + "\n"


def test_help_lists_the_exit_codes_a_run_returns():
    text = build_parser().format_help()
    codes = dict(re.findall(r"^  (\d+) +(\S+)", text.split("exit codes")[1], re.M))
    assert codes == {"0": "done", str(EXIT_HALTED): "a", str(EXIT_LOCKED): "another", "1": "any"}


def test_lake_and_landing_come_from_their_settings_when_not_given(monkeypatch):
    monkeypatch.setenv("SCREENING_LAKE", "/data/lake")
    monkeypatch.setenv("SCREENING_LANDING", "/data/landing")
    args = build_parser().parse_args(["run", "--as-of", "2022-05-15T01:00:00"])
    assert (args.lake, args.landing) == ("/data/lake", "/data/landing")
    args = build_parser().parse_args(["sql", "views", "--lake", "/elsewhere"])
    assert args.lake == "/elsewhere"


def test_lake_is_required_when_its_setting_is_unset(monkeypatch, capsys):
    monkeypatch.delenv("SCREENING_LAKE", raising=False)
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["explain", "110105198501010012"])
    assert e.value.code == 2
    assert "the following arguments are required: --lake" in capsys.readouterr().err
