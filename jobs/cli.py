"""The `screening` command: generate, ingest, run, stage (and the modules in COMMAND_MODULES). See README.md."""

from __future__ import annotations

import argparse
import sys
from datetime import date

from jobs import engine, explain, sql
from jobs.asof_time import parse_as_of
from jobs.devtools import bench
from jobs.settings import path_option
from jobs.spark import end_session, engine_gone, remote

# Modules that add a subcommand of their own via add_parser(subparsers). Like this module they import nothing
# that loads pyspark at start-up; the pipeline (jobs.run, jobs.schemas, the generator) is imported by the command
# that runs it, so that `screening --help` starts in a fraction of a second.
COMMAND_MODULES = (engine, explain, sql, bench)


EPILOG = """examples:
  screening generate --landing demo/landing --sf 0.002 --days 14
  screening run --landing demo/landing --lake demo/lake --as-of 2022-05-15T01:00:00
  screening run ... --mode hourly --as-of 2022-05-15T13:00:00
  screening sql "SELECT * FROM releases_by_basis" --lake demo/lake
  screening sql describe popup_status --lake demo/lake       # columns; `history TABLE`: its commits
  screening explain ID_NUMBER --lake demo/lake
  export SCREENING_LAKE=demo/lake SCREENING_LANDING=demo/landing   # then --lake/--landing may be left out

exit codes of run and stage:
  0  done
  3  a data-quality gate halted the run: nothing was published (the gate and numbers are in run_log)
  75 another run holds the lake: try again when it is done
  1  any other failure, with a message naming it

`screening COMMAND --help` gives each command's options; README.md and docs/operations.md the rest."""


def version() -> str:
    """This package's version and the engine's parts, without loading pyspark."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    def of(dist: str) -> str:
        try:
            return installed(dist)
        except PackageNotFoundError:
            return "not installed"

    return f"screening {of('screening')} (pyspark {of('pyspark')}, delta-spark {of('delta-spark')})"


class VersionAction(argparse.Action):
    """--version, looked up only when asked: reading the installed packages' metadata costs every start-up ~70 ms."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="show the versions of screening, PySpark and Delta")

    def __call__(self, parser, namespace, values, option_string=None):
        print(version())  # on stdout, as argparse's own version action
        parser.exit()


def cmd_generate(args) -> int:
    from jobs.devtools.generate import generate  # here, not at start-up: it loads Faker and pyspark (schemas)

    generate(
        args.landing,
        sf=args.sf,
        start=date.fromisoformat(args.start),
        days=args.days,
        seed=args.seed,
        bad_share=args.bad_share,
        grid_split=args.grid_split,
    )
    return 0


def cmd_ingest(args) -> int:
    from jobs.run import ingest_only

    ingest_only(args.landing, args.lake)
    return 0


def overrides(args) -> dict[str, str]:
    gates = args.override_gate or []
    if gates and not (args.reason or "").strip():
        raise SystemExit("--override-gate needs --reason TEXT (it is recorded in run_log with your user name)")
    return {g: args.reason.strip() for g in gates}


def cmd_run(args) -> int:
    from jobs.run import run

    return run(args.landing, args.lake, parse_as_of(args.as_of), mode=args.mode, overrides=overrides(args))


def cmd_stage(args) -> int:
    from jobs.run import run_stage

    return run_stage(
        args.stage.replace("-", "_"),
        args.landing,
        args.lake,
        parse_as_of(args.as_of),
        mode=args.mode,
        overrides=overrides(args),
    )


def run_args(p: argparse.ArgumentParser) -> None:
    path_option(p, "landing", "the landing folder (one sub-folder of CSV files per feed)")
    path_option(p, "lake", "the lake folder (bronze, gold, dq, exports, reports)")
    p.add_argument("--as-of", required=True, help="knowledge cut-off, ISO-8601 (local time if no offset)")
    p.add_argument("--mode", choices=["nightly", "hourly"], default="nightly")
    p.add_argument(
        "--override-gate",
        action="append",
        metavar="NAME",
        help="let this tripped data-quality gate through (repeatable; needs --reason)",
    )
    p.add_argument("--reason", help="why the gate is overridden (recorded in run_log)")


def cmd_schemas(args) -> int:
    from jobs.schemas import data_dictionary

    text = data_dictionary()
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        print(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="screening",
        description="Health-code popup screening pipeline",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action=VersionAction)
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write synthetic landing CSVs for every feed")
    path_option(g, "landing", "write the landing files here")
    g.add_argument("--sf", type=float, default=0.01, help="scale factor: 1 = about 1 M persons")
    g.add_argument("--start", default="2022-05-01", help="first day (YYYY-MM-DD)")
    g.add_argument("--days", type=int, default=14)
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--bad-share", type=float, default=0.002, help="share of injected bad rows")
    g.add_argument(
        "--grid-split",
        type=int,
        default=1,
        help="report each grid dwell in N consecutive records (denser grid_dwells, e.g. 8 = ~20/phone/day)",
    )
    g.set_defaults(func=cmd_generate)

    i = sub.add_parser("ingest", help="load new landing files into bronze Delta tables (bad rows → rejects)")
    path_option(i, "landing", "the landing folder")
    path_option(i, "lake", "the lake folder")
    i.set_defaults(func=cmd_ingest)

    r = sub.add_parser("run", help="ingest what is new, screen at --as-of, write the gold tables")
    run_args(r)
    r.set_defaults(func=cmd_run)

    st = sub.add_parser("stage", help="one stage of a run (what each Airflow task runs)")
    st.add_argument("stage", choices=["ingest", "dq-feeds", "screen", "dq-results", "publish", "maintain"])
    run_args(st)
    st.set_defaults(func=cmd_stage)

    s = sub.add_parser("schemas", help="print the data dictionary generated from schemas/")
    s.add_argument("--dictionary", action="store_true", help="(default) Markdown data dictionary")
    s.add_argument("--output", help="write to this file instead of stdout")
    s.set_defaults(func=cmd_schemas)

    for module in COMMAND_MODULES:
        module.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except Exception as e:
        if remote() and engine_gone(e):
            what = f"stage {args.stage}" if args.command == "stage" else f"screening {args.command}"
            sys.exit(
                f"{what} failed: the engine at {remote()} stopped answering. Start it (`screening engine start`) "
                "and rerun the same command: a rerun ends where an uninterrupted run ends."
            )
        raise
    finally:
        try:
            end_session()  # on the engine: the server drops this command's views, caches and checkpoints
        except Exception:  # noqa: BLE001 (the engine is gone: nothing left to release)
            pass
    sys.exit(code)


if __name__ == "__main__":
    main()
