"""The `siae` command line: parse the arguments and dispatch. The work is in the flows, the
printing in flows/reports.py; an expected failure is one line on stderr and a non-zero exit,
a traceback only with -v."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path

DEMO_SOURCES = Path(__file__).resolve().parent.parent / "samples" / "sources.toml"
DEFAULT_SOURCES = Path("sources.toml")


class CommandError(Exception):
    """An expected failure of a command: printed as one line, exit 1."""


def _progress_logging(verbose: bool) -> None:
    """Our own progress lines (pages, bytes) on stderr; Prefect's stay quiet unless -v."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("siae")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # printed once: Prefect's console handler on the root logger would print each line again
    logger.propagate = False
    if verbose:
        os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"


def _prefect_defaults(verbose: bool = False) -> None:
    # A 2-core machine starts Prefect's temporary server slowly; the default timeout is short.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # Our progress lines (pages, bytes, geocoding) reach the Prefect run logs too.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "siae")
    # The temporary server would otherwise try to send usage telemetry: an error line on an
    # offline machine, and nothing a data pipeline should do unasked.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:
        # A failing source is one line of the run report; Prefect's own task and flow run
        # logs (with the traceback) are for -v.
        os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL", "CRITICAL")


def _sources(args) -> Path:
    return DEMO_SOURCES if args.demo else Path(args.sources)


def _spec(args):
    """The validated sources file of the command (SpecError, with every problem, else)."""
    from transforms.spec import load_spec

    return load_spec(_sources(args))


def _home(args, must_exist: bool = True) -> Path:
    """The warehouse folder; with `must_exist`, a command that reads the warehouse stops
    with a message instead of creating an empty one."""
    from warehouse.paths import WarehousePaths

    paths = WarehousePaths.resolve(args.home)
    if must_exist and not paths.database.exists():
        raise CommandError(f"no warehouse at {paths.database}: run `siae sync` (or `siae sync "
                           "--demo`) first")
    return paths.home


def cmd_sync(args) -> int:
    from flows.preflight import spec_problems

    spec = _spec(args)  # before Prefect starts: an invalid file costs nothing
    for problem in spec_problems(spec, args.only or None):
        print(f"warning: {problem} (this source will fail; its last good data are kept)",
              file=sys.stderr)
    if args.no_prefect:
        # no flow run to log to: our progress lines once, on stderr
        os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "")
        os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
    _progress_logging(args.verbose)
    _prefect_defaults(args.verbose)
    from flows.local_server import temporary_server
    from flows.reports import summary_json, summary_text

    if args.no_prefect:
        from flows.sync import sync_direct

        summary = sync_direct(str(_sources(args)), only=args.only or None, home=args.home,
                              force=args.force, force_publish=args.force_publish)
    else:
        # a server that dies with this command, even killed (Prefect's own would stay)
        with temporary_server(meanwhile=_import_flows):
            from flows.outcome import summary_of
            from flows.sync import sync

            summary = summary_of(sync(str(_sources(args)), only=args.only or None,
                                      home=args.home, force=args.force,
                                      force_publish=args.force_publish, return_state=True))
    sys.stdout.write(summary_json(summary) if args.json else summary_text(summary))
    return summary.exit_code


def _import_flows() -> None:
    """Import the flows (pandas, DuckDB, Prefect: seconds) while the temporary server
    starts."""
    import flows.outcome  # noqa: F401
    import flows.sync  # noqa: F401


def cmd_check(args) -> int:
    from flows.connectors import DEFAULT_BASE_URLS
    from flows.preflight import spec_problems

    spec = _spec(args)
    for s in spec.sources.values():
        where = s.path or s.url or s.base_url or DEFAULT_BASE_URLS.get(s.kind)
        state = "" if s.enabled else " (disabled)"
        print(f"{s.name:<24}{s.kind:<23}priority {s.priority:<4}{where}{state}")
    problems = [] if args.file_only else spec_problems(spec)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"{_sources(args)}: {len(spec.sources)} sources, {len(problems)} problem(s)",
              file=sys.stderr)
        return 1
    scope = " (the file alone)" if args.file_only else ""
    print(f"{_sources(args)}: {len(spec.sources)} sources, valid{scope}")
    return 0


