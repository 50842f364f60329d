"""Great Expectations 1.x on Spark: the suites of data_quality/suites/*.toml, run on one Spark DataFrame each.

The GX project is a file context under `<lake>/dq/gx` (suites, validation definitions and every validation
result, JSON); its Data Docs site is `<lake>/dq/docs/index.html`. One Spark datasource (`lake`), one dataframe
asset per validated table, one whole-dataframe batch per validation: GX bundles the aggregate metrics of all the
expectations of a suite that share a domain into one Spark job.

Suites are rebuilt from the TOML on each run (the as-of goes into the freshness and range bounds), so the
stored suite is always what ran. Expectations marked `gate = true` have severity `critical`, the others
`warning`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import tomllib
import warnings
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from jobs import ROOT, schemas

# great_expectations is imported in the functions that use it: it takes seconds to import, and runs with the
# suites off (SCREENING_DQ_SUITES=0) and every other command never need it.

SUITES_DIR = ROOT / "data_quality" / "suites"
SITE = "dq_docs"
DATASOURCE = "lake"
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}
DOCS_VALIDATIONS = 2000  # the Data Docs index lists the newest this many validation results

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no usage statistics (and no network on the cluster)


@cache
def suite_specs() -> dict:
    with open(SUITES_DIR / "feeds.toml", "rb") as f:
        feeds = tomllib.load(f)
    with open(SUITES_DIR / "gold.toml", "rb") as f:
        gold = tomllib.load(f)
    return {"feeds": feeds, "gold": gold["suites"]}


# -- the GX project under the lake ---------------------------------------------------------------------------
_CONTEXTS: dict[str, object] = {}


def context(lake_root: Path):
    """The file context of this lake (one per process; created on the first run)."""
    key = str(lake_root)
    if key in _CONTEXTS:
        return _CONTEXTS[key]
    warnings.filterwarnings("ignore", module="great_expectations")
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    root = lake_root / "dq"
    root.mkdir(parents=True, exist_ok=True)
    ctx = gx.get_context(mode="file", project_root_dir=str(root))
    # Data Docs at <lake>/dq/docs (relative to <lake>/dq/gx, so a copied or moved lake keeps its own docs).
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": "../docs/"},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "validation_results_limit": DOCS_VALIDATIONS},
    }
    sites = ctx.list_data_docs_sites()
    changed = False
    for name in [n for n in sites if n != SITE]:
        ctx.delete_data_docs_site(name)
        changed = True
    if SITE not in sites:
        ctx.add_data_docs_site(site_name=SITE, site_config=site)
        changed = True
    elif sites[SITE] != site:
        ctx.update_data_docs_site(site_name=SITE, site_config=site)
        changed = True
    if not ctx.variables.progress_bars or ctx.variables.progress_bars.get("globally") is not False:
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        changed = True
    if changed:
        ctx.variables.save()
    _CONTEXTS[key] = ctx
    return ctx


def docs_index(lake_root: Path) -> Path:
    return lake_root / "dq" / "docs" / "index.html"


def _batch_definition(ctx, asset_name: str):
    try:
        ds = ctx.data_sources.get(DATASOURCE)
    except Exception:  # noqa: BLE001 (KeyError / DataContextError by version)
        ds = ctx.data_sources.add_spark(name=DATASOURCE)
    try:
        asset = ds.get_asset(asset_name)
    except LookupError:
        asset = ds.add_dataframe_asset(name=asset_name)
    try:
        return asset.get_batch_definition("whole")
    except KeyError:
        return asset.add_batch_definition_whole_dataframe("whole")


# -- suites ----------------------------------------------------------------------------------------------
_AS_OF = re.compile(r"^as_of(?:\s*([+-])\s*(\d+)\s*([hd]))?$")


def _value(v, as_of: datetime):
    """ "as_of", "as_of - 48h", "as_of - 400d" → a datetime; anything else as written."""
    if isinstance(v, str) and (m := _AS_OF.match(v.strip())):
        if not m.group(1):
            return as_of
        delta = timedelta(hours=int(m.group(2))) if m.group(3) == "h" else timedelta(days=int(m.group(2)))
        return as_of + delta if m.group(1) == "+" else as_of - delta
    return v


def expectation(spec: dict, as_of: datetime):
    """One expectation from its TOML form (expect, arguments, when, gate, why)."""
    from great_expectations.expectations.metadata_types import FailureSeverity
    from great_expectations.expectations.registry import get_expectation_impl
    from great_expectations.expectations.row_conditions import Column

    spec = dict(spec)
    kind = "expect_" + spec.pop("expect")
    gate, why, when = bool(spec.pop("gate", False)), spec.pop("why", ""), spec.pop("when", None)
    kwargs = {k: _value(v, as_of) for k, v in spec.items()}
    if when:
        ((col, val),) = when.items()
        kwargs["row_condition"] = Column(col) == val
    return get_expectation_impl(kind)(
        **kwargs,
        notes=(GATING_NOTE if gate else WARNING_NOTE) + (f" {why}" if why else ""),
        meta={"gate": gate},
        severity=FailureSeverity.CRITICAL if gate else FailureSeverity.WARNING,
    )


def feed_expectation_specs(feed: str) -> list[dict]:
    """The feed's suite: the defaults derived from its schema, then its own expectations (feeds.toml)."""
    spec = schemas.feed_spec(feed)
    conf = suite_specs()["feeds"]
    d = conf["defaults"]
    out = [
        {
            "expect": "table_row_count_to_be_between",
            "min_value": 1,
            "max_value": d["max_rows"],
            "why": "a delivery has rows (empty feeds are the feed_empty gate's)",
        },
        {
            "expect": "compound_columns_to_be_unique",
            "column_list": [*spec["key"], "_source_known_at"],
            "gate": True,
            "why": f"one row per record version: key ({', '.join(spec['key'])}) and knowledge time",
        },
    ]
    if feed not in d.get("not_fresh", []):
        out.append(
            {
                "expect": "column_max_to_be_between",
                "column": "_source_known_at",
                "min_value": f"as_of - {d['fresh_hours']}h",
                "why": f"the newest knowledge time of the delivery is at most {d['fresh_hours']} h old at the as-of",
            }
        )
    return out + list(conf.get("feeds", {}).get(feed, []))


