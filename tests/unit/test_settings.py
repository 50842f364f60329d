"""jobs/settings.py: every SCREENING_* variable parsed in one place, documented in one table, read nowhere else."""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from jobs import ROOT
from jobs.settings import Settings, SettingsError, settings

# Modules of jobs/ allowed to read SCREENING_* variables from the environment: only the settings module.
# (jobs/generate.py and jobs/bench.py read none today, so they are held to the rule too.)
READERS = {"jobs/settings.py"}
TABLE_HEADING = "## Settings (environment variables)"


def test_unset_variables_give_the_documented_defaults():
    assert Settings.from_env({}) == Settings(
        spark_remote=None,
        spark_master=None,
        driver_memory="4g",
        shuffle_partitions=None,
        shuffle_split=None,
        codegen=None,
        spark_ui=False,
        spark_log_level="ERROR",
        page_size="2m",
        listing_parallelism=8,
        jar_dir=ROOT / ".cache" / "jars",
        engine_home=ROOT / ".engine",
        engine_port=15002,
        engine_session_timeout="15m",
        lake=None,
        landing=None,
        ingest_threads=3,
        policy=ROOT / "policy.toml",
        dq_gates=ROOT / "data_quality" / "gates.toml",
        dq_suites=True,
        hourly_full=False,
        pii_key=None,
        profile="development",
        operator=None,
        sql_allow_pii=False,
        crash_at=None,
        crash_target="driver",
    )


def test_an_empty_variable_means_its_default():
    env = {Settings.variable(f.name): "" for f in fields(Settings)}
    assert Settings.from_env(env) == Settings()