def cmd_publish(args) -> int:
    from dataclasses import asdict

    from flows.publish import PublishError, PublishRefused, list_publications, publish_release
    from flows.reports import publications_json, publications_text
    from flows.targets import publish_to_targets
    from transforms.spec import Publication
    from warehouse.lock import WarehouseBusy, consolidation_lock

    home = _home(args)
    if args.list:
        rows = list_publications(home)
        if args.json:
            sys.stdout.write(publications_json(rows))
        else:
            sys.stdout.write(publications_text(rows) if rows else "no publication yet\n")
        return 0
    spec = _spec(args) if _sources(args).exists() else None
    settings = spec.publication if spec else Publication()
    try:
        # never beside a consolidation, which publishes too (and prunes old releases)
        with consolidation_lock(home, float(os.environ.get("SIAE_CONSOLIDATION_WAIT", "600"))):
            result = publish_release(home, settings, force=args.force,
                                     link_base=spec.site.base_url if spec else "")
            targets = publish_to_targets(home, settings, force=args.force)
    except PublishRefused as exc:
        raise CommandError(f"refused: {exc}") from exc
    except (PublishError, WarehouseBusy) as exc:
        raise CommandError(str(exc)) from exc
    result["targets"] = [asdict(t) for t in targets]
    print(json.dumps(result, indent=2, default=str))
    failed = [t for t in targets if t.status in ("failed", "refused")]
    for t in failed:
        print(f"error: {t.target}: {t.status}: {t.message}", file=sys.stderr)
    return 1 if failed else 0


def _site_settings(args):
    from transforms.spec import SiteSettings

    sources = _sources(args)
    return _spec(args).site if sources.exists() else SiteSettings()


def cmd_sql(args) -> int:
    from flows.reports import rows_text
    from warehouse.paths import WarehousePaths
    from warehouse.snapshot import SnapshotQueryError, query_snapshot

    path = WarehousePaths.resolve(args.home).snapshot
    if not path.exists():
        raise CommandError(f"no analysts' snapshot at {path}: it is written by each "
                           "consolidation (`siae sync`, or `siae sync --demo`)")
    try:
        columns, rows = query_snapshot(path, args.query)
    except SnapshotQueryError as exc:
        raise CommandError(f"{exc} (in {path}, read-only)") from exc
    sys.stdout.write(rows_text(columns, rows, args.format))
    return 0


def cmd_site(args) -> int:
    from flows.site import SiteError, build_site

    home = _home(args)
    settings = _site_settings(args)
    try:
        result = build_site(home, settings, Path(args.out) if args.out else None,
                            args.base_url)
    except SiteError as exc:
        raise CommandError(str(exc)) from exc
    print(f"site of release {result['release']}: {result['structures']} structures "
          f"({result['on_map']} on the map), {result['regions']} régions, "
          f"{result['departements']} départements, in {result['folder']}; "
          f"{result['rendered']} pages rendered ({result['workers']} process"
          f"{'es' if result['workers'] > 1 else ''}), {result['reused']} files kept")
    return 0