# Shown with each expectation on its suite page in Data Docs: whether its failure halts the run.
GATING_NOTE = "**门控 Gating**: a failure halts the run (gate `feed_suite` or `gold_suite`) unless overridden."
WARNING_NOTE = "告警 Warning only: a failure is recorded and the run goes on."


def suite_notes(name: str, specs: list[dict]) -> list[str]:
    """The suite page's notes: which expectations gate the run and where a run's gate verdicts are."""
    gating = sum(1 for s in specs if s.get("gate"))
    gate = "gold_suite" if name.startswith("gold.") else "feed_suite"
    return [
        f"{gating} of {len(specs)} expectations gate the run (gate `{gate}`): when one fails the run halts before "
        "it publishes, unless an operator overrides the gate with a reason. The others only warn.",
        "Every gate's verdict for a run (the volume and reject-share gates too, which are not expectations) is in "
        "the run report's data-quality tables (`<lake>/reports/<run_id>.html`) and in `run_log.dq_summary`.",
    ]


def build_suite(ctx, name: str, specs: list[dict], as_of: datetime, meta: dict | None = None):
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name, meta=meta or {}, notes=suite_notes(name, specs))
    for s in specs:
        suite.add_expectation(expectation(s, as_of))
    return ctx.suites.add_or_update(suite)