def test_every_variable_parses_to_its_typed_value():
    env = {
        "SCREENING_SPARK_REMOTE": "sc://127.0.0.1:15010",
        "SCREENING_SPARK_MASTER": "spark://host:7077",
        "SCREENING_DRIVER_MEMORY": "10g",
        "SCREENING_SHUFFLE_PARTITIONS": "2000",
        "SCREENING_SHUFFLE_SPLIT": "4000",
        "SCREENING_CODEGEN": "OFF",
        "SCREENING_SPARK_UI": "1",
        "SCREENING_SPARK_LOG_LEVEL": "warn",
        "SCREENING_PAGE_SIZE": "512k",
        "SCREENING_LISTING_PARALLELISM": "16",
        "SCREENING_JAR_DIR": "/opt/jars",
        "SCREENING_ENGINE_HOME": "/srv/engine",
        "SCREENING_ENGINE_PORT": "15010",
        "SCREENING_ENGINE_SESSION_TIMEOUT": "900s",
        "SCREENING_LAKE": "/data/lake",
        "SCREENING_LANDING": "/data/landing",
        "SCREENING_INGEST_THREADS": "1",
        "SCREENING_POLICY": "/etc/policy.toml",
        "SCREENING_DQ_GATES": "/etc/gates.toml",
        "SCREENING_DQ_SUITES": "0",
        "SCREENING_HOURLY_FULL": "1",
        "SCREENING_PII_KEY": "  a key with spaces  ",
        "SCREENING_PROFILE": "production",
        "SCREENING_OPERATOR": "ops-alice",
        "SCREENING_SQL_ALLOW_PII": "1",
        "SCREENING_CRASH_AT": "publish:reasons",
        "SCREENING_CRASH_TARGET": "engine",
    }
    assert Settings.from_env(env) == Settings(
        spark_remote="sc://127.0.0.1:15010",
        spark_master="spark://host:7077",
        driver_memory="10g",
        shuffle_partitions=2000,
        shuffle_split=4000,
        codegen="off",
        spark_ui=True,
        spark_log_level="WARN",
        page_size="512k",
        listing_parallelism=16,
        jar_dir=Path("/opt/jars"),
        engine_home=Path("/srv/engine"),
        engine_port=15010,
        engine_session_timeout="900s",
        lake=Path("/data/lake"),
        landing=Path("/data/landing"),
        ingest_threads=1,
        policy=Path("/etc/policy.toml"),
        dq_gates=Path("/etc/gates.toml"),
        dq_suites=False,
        hourly_full=True,
        pii_key="  a key with spaces  ",
        profile="production",
        operator="ops-alice",
        sql_allow_pii=True,
        crash_at="publish:reasons",
        crash_target="engine",
    )
    assert set(env) == {Settings.variable(f.name) for f in fields(Settings)}  # the case above sets every one


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("on", True),
        (" 1 ", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
    ],
)
def test_switches_take_1_0_and_the_usual_words(raw, expected):
    assert Settings.from_env({"SCREENING_DQ_SUITES": raw}).dq_suites is expected
    assert Settings.from_env({"SCREENING_HOURLY_FULL": raw}).hourly_full is expected


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("SCREENING_ENGINE_PORT", "abc", "SCREENING_ENGINE_PORT='abc': expected a whole number from 1 to 65535"),
        ("SCREENING_ENGINE_PORT", "70000", "SCREENING_ENGINE_PORT='70000': expected a whole number from 1 to 65535"),
        ("SCREENING_INGEST_THREADS", "0", "SCREENING_INGEST_THREADS='0': expected a whole number of at least 1"),
        (
            "SCREENING_SHUFFLE_PARTITIONS",
            "8.5",
            "SCREENING_SHUFFLE_PARTITIONS='8.5': expected a whole number of at least 1",
        ),
        (
            "SCREENING_DQ_SUITES",
            "maybe",
            "SCREENING_DQ_SUITES='maybe': expected 1 or 0 (also true/false, yes/no, on/off)",
        ),
        ("SCREENING_CODEGEN", "auto", "SCREENING_CODEGEN='auto': expected one of on, off"),
        ("SCREENING_PROFILE", "prod", "SCREENING_PROFILE='prod': expected one of development, production"),
        ("SCREENING_CRASH_TARGET", "jvm", "SCREENING_CRASH_TARGET='jvm': expected one of driver, engine"),
        (
            "SCREENING_SPARK_LOG_LEVEL",
            "loud",
            "SCREENING_SPARK_LOG_LEVEL='loud': expected one of ALL, DEBUG, ERROR, FATAL, INFO, OFF, TRACE, WARN",
        ),
        ("SCREENING_DRIVER_MEMORY", "4 GB", "SCREENING_DRIVER_MEMORY='4 GB': expected a size such as 4g or 4096m"),
        ("SCREENING_PAGE_SIZE", "2.5m", "SCREENING_PAGE_SIZE='2.5m': expected a size such as 2m or 512k"),
        (
            "SCREENING_ENGINE_SESSION_TIMEOUT",
            "15 minutes",
            "SCREENING_ENGINE_SESSION_TIMEOUT='15 minutes': expected a duration such as 15m, 900s or 1h",
        ),
        (
            "SCREENING_SPARK_REMOTE",
            "127.0.0.1:15002",
            "SCREENING_SPARK_REMOTE='127.0.0.1:15002': expected a Spark Connect address sc://host:port",
        ),
    ],
)
def test_a_bad_value_stops_with_one_line_naming_the_variable_and_what_it_expects(variable, raw, message):
    with pytest.raises(SettingsError) as e:
        Settings.from_env({variable: raw})
    assert str(e.value) == f"bad setting: {message}"
    assert isinstance(e.value, SystemExit)  # the command ends with that line, no traceback


def test_every_bad_value_is_named_in_the_same_line():
    with pytest.raises(SettingsError) as e:
        Settings.from_env({"SCREENING_ENGINE_PORT": "x", "SCREENING_PROFILE": "prod", "SCREENING_DQ_SUITES": "1"})
    assert str(e.value) == (
        "bad setting: SCREENING_ENGINE_PORT='x': expected a whole number from 1 to 65535; "
        "SCREENING_PROFILE='prod': expected one of development, production"
    )


def test_the_pii_key_is_not_shown_in_the_settings_repr():
    s = Settings.from_env({"SCREENING_PII_KEY": "the-secret-key"})
    assert s.pii_key == "the-secret-key"
    assert "the-secret-key" not in repr(s) and "pii_key" not in repr(s)


def test_settings_reads_the_environment_as_it_is_at_each_call(monkeypatch):
    monkeypatch.setenv("SCREENING_INGEST_THREADS", "5")
    assert settings().ingest_threads == 5
    monkeypatch.setenv("SCREENING_INGEST_THREADS", "2")
    assert settings().ingest_threads == 2
    monkeypatch.delenv("SCREENING_INGEST_THREADS")
    assert settings().ingest_threads == 3