def cmd_map(args) -> int:
    from flows.mapserver import make_server
    from flows.site import SiteError, build_site
    from warehouse.paths import WarehousePaths

    paths = WarehousePaths.resolve(args.home)
    if not paths.geojson.exists():
        raise CommandError(f"no publication in {paths.publish}: run `siae sync` (or `siae "
                           "sync --demo`) first")
    folder = paths.home / "site"
    settings = _site_settings(args)
    if args.tiles:
        settings = settings.model_copy(update={"tiles": args.tiles,
                                               "attribution": args.attribution})
    current = paths.publish.resolve().name
    if args.tiles or not folder.exists() or folder.resolve().name != current:
        try:
            build_site(paths.home, settings)  # the site of the current publication
        except SiteError as exc:
            raise CommandError(str(exc)) from exc
    server = make_server(folder, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"SIAE Atlas on http://{host}:{port}/ (Ctrl-C to stop)")
    print(f"serving {folder.resolve()}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_geocode(args) -> int:
    from flows.consolidation import regeocode
    from flows.geocoder import terminal_progress
    from flows.run_report import Run
    from warehouse.lock import WarehouseBusy

    _progress_logging(False)
    run = Run(_home(args), _spec(args), direct=True)
    try:
        ok = regeocode(run, resend_all=args.all, failed_now=args.failed,
                       progress=terminal_progress)
    except WarehouseBusy as exc:
        raise CommandError(str(exc)) from exc
    run.finish()
    steps = {s.step: s for s in run.summary.steps}
    geocoded, located = steps.get("geocode"), steps.get("locate")
    if geocoded and geocoded.details:
        d = geocoded.details
        print(f"{geocoded.rows_in} addresses: {d['sent']} sent in {d['requests']} requests, "
              f"{d['cache_hits']} from cache, {geocoded.rows_out} kept")
    if located and located.details:
        print("located by " + ", ".join(f"{k} {v}" for k, v in
                                        located.details["by_precision"].items()))
    failed = [s for s in run.summary.steps if s.status == "failed"]
    for s in failed:
        print(f"error: {s.step}: {s.message}", file=sys.stderr)
    if not ok:
        return 1
    if failed:
        return 2
    print("run `siae publish` to publish the new points")
    return 0


def cmd_rebuild(args) -> int:
    from flows.rebuild import RebuildRefused, rebuild
    from flows.reports import summary_text

    _progress_logging(args.verbose)
    spec = _spec(args)
    home = _home(args, must_exist=False)
    try:
        # its consolidation takes the consolidation lock, as any other
        summary, aside = rebuild(spec, home)
    except RebuildRefused as exc:
        raise CommandError(str(exc)) from exc
    if aside:
        print(f"the damaged warehouse was set aside as {aside}")
    sys.stdout.write(summary_text(summary))
    return summary.exit_code


def cmd_review(args) -> int:
    from flows.review import pending_pairs, review, side_by_side

    spec = _spec(args)
    home = _home(args)
    if args.list:
        pairs = pending_pairs(home, spec.matching.judgements)
        for pair in pairs:
            print(side_by_side(pair) + "\n")
        print(f"{len(pairs)} pairs to review")
        return 0
    counts = review(home, spec.matching.judgements, limit=args.limit)
    print(", ".join(f"{k} {v}" for k, v in counts.items()) + "; applied at the next sync")
    return 0


def cmd_evaluate(args) -> int:
    from flows.evaluation import read_labelled_pairs
    from flows.reports import evaluation_text
    from transforms.matching import cross_validate, evaluate

    if args.truth:
        return _evaluate_truth(args)
    spec = _spec(args)
    pairs = read_labelled_pairs(Path(args.pairs))
    result = evaluate(pairs, spec.matching)
    sys.stdout.write(evaluation_text(result, cross_validate(pairs), args.pairs, spec.matching))
    return 0


def _evaluate_truth(args) -> int:
    import tempfile

    from flows.evaluation import evaluate_resolution
    from transforms.truth import score_text

    _progress_logging(False)
    with tempfile.TemporaryDirectory(prefix="siae-evaluate-") as scratch:
        home = Path(args.home) if args.home else Path(scratch)
        score = evaluate_resolution(_sources(args), Path(args.truth), home)
    sys.stdout.write(score_text(score))
    return 0


def cmd_changes(args) -> int:
    from flows.reports import changes_json, changes_text
    from transforms.spec import parse_duration
    from warehouse.db import connect
    from warehouse.history import changes_since
    from warehouse.paths import WarehousePaths

    home = _home(args)
    try:
        since = dt.datetime.now() - parse_duration(args.since)
    except ValueError as exc:
        raise CommandError(f"--since: {exc}") from exc
    with connect(WarehousePaths(home).database, read_only=True) as con:
        rows = changes_since(con, since, args.structure)
    sys.stdout.write(changes_json(rows, since) if args.json else changes_text(rows, since))
    return 0


def cmd_serve(args) -> int:
    _prefect_defaults()
    from prefect.settings import PREFECT_API_URL

    from flows.deployments import (
        WORKER_HOME,
        api_reachable,
        deployment_specs,
        prefect_yaml,
        runner_deployments,
        sources_path_for_deployments,
    )

    sources = _sources(args)
    spec = _spec(args)
    if args.write_prefect_yaml:
        # the sources file relative to the checkout the runs move to (prefect.yaml's folder)
        # when it is inside it, else by its absolute path
        folder = Path(args.write_prefect_yaml).resolve().parent
        named = (str(sources.resolve().relative_to(folder))
                 if sources.resolve().is_relative_to(folder) else str(sources.resolve()))
        home = str(Path(args.home).resolve()) if args.home else WORKER_HOME
        Path(args.write_prefect_yaml).write_text(
            prefect_yaml(spec, args.work_pool, home, named), encoding="utf-8")
        print(f"wrote {args.write_prefect_yaml}")
        return 0
    problem = api_reachable(PREFECT_API_URL.value())
    if problem:
        raise CommandError(
            f"siae serve needs a running Prefect server: {problem}.\n"
            "Start one in another terminal:\n"
            "    uv run prefect server start\n"
            "then point this one at it:\n"
            "    export PREFECT_API_URL=http://127.0.0.1:4200/api\n"
            "and run `uv run siae serve` again.")
    path = sources_path_for_deployments(sources)
    for d in deployment_specs(spec, path, args.home):
        print(f"{d['flow']}/{d['name']:<32} {d['cron']:<14} ({spec.defaults.timezone})")
    from prefect import serve

    serve(*runner_deployments(spec, path, args.home), limit=args.limit)
    return 0


def cmd_status(args) -> int:
    from flows.reports import status_json, status_text
    from flows.review import pending_pairs
    from flows.status import pipeline_problems, pipeline_status, problems, source_statuses
    from warehouse.paths import WarehousePaths

    # without --sources (or --demo): what the warehouse knows, never ./sources.toml's names
    spec = _spec(args) if args.demo or args.sources is not None else None
    home = _home(args, must_exist=spec is None)
    now = dt.datetime.now()
    statuses = source_statuses(home, spec)
    found = problems(statuses, now, spec.alerts.on_stale if spec else False) \
        + pipeline_problems(home)
    pipeline = pipeline_status(home)
    if spec and WarehousePaths(home).database.exists():
        # with the judgements file as it is now
        pipeline["review_pending"] = len(pending_pairs(home, spec.matching.judgements))
    if args.json:
        print(status_json(statuses, found, pipeline, now))
    else:
        sys.stdout.write(status_text(statuses, pipeline, now, found,
                                     from_warehouse=spec is None))
    return 1 if args.check and found else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siae", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, demo_help):
        p.add_argument(
            "--sources", default=str(DEFAULT_SOURCES), help="sources file (default: ./sources.toml)"
        )
        p.add_argument("--demo", action="store_true", help=demo_help)
        p.add_argument(
            "--home", default=None, help="warehouse folder (default: $SIAE_HOME, else warehouse/)"
        )
        p.add_argument("-v", "--verbose", action="store_true",
                       help="Prefect's own logs, and tracebacks of failures")

    p = sub.add_parser("sync", help="fetch, stage, merge, locate and publish (a Prefect flow)")
    common(p, "use the bundled offline samples (samples/sources.toml)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="sync only these sources")
    p.add_argument("--force-publish", action="store_true",
                   help="publish even when the structures drop beyond max_drop_share")
    p.add_argument(
        "--force", action="store_true", help="re-stage and re-consolidate even when nothing changed"
    )
    p.add_argument("--no-prefect", action="store_true",
                   help="run the same steps without Prefect (no server, no run history there)")
    p.add_argument("--json", action="store_true",
                   help="print the run report as JSON on stdout (progress stays on stderr)")
    p.set_defaults(func=cmd_sync)
    p = sub.add_parser("check", help="validate a sources file")
    common(p, "check samples/sources.toml")
    p.add_argument("--file-only", action="store_true",
                   help="validate the file alone, not what only the machine that runs it can "
                        "tell (export files, sheets, token variables): prefect.yaml's build step")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("publish", help="publish a new release from the warehouse")
    common(p, "read the [publication] settings of samples/sources.toml")
    p.add_argument("--force", action="store_true",
                   help="publish even when the structures drop beyond max_drop_share")
    p.add_argument("--list", action="store_true", help="list the recorded publications")
    p.add_argument("--json", action="store_true", help="with --list: as JSON")
    p.set_defaults(func=cmd_publish)
    p = sub.add_parser("geocode", help="geocode the structures' addresses again (BAN)")
    common(p, "use samples/sources.toml's [geocoder] settings")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--all", action="store_true", help="send every address, cached or not")
    g.add_argument("--failed", action="store_true",
                   help="send failed and low-score answers again now (default: only missing "
                        "ones and failures older than retry_failed_after_days)")
    p.set_defaults(func=cmd_geocode)
    p = sub.add_parser("rebuild", help="rebuild a lost or corrupt warehouse from the raw "
                                       "payloads alone (no network)")
    common(p, "use samples/sources.toml")
    p.set_defaults(func=cmd_rebuild)
    p = sub.add_parser("review", help="judge candidate duplicate pairs in the terminal")
    common(p, "use samples/sources.toml's [matching] settings")
    p.add_argument("--list", action="store_true", help="print the pending pairs, ask nothing")
    p.add_argument("--limit", type=int, default=None, help="at most this many pairs")
    p.set_defaults(func=cmd_review)
    p = sub.add_parser("evaluate", help="precision and recall of the matcher on labelled pairs")
    common(p, "use samples/sources.toml's [matching] thresholds")
    p.add_argument("--pairs", default=str(DEMO_SOURCES.parent / "matching_pairs.csv"),
                   help="labelled pairs CSV (default: samples/matching_pairs.csv)")
    p.add_argument("--truth", metavar="FILE",
                   help="labelled records (source, source_id, place, kinds): run the whole "
                        "pipeline on --sources into a scratch warehouse (or --home) and score "
                        "it; scripts/make_truth_set.py builds one from real records")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("serve", help="serve the scheduled deployments of sources.toml")
    common(p, "serve the demo's sources")
    p.add_argument("--limit", type=int, default=None, help="at most this many runs at once")
    p.add_argument("--write-prefect-yaml", metavar="PATH",
                   help="write the deployments as a prefect.yaml (work pools) and exit; "
                        "--home is then the warehouse on the workers (default /data/warehouse)")
    p.add_argument("--work-pool", default="siae-pool", help="prefect.yaml's work pool")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("status", help="per source: last success, last failure, freshness")
    common(p, "the demo's sources")
    # without --sources: the sources the warehouse knows (not ./sources.toml's)
    (option,) = [a for a in p._actions if a.dest == "sources"]
    option.default, option.help = None, ("sources file whose sources to check, with their "
                                         "freshness (default: those the warehouse knows)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a source is failing or stale (for monitoring)")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("changes", help="what changed in the structures (marts.siae_changes)")
    p.add_argument("--since", default="7d", help="how far back, e.g. 7d, 12h (default 7d)")
    p.add_argument("--structure", metavar="ID", help="only this structure_id")
    p.add_argument("--json", action="store_true", help="print the changes as JSON")
    p.add_argument("--home", default=None)
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks of failures")
    p.set_defaults(func=cmd_changes)
    p = sub.add_parser("sql", help="query the analysts' snapshot of the warehouse (read-only)")
    p.add_argument("query", help="one read-only SQL statement, run on analysts.duckdb "
                   "(README: The warehouse)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--home", default=None)
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks of failures")
    p.set_defaults(func=cmd_sql)
    p = sub.add_parser("site", help="the static mini-site of the current publication")
    site_sub = p.add_subparsers(dest="site_command", required=True)
    b = site_sub.add_parser("build", help="build the site (a folder any static host serves)")
    common(b, "read the [site] settings of samples/sources.toml")
    b.add_argument("--out", default=None,
                   help="write it here (default: <home>/sites/<release>, linked as <home>/site)")
    b.add_argument("--base-url", default=None, help="where it will be hosted (absolute links)")
    b.set_defaults(func=cmd_site)
    p = sub.add_parser("map", help="serve the mini-site of the current publication")
    p.add_argument("--home", default=None)
    p.add_argument("--sources", default=str(DEFAULT_SOURCES))
    p.add_argument("--demo", action="store_true", help="read samples/sources.toml's [site]")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--tiles", default=None, metavar="URL",
                   help="tile layer URL template, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png"
                   " (default: none, the page works without tiles)")
    p.add_argument("--attribution", default="", help="attribution text of the tile layer")
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks of failures")
    p.set_defaults(func=cmd_map)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `siae`: expected failures are one clean message each, exit 1."""
    from transforms.spec import SpecError
    from warehouse.db import WarehouseUnavailable

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WarehouseUnavailable as exc:
        if getattr(args, "verbose", False):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SpecError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `siae changes | head`: the reader went away, nothing more to say
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