# -- validation --------------------------------------------------------------------------------------------
def validate(
    ctx, run_id: str, suite_name: str, asset: str, df, specs: list[dict], as_of: datetime, meta: dict | None = None
):
    """Run one suite on one Spark DataFrame (one GX batch); returns the suite validation result and the
    validation result identifier (for an incremental Data Docs build)."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    suite = build_suite(ctx, suite_name, specs, as_of, meta)
    bd = _batch_definition(ctx, asset)
    vd = ctx.validation_definitions.add_or_update(gx.ValidationDefinition(name=suite_name, data=bd, suite=suite))
    rid = RunIdentifier(run_name=run_id, run_time=datetime.now().astimezone())
    return vd.run(batch_parameters={"dataframe": df}, result_format=RESULT_FORMAT, run_id=rid)


def _label(cfg: dict) -> str:
    kw = cfg["kwargs"]
    cols = (
        kw.get("column")
        or ",".join(kw.get("column_list") or [])
        or ",".join(c for c in (kw.get("column_A"), kw.get("column_B")) if c)
    )
    cond = kw.get("row_condition")
    where = f" where {_condition_text(cond)}" if cond else ""
    return f"{cfg['type'].removeprefix('expect_')}({cols}){where}"


def _condition_text(cond) -> str:
    if isinstance(cond, dict):
        col = cond.get("column", {})
        return f"{col.get('name', col)} {cond.get('operator', '')} {cond.get('parameter', '')}".strip()
    return str(cond)


def _observed(result: dict):
    if "observed_value" in result:
        return result["observed_value"]
    if "unexpected_count" in result:
        return {k: result.get(k) for k in ("unexpected_count", "unexpected_percent", "element_count")}
    return None


def result_rows(res, run_id: str, mode: str, as_of: datetime, stage: str, suite: str, asset: str) -> list[dict]:
    """Rows of <lake>/dq/results for one suite validation result."""
    now = datetime.now()
    rows = []
    for r in res.results:
        cfg = r.expectation_config.to_json_dict()
        kwargs = {k: v for k, v in cfg["kwargs"].items() if k not in ("batch_id",)}
        result = r.result or {}
        exc = (r.exception_info or {}) if isinstance(r.exception_info, dict) else {}
        raised = exc.get("raised_exception") or any(
            isinstance(v, dict) and v.get("raised_exception") for v in exc.values()
        )
        rows.append(
            {
                "run_id": run_id,
                "mode": mode,
                "as_of": as_of,
                "validated_at": now,
                "stage": stage,
                "suite": suite,
                "data_asset": asset,
                "expectation": cfg["type"],
                "label": _label(cfg),
                "kwargs": json.dumps(kwargs, sort_keys=True, default=str, ensure_ascii=False),
                "gate": bool((cfg.get("meta") or {}).get("gate")),
                "success": bool(r.success),
                "observed_value": json.dumps(_observed(result), default=str, ensure_ascii=False),
                "element_count": result.get("element_count"),
                "unexpected_count": result.get("unexpected_count"),
                "exception": (json.dumps(exc, default=str)[:2000] if raised else None),
            }
        )
    return rows


ASSETS_DIR = ROOT / "data_quality" / "docs_assets"
_VENDOR = {  # CDN address in GX's page templates → the copy in data_quality/docs_assets (see its README)
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": "bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": "bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": "bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": "bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": "bootstrap-datepicker.min.css",
}
_VENDOR_TAG = re.compile(r"<(?:script|link)\s[^>]*/vendor/[^>]*>")
_SRI = re.compile(r'\s(?:integrity|crossorigin)="[^"]*"')  # subresource integrity: blocked on file:// pages
_EXTERNAL_TAG = re.compile(
    r'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>|<link[^>]*\shref="https?://[^"]*"[^>]*>', re.S
)
_LOGO = re.compile(r'https://great-expectations-web-assets\.[^"]*?logo-long\.png[^"]*')


def localize_docs(docs: Path, since: float) -> int:
    """Point the pages written since `since` (epoch seconds) at the vendored assets and drop every other external
    reference: the docs work on a closed network and opening them calls no one. Returns the pages changed."""
    vendor = docs / "static" / "vendor"
    vendor.mkdir(parents=True, exist_ok=True)
    for f in ASSETS_DIR.iterdir():
        if f.suffix in (".js", ".css") and not (vendor / f.name).exists():
            shutil.copy2(f, vendor / f.name)
    n = 0
    for page in docs.rglob("*.html"):
        if page.stat().st_mtime < since:
            continue
        text = page.read_text(encoding="utf-8")
        if "https://" not in text:
            continue
        rel = Path(os.path.relpath(docs / "static", page.parent)).as_posix()
        for url, name in _VENDOR.items():
            text = text.replace(f'"{url}"', f'"{rel}/vendor/{name}"')
        text = _VENDOR_TAG.sub(lambda m: _SRI.sub("", m.group(0)), text)
        text = _LOGO.sub(f"{rel}/images/logo-long.png", text)
        text = _EXTERNAL_TAG.sub("", text)
        if "gx-icons.css" not in text:
            text = text.replace("</head>", f'<link rel="stylesheet" href="{rel}/vendor/gx-icons.css"/>\n</head>', 1)
        page.write_text(text, encoding="utf-8")
        n += 1
    return n


def build_docs(ctx, run_id: str, suites: list[str]) -> str:
    """Render the pages of these suites and of their validation results of this run, and the index (an
    incremental build: earlier runs' pages stay as they are)."""
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    keys = [
        k
        for k in ctx.validation_results_store.list_keys()
        if getattr(k, "run_id", None) is not None
        and k.run_id.run_name == run_id
        and k.expectation_suite_identifier.name in suites
    ]
    ids = keys + [ExpectationSuiteIdentifier(name=s) for s in suites]
    since = time.time() - 1
    urls = ctx.build_data_docs(site_names=[SITE], resource_identifiers=ids)
    localize_docs(Path(ctx.root_directory).parent / "docs", since)
    return urls.get(SITE, "")


# A run's folder in the validation store and the Data Docs: <suite parts>/<run_name>/<run_time>/<batch>.
RUN_NAME = re.compile(r"^[a-z]+-(\d{8}T\d{6})$")


def prune(lake_root: Path, before: datetime) -> int:
    """Delete the validation results and Data Docs pages of runs whose as-of (in the run id) is before `before`,
    then rebuild the index so it lists only what is left. Returns the run folders removed."""
    dq = lake_root / "dq"
    removed = 0
    for base in (dq / "gx" / "uncommitted" / "validations", dq / "docs" / "validations"):
        for d in sorted(base.glob("*/*/*")):
            m = RUN_NAME.match(d.name)
            if m and d.is_dir() and datetime.strptime(m[1], "%Y%m%dT%H%M%S") < before:
                shutil.rmtree(d)
                removed += 1
    if removed and (dq / "gx").is_dir():
        from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

        ctx = context(lake_root)
        suites = [ExpectationSuiteIdentifier(name=s.name) for s in ctx.suites.all()]
        if suites:  # rendering one page rebuilds the index from the stores; none would render every page
            since = time.time() - 1
            ctx.build_data_docs(site_names=[SITE], resource_identifiers=suites[:1])
            localize_docs(dq / "docs", since)
    return removed