def test_the_settings_module_imports_only_the_standard_library_and_the_jobs_package_root():
    tree = ast.parse((ROOT / "jobs" / "settings.py").read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported - set(sys.stdlib_module_names) == {"jobs"}
    assert [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module.startswith("jobs")] == [
        "jobs"
    ]  # ROOT only: no other module of the package


# -- no stray reads ------------------------------------------------------------------------------------------
def _is_environ(node: ast.AST) -> bool:
    """`os.environ` or a bare `environ` (from os import environ)."""
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    ) or (isinstance(node, ast.Name) and node.id == "environ")


def _is_getenv(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "getenv") or (
        isinstance(node, ast.Name) and node.id == "getenv"
    )


def screening_reads(source: str) -> list[str]:
    """Reads of the environment in `source` whose key is a SCREENING_* literal or not a literal at all (it could
    be one): `os.environ.get(k)`, `os.getenv(k)`, `os.environ[k]`, `k in os.environ`. Writes (setting a variable
    for a child process, `{**os.environ, ...}`) are not reads."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == "get" and _is_environ(node.func.value))
            or _is_getenv(node.func)
        ):
            key = node.args[0] if node.args else None
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
            key = node.slice
        elif (
            isinstance(node, ast.Compare)
            and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops)
            and any(_is_environ(c) for c in node.comparators)
        ):
            key = node.left
        else:
            continue
        literal = key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None
        if literal is None or literal.startswith("SCREENING_"):
            out.append(f"line {node.lineno}: {ast.unparse(node)}")
    return out


def test_the_stray_read_check_finds_every_way_of_reading_a_variable():
    source = """
import os
from os import environ, getenv
a = os.environ.get("SCREENING_X", "1")
b = os.getenv("SCREENING_X")
c = os.environ["SCREENING_X"]
d = "SCREENING_X" in os.environ
e = environ.get(NAME)
f = getenv("SCREENING_X")
os.environ["SCREENING_Y"] = "1"                 # a write: not a read
env = {**os.environ, "SCREENING_Z": "1"}         # a child's environment: not a read
g = "PYSPARK_GATEWAY_PORT" not in os.environ     # not ours
h = os.environ.get("TZ")
"""
    assert [r.split(":")[0] for r in screening_reads(source)] == [
        "line 4",
        "line 5",
        "line 6",
        "line 7",
        "line 8",
        "line 9",
    ]


def test_no_module_of_jobs_but_settings_reads_a_screening_variable():
    stray = {}
    for path in sorted((ROOT / "jobs").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        if name not in READERS:
            reads = screening_reads(path.read_text(encoding="utf-8"))
            if reads:
                stray[name] = reads
    assert stray == {}, "read SCREENING_* variables through jobs.settings.settings() instead"


# -- one table -----------------------------------------------------------------------------------------------
def settings_table() -> dict[str, list[str]]:
    """variable -> its row's other cells (default, meaning, read by), from docs/operations.md."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    assert text.count(TABLE_HEADING) == 1
    section = text.split(TABLE_HEADING, 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        m = re.fullmatch(r"`(SCREENING_[A-Z_]+)`", cells[0])
        if m:
            assert m.group(1) not in rows, f"{m.group(1)} twice in the table"
            rows[m.group(1)] = cells[1:]
    return rows


def dag_variables() -> set[str]:
    """The SCREENING_* variables the DAG files read themselves (they import no pipeline code when parsed)."""
    found = set()
    for path in (ROOT / "dags").glob("*.py"):
        found |= set(re.findall(r"SCREENING_[A-Z_]+", "\n".join(screening_reads(path.read_text(encoding="utf-8")))))
    return found


def test_the_settings_table_lists_every_variable_once_with_default_meaning_and_reader():
    table = settings_table()
    jobs_vars = {Settings.variable(f.name) for f in fields(Settings)}
    assert dag_variables() == {"SCREENING_START_DATE", "SCREENING_END_DATE", "SCREENING_NIGHTLY_CATCHUP"}
    assert set(table) == jobs_vars | dag_variables()
    assert {v: cells for v, cells in table.items() if len(cells) != 3 or not all(cells)} == {}
    assert {v for v in jobs_vars if "jobs/" not in table[v][2]} == set()  # read by: a module of jobs/
