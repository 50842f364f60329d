"""Hostile landing files (reliability issue, item 4): ingest never crashes, every line is accounted for (loaded
into bronze or in rejects with a reason, nothing silently dropped) and good rows load with their text intact.

One fixed delivery names each known trick; a Hypothesis test then mixes them at random (few examples: every
example is a real Spark ingest).
"""

from __future__ import annotations

import re
import shutil
from itertools import count
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.ingest.job import Ingestor
from jobs.ingest.validate import FILE_REASONS, REASONS
from jobs.lake import Lake
from tests.landing import resident_id

HEADER = "person_id,name,birth_date,phone,community_code,hotel_id,hotel_county_code,updated_at"
_ids = count(1)


def new_id() -> str:
    """A fresh valid ID: county 110101, born in January 1990, a serial per call."""
    n = next(_ids)
    return resident_id(f"110101199001{1 + n // 1000 % 28:02d}{n % 1000:03d}")


def good(pid: str, name: str = "张三") -> tuple[str, str]:
    """A valid persons line (name CSV-quoted) and the name bronze must hold."""
    quoted = '"' + name.replace('"', '""') + '"'
    return f"{pid},{quoted},1990-01-01,13800000001,110101001001,,,2022-05-01T08:00:00", name


def split_lines(data: bytes) -> list[bytes]:
    """Physical lines as Spark's text reader sees them (\\n, \\r\\n and a bare \\r all end a line)."""
    return re.split(rb"\r\n|\r|\n", data)


def accounted(spark, lake: Lake, landing: Path) -> tuple[dict, dict, set]:
    """(bronze name by (file, line), reject reason by (file, line), expected (file, line) of every data line)."""
    bronze = {(r["_file"], r["_line"]): r["name"] for r in lake.read_bronze(spark, "persons").collect()}
    rejects = {}
    for r in lake.read_gold(spark, "rejects").collect():
        assert r["reason"] in REASONS + FILE_REASONS and r["raw_row"] is not None and r["detail"], r
        assert (r["file"], r["line"]) not in rejects, f"two rejects for one line: {r}"
        rejects[(r["file"], r["line"])] = r["reason"]
    expected = set()
    for path in sorted(landing.glob("persons/*.csv")):
        rel = str(path.relative_to(landing))
        lines = split_lines(path.read_bytes())
        if (rel, 0) in rejects:  # a whole file rejected: one row for the file, nothing of it in bronze
            assert not [k for k in bronze if k[0] == rel]
            continue
        expected |= {(rel, i) for i, ln in enumerate(lines, 1) if i > 1 and ln.strip(b" ") != b""}
    return bronze, rejects, expected


def ingest(spark, landing: Path, lake_dir: Path) -> Lake:
    lake = Lake(lake_dir)
    Ingestor(spark, lake, landing, "fuzz", None, log=lambda *_: None).run()
    return lake


def write(landing: Path, name: str, data: bytes) -> None:
    path = landing / "persons" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_each_known_hostile_line_is_rejected_or_loaded_intact_and_nothing_is_lost(spark, tmp_path):
    landing = tmp_path / "landing"
    ok_formula, formula = good(new_id(), "=cmd|' /C calc'!A0")
    ok_sql, sql = good(new_id(), "Robert'); DROP TABLE persons;--")
    ok_quotes, quoted = good(new_id(), 'say "hi", then\tleave')
    ok_plain, plain = good(new_id())
    huge = "长" * 200_000
    ok_huge, _ = good(new_id(), huge)
    lines = [
        HEADER.encode(),
        ok_formula.encode(),
        ok_sql.encode(),
        ok_quotes.encode(),  # 2-4 good, hostile text
        f"{new_id()},李四,2022-02-30,13800000001,110101001001,,,2022-05-01T08:00:00".encode(),  # 5 bad_type
        f'{new_id()},"unterminated,1990-01-01,,,,,2022-05-01T08:00:00'.encode(),  # 6 malformed_row
        f"{new_id()},王五,1990-01-01,,,,,2022-05-01T08:00:00".encode().replace(
            "王五".encode(), "王五".encode("gbk")
        ),  # 7 malformed_row (GBK)
        ("\ufeff" + HEADER).encode(),  # 8 a BOM and header mid-file
        ok_huge.encode(),  # 9 good, 200k-char name
        f'{new_id()},"two\nlines",1990-01-01,,,,,2022-05-01T08:00:00'.encode(),  # 10-11 split by a newline
        ok_plain.encode(),  # 12 good
    ]
    write(landing, "part-001.csv", b"\n".join(lines) + b"\n")
    write(landing, "empty.csv", b"")
    write(landing, "header-only.csv", (HEADER + "\n").encode())
    ok_dup, dup_name = good(new_id(), "赵六")
    write(landing, "dup-columns.csv", (HEADER + ",name\n" + ok_dup + ",别名\n").encode())
    lake = ingest(spark, landing, tmp_path / "lake")

    bronze, rejects, expected = accounted(spark, lake, landing)
    f = "persons/part-001.csv"
    assert {k: v for k, v in bronze.items() if k[0] == f} == {
        (f, 2): formula,
        (f, 3): sql,
        (f, 4): quoted,
        (f, 9): huge,
        (f, 12): plain,
    }
    assert {k: v for k, v in rejects.items() if k[0] == f} == {
        (f, 5): "bad_type",
        (f, 6): "malformed_row",
        (f, 7): "malformed_row",
        (f, 8): "bad_type",
        (f, 10): "malformed_row",
        (f, 11): "malformed_row",
    }
    assert rejects[("persons/empty.csv", 0)] == "missing_column"
    assert bronze[("persons/dup-columns.csv", 2)] == dup_name  # the first of two same-named columns counts
    assert set(bronze) | set(rejects) - {("persons/empty.csv", 0)} == expected
    assert not set(bronze) & set(rejects)


def test_an_unquoted_line_with_a_field_too_many_or_too_few_is_malformed_even_an_empty_one(spark, tmp_path):
    landing = tmp_path / "landing"

    def line(pid: str) -> str:  # no quotes: Spark's CSV parser alone counts its fields
        return f"{pid},张三,1990-01-01,13800000001,110101001001,,,2022-05-01T08:00:00"

    ok = new_id()
    lines = [
        HEADER,
        line(ok),  # 2 good
        line(new_id()) + ",x",  # 3 a field too many
        line(new_id()) + ",",  # 4 an empty field too many
        line(new_id()).replace(",,,", ",,"),  # 5 an empty field too few
        line(new_id()).rsplit(",", 1)[0],  # 6 the last field missing
    ]
    write(landing, "part-001.csv", "\n".join(lines).encode() + b"\n")
    lake = ingest(spark, landing, tmp_path / "lake")

    bronze, rejects, expected = accounted(spark, lake, landing)
    f = "persons/part-001.csv"
    assert bronze == {(f, 2): "张三"}
    assert rejects == {(f, n): "malformed_row" for n in (3, 4, 5, 6)}
    assert set(bronze) | set(rejects) == expected


# -- random mixes ------------------------------------------------------------------------------------------
NASTY = st.sampled_from(
    [
        "=cmd|' /C calc'!A0",
        "+SUM(A1:A9)",
        "-1+1",
        "@SUM(1)",
        "'; DROP TABLE persons; --",
        "1 OR 1=1",
        "2022-02-30",
        "2022-13-01T25:61:00",
        "\ufeff",
        "\x00",
        '"',
        '""',
        '"a,b"',
        'a"b',
        "\t",
        "x" * 5000,
        "１１０１０１",
        "NaN",
        "null",
        "NULL",
        "-",
        "\u202e",
        "😷",
    ]
)
FIELD = st.one_of(NASTY, st.text(max_size=12), st.text(alphabet=',"\n\r;\\ \ufeff', max_size=4))


@st.composite
def hostile_line(draw) -> bytes:
    """A persons line with some fields replaced by nasty text, written raw (no CSV quoting) or quoted."""
    cells = [new_id(), "名字", "1990-01-01", "13800000001", "110101001001", "", "", "2022-05-01T08:00:00"]
    for i in draw(st.sets(st.integers(0, 7), min_size=1, max_size=3)):
        cells[i] = draw(FIELD)
    if draw(st.booleans()):
        cells = ['"' + c.replace('"', '""') + '"' for c in cells]
    text = ",".join(cells)
    return (
        text.encode("gbk", errors="replace") if draw(st.integers(0, 9)) == 0 else text.encode("utf-8", "surrogatepass")
    )


@st.composite
def delivery(draw) -> list[tuple[list[bytes], list[str]]]:
    """1-3 files of good and hostile lines: (lines, names of the good rows in their order)."""
    files = []
    for _ in range(draw(st.integers(1, 3))):
        lines, names = [HEADER.encode()], []
        for _ in range(draw(st.integers(0, 8))):
            if draw(st.booleans()):
                line, name = good(
                    new_id(),
                    draw(
                        st.one_of(NASTY, st.text(min_size=1, max_size=20)).filter(
                            lambda s: s.strip(" ") != "" and "\x00" not in s and not re.search(r"[\r\n]", s)
                        )
                    ),
                )
                lines.append(line.encode("utf-8", "surrogatepass"))
                names.append(name)
            else:
                lines.append(draw(hostile_line()))
                names.append(None)
        files.append((lines, names))
    return files


@pytest.mark.slow
@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(files=delivery())
def test_random_hostile_deliveries_never_crash_and_every_line_is_loaded_or_rejected(spark, tmp_path, files):
    root = tmp_path / f"ex{new_id()}"
    landing = root / "landing"
    for n, (lines, _) in enumerate(files):
        write(landing, f"part-{n:03d}.csv", b"\n".join(lines) + b"\n")
    try:
        lake = ingest(spark, landing, root / "lake")
        bronze, rejects, expected = accounted(spark, lake, landing)
        assert set(bronze) | set(rejects) == expected
        assert not set(bronze) & set(rejects)
        for n, (lines, names) in enumerate(files):
            rel = f"persons/part-{n:03d}.csv"
            for i, name in enumerate(names, 2):
                if name is not None and not any(b"\r" in ln or b"\n" in ln for ln in lines[1:i]):
                    assert bronze.get((rel, i)) == name.strip(" "), (rel, i)
    finally:
        shutil.rmtree(root, ignore_errors=True)
