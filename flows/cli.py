"""The `siae` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

DEMO_SOURCES = Path(__file__).resolve().parent.parent / "samples" / "sources.toml"
DEFAULT_SOURCES = Path("sources.toml")


def _progress_logging(verbose: bool) -> None:
    """Our own progress lines (pages, bytes) on stderr; Prefect's stay quiet unless -v."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("siae")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    if verbose:
        os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"


def _prefect_defaults() -> None:
    # A 2-core machine starts Prefect's temporary server slowly; the default timeout is short.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # Our progress lines (pages, bytes, geocoding) reach the Prefect run logs too.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "siae")
    # The temporary server would otherwise try to send usage telemetry: an error line on an
    # offline machine, and nothing a data pipeline should do unasked.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def print_summary(summary, out=sys.stdout) -> None:
    """The run report a person reads: per source, then merge and publication."""
    w = out.write
    w(f"\nRun {summary.run_id}\n")
    w(
        f"{'source':<24}{'step':<13}{'status':<11}{'read':>7}{'kept':>7}{'rejected':>10}"
        f"{'seconds':>9}  reasons / message\n"
    )
    for s in summary.steps:
        reasons = s.details.get("reject_reasons") if s.details else None
        note = ", ".join(f"{k} {v}" for k, v in reasons.items()) if reasons else ""
        if s.details and s.details.get("warnings"):
            note += f"{'; ' if note else ''}{s.details['warnings']} field warnings"
        if s.details and s.details.get("unmapped_columns"):
            note += f"{'; ' if note else ''}unmapped: {', '.join(s.details['unmapped_columns'])}"
        if s.step == "merge" and s.details:
            d = s.details
            note = (f"{d['matched']} pairs matched, {d['to_review']} to review (siae review), "
                    f"{d['judgements']} judgements, {d['redirects']} IDs redirected")
        if s.step == "geocode" and s.details:
            d = s.details
            refused = ", ".join(f"{k} {v}" for k, v in sorted(d.get("refused", {}).items()))
            note = (f"{d['requests']} requests ({d['sent']} addresses sent), "
                    f"{d['cache_hits']} from cache" + (f"; not kept: {refused}" if refused else ""))
        if s.details and s.details.get("by_precision"):
            note = "located by " + ", ".join(
                f"{k} {v}" for k, v in s.details["by_precision"].items()
            )
        if s.message:
            note = s.message
        fmt = lambda v: "" if v is None else str(v)  # noqa: E731
        w(
            f"{(s.source or '-'):<24}{s.step:<13}{s.status:<11}{fmt(s.rows_in):>7}"
            f"{fmt(s.rows_out):>7}{fmt(s.rejected):>10}{s.seconds:>9.2f}  {note}\n"
        )
    w(f"\nstructures after merging: {summary.structures}\n")
    w(f"geocoding requests sent: {summary.geocoding_requests}\n")
    w(
        f"features published: {summary.features}"
        f" ({summary.without_coordinates} without coordinates and {summary.closed} closed "
        "stay in DuckDB)\n"
    )
    if summary.published_by_precision:
        w("published by precision: " + ", ".join(
            f"{k} {v}" for k, v in sorted(summary.published_by_precision.items())) + "\n")
    if summary.published:
        w(f"GeoJSON: {summary.geojson}\n")
    else:
        w("GeoJSON: not written this run; the last publication stays in place\n")
    if summary.failed_sources:
        w(f"FAILED sources (last good data kept): {', '.join(summary.failed_sources)}\n")


def cmd_sync(args) -> int:
    _progress_logging(args.verbose)
    _prefect_defaults()
    from flows.sync import sync

    sources = DEMO_SOURCES if args.demo else Path(args.sources)
    summary = sync(str(sources), only=args.only or None, home=args.home, force=args.force,
                   force_publish=args.force_publish)
    print_summary(summary)
    if not summary.published:
        return 1
    return 2 if summary.failed_sources else 0


def cmd_check(args) -> int:
    from transforms.spec import SpecError, load_spec

    sources = DEMO_SOURCES if args.demo else Path(args.sources)
    try:
        spec = load_spec(sources)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from flows.connectors import DEFAULT_BASE_URLS

    for s in spec.sources.values():
        where = s.path or s.url or s.base_url or DEFAULT_BASE_URLS.get(s.kind)
        state = "" if s.enabled else " (disabled)"
        print(f"{s.name:<24}{s.kind:<23}priority {s.priority:<4}{where}{state}")
    print(f"{sources}: {len(spec.sources)} sources, valid")
    return 0


def cmd_publish(args) -> int:
    from flows.publish import PublishRefused, list_publications, publish_release
    from transforms.spec import Publication, load_spec
    from warehouse.paths import WarehousePaths

    home = WarehousePaths.resolve(args.home).home
    if args.list:
        for row in list_publications(home):
            release, when, structures, features, added, removed, moved, changed = row
            print(f"{release}  {when:%Y-%m-%d %H:%M}  {structures} structures, {features} "
                  f"on the map; +{added} -{removed} moved {moved} changed {changed}")
        return 0
    sources = DEMO_SOURCES if args.demo else Path(args.sources)
    settings = load_spec(sources).publication if sources.exists() else Publication()
    try:
        result = publish_release(home, settings, force=args.force)
    except PublishRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_map(args) -> int:
    from flows.mapserver import make_server
    from warehouse.paths import WarehousePaths

    paths = WarehousePaths.resolve(args.home)
    if not paths.geojson.exists():
        print(f"no publication in {paths.publish}: run `siae sync` (or `siae sync --demo`) "
              "first", file=sys.stderr)
        return 1
    server = make_server(paths.home, args.host, args.port, args.tiles, args.attribution)
    host, port = server.server_address[:2]
    print(f"SIAE Atlas map on http://{host}:{port}/ (Ctrl-C to stop)")
    print(f"serving {paths.publish.resolve()}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_geocode(args) -> int:
    import dataclasses
    import datetime as dt

    from flows.consolidation import geocode, locate_and_write, merge
    from flows.geocoder import terminal_progress
    from transforms.spec import load_spec
    from warehouse.lock import WarehouseBusy, consolidation_lock
    from warehouse.paths import WarehousePaths

    _progress_logging(False)
    spec = load_spec(DEMO_SOURCES if args.demo else Path(args.sources))
    settings = spec.geocoder
    if args.failed:
        settings = dataclasses.replace(settings, retry_failed_after_days=0)
    home = WarehousePaths.resolve(args.home).ensure().home
    # It rewrites the core tables: never beside a running consolidation.
    try:
        with consolidation_lock(home, float(os.environ.get("SIAE_CONSOLIDATION_WAIT", "600"))):
            merged = merge.fn(spec, home)
            answer = geocode.fn(home, settings, merged["structures"],
                                spec.defaults.user_agent, resend_all=args.all,
                                progress=terminal_progress)
            located = locate_and_write.fn(spec, home, merged, answer["accepted"],
                                          f"geocode-{dt.datetime.now():%Y%m%dT%H%M%S}")
    except WarehouseBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stats = answer["stats"]
    print(f"{stats.addresses} addresses: {stats.sent} sent in {stats.requests} requests, "
          f"{stats.cache_hits} from cache, {stats.accepted} kept")
    print("located by " + ", ".join(f"{k} {v}" for k, v in located["by_precision"].items()))
    if stats.error:
        print(f"error: {stats.error}", file=sys.stderr)
        return 2
    print("run `siae publish` to publish the new points")
    return 0


def cmd_review(args) -> int:
    from flows.review import pending_pairs, review, side_by_side
    from transforms.spec import load_spec
    from warehouse.paths import WarehousePaths

    spec = load_spec(DEMO_SOURCES if args.demo else Path(args.sources))
    home = WarehousePaths.resolve(args.home).home
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
    from transforms.matching import Thresholds, cross_validate, evaluate
    from transforms.spec import load_spec

    spec = load_spec(DEMO_SOURCES if args.demo else Path(args.sources))
    pairs = read_labelled_pairs(Path(args.pairs))
    thresholds = Thresholds(spec.matching.merge_threshold, spec.matching.review_threshold)
    result = evaluate(pairs, thresholds)
    print(f"{result.pairs} labelled pairs ({args.pairs}), merge >= {thresholds.merge}, "
          f"review >= {thresholds.review}")
    print(f"{'kind':<16}{'merge':>7}{'review':>8}{'distinct':>10}")
    for kind, bands in result.by_kind.items():
        print(f"{kind:<16}{bands.get('merge', 0):>7}{bands.get('review', 0):>8}"
              f"{bands.get('distinct', 0):>10}")
    print(f"precision {result.precision:.3f}  recall {result.recall:.3f}  "
          f"(left for review: {result.review})")
    # The thresholds were chosen on this set: say how well that choice generalises.
    cv = cross_validate(pairs)
    print(f"held out (5 folds, merge threshold re-chosen on the other four for precision "
          f">= 0.99): precision {cv.precision:.3f}  recall {cv.recall:.3f}  thresholds "
          + ", ".join(f"{t:.2f}" for t in cv.merge_thresholds))
    return 0


def cmd_changes(args) -> int:
    import datetime as dt

    from transforms.spec import parse_duration
    from warehouse.db import connect
    from warehouse.paths import WarehousePaths

    paths = WarehousePaths.resolve(args.home)
    if not paths.database.exists():
        print(f"no warehouse at {paths.database}: run `siae sync` first", file=sys.stderr)
        return 1
    try:
        since = dt.datetime.now() - parse_duration(args.since)
    except ValueError as exc:
        print(f"error: --since: {exc}", file=sys.stderr)
        return 1
    sql = ("SELECT c.changed_at, c.change, c.structure_id, coalesce(s.nom, h.nom), c.fields "
           "FROM marts.siae_changes c LEFT JOIN core.structures s USING (structure_id) "
           "LEFT JOIN (SELECT structure_id, any_value(nom) AS nom FROM core.structures_history "
           "GROUP BY ALL) h USING (structure_id) WHERE c.changed_at >= ?")
    params: list = [since]
    if args.structure:
        sql += " AND c.structure_id = ?"
        params.append(args.structure)
    with connect(paths.database, read_only=True) as con:
        rows = con.execute(sql + " ORDER BY c.changed_at, c.structure_id", params).fetchall()
    for at, change, sid, nom, fields in rows:
        detail = f" ({', '.join(fields)})" if fields else ""
        print(f"{at:%Y-%m-%d %H:%M}  {change:<8} {sid}  {nom or ''}{detail}")
    counts = {k: sum(1 for r in rows if r[1] == k) for k in ("added", "changed", "removed")}
    print(f"{len(rows)} changes since {since:%Y-%m-%d %H:%M}: "
          + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def cmd_serve(args) -> int:
    _prefect_defaults()
    from prefect.settings import PREFECT_API_URL

    from flows.deployments import (
        api_reachable,
        deployment_specs,
        prefect_yaml,
        runner_deployments,
        sources_path_for_deployments,
    )
    from transforms.spec import load_spec

    sources = DEMO_SOURCES if args.demo else Path(args.sources)
    spec = load_spec(sources)
    if args.write_prefect_yaml:
        rel = os.path.relpath(sources.resolve(), Path(args.write_prefect_yaml).resolve().parent)
        Path(args.write_prefect_yaml).write_text(prefect_yaml(spec, rel, args.home),
                                                 encoding="utf-8")
        print(f"wrote {args.write_prefect_yaml}")
        return 0
    problem = api_reachable(PREFECT_API_URL.value())
    if problem:
        print(f"siae serve needs a running Prefect server: {problem}.\n"
              "Start one in another terminal:\n"
              "    uv run prefect server start\n"
              "then point this one at it:\n"
              "    export PREFECT_API_URL=http://127.0.0.1:4200/api\n"
              "and run `uv run siae serve` again.", file=sys.stderr)
        return 1
    path = sources_path_for_deployments(sources)
    for d in deployment_specs(spec, path, args.home):
        print(f"{d['flow']}/{d['name']:<32} {d['cron']:<14} ({spec.defaults.timezone})")
    from prefect import serve

    serve(*runner_deployments(spec, path, args.home), limit=args.limit)
    return 0


def cmd_status(args) -> int:
    import datetime as dt

    from flows.review import pending_pairs
    from flows.status import pipeline_status, problems, source_statuses
    from transforms.spec import load_spec
    from warehouse.paths import WarehousePaths

    spec = load_spec(DEMO_SOURCES if args.demo else Path(args.sources))
    home = WarehousePaths.resolve(args.home).home
    now = dt.datetime.now()
    statuses = source_statuses(home, spec)
    found = problems(statuses, now, spec.alerts.on_stale)
    pipeline = pipeline_status(home)
    if WarehousePaths(home).database.exists():
        pipeline["review_pending"] = len(pending_pairs(home, spec.matching.judgements))
    if args.json:
        doc = {"checked_at": now, "problems": found, "sources": [
            {"source": st.source, "last_success": st.last_success,
             "last_failure": st.last_failure, "failure_message": st.failure_message,
             "rows": st.rows, "failing": st.failing, "stale": st.stale(now)}
            for st in statuses], **pipeline}
        print(json.dumps(doc, indent=2, default=lambda v: v.isoformat(timespec="seconds")))
        return 1 if args.check and found else 0
    fmt = lambda t: t.strftime("%Y-%m-%d %H:%M") if t else "never"  # noqa: E731
    print(f"{'source':<24}{'last success':<18}{'age':>8}{'rows':>8}  {'state':<8}last failure")
    for st in statuses:
        age = st.age(now)
        state = "FAILING" if st.failing else "STALE" if st.stale(now) else "ok"
        failure = f"{fmt(st.last_failure)}: {st.failure_message}" if st.last_failure else ""
        shown_age = "-" if age is None else (
            f"{age.days}d" if age.days else f"{int(age.total_seconds() // 3600)}h")
        rows = "-" if st.rows is None else st.rows
        print(f"{st.source:<24}{fmt(st.last_success):<18}{shown_age:>8}{rows:>8}  "
              f"{state:<8}{failure[:120]}")
    cons, pub = pipeline["consolidation"], pipeline["publication"]
    print()
    print("last consolidation: " + (f"{fmt(cons['finished_at'])} (run {cons['run_id']})"
                                    + (", geocoding INCOMPLETE" if cons["incomplete"] else "")
                                    if cons else "never"))
    print("current publication: " + (f"{pub['release_id']} of {fmt(pub['published_at'])}, "
                                     f"{pub['features']} features of {pub['structures']} "
                                     f"structures" if pub else "none"))
    if pipeline["review_pending"] is not None:
        print(f"match pairs awaiting review: {pipeline['review_pending']} (siae review)")
    if pipeline["open_alerts"]:
        print("open alerts: " + ", ".join(f"{a['source']} {a['problem']} (last alert "
                                          f"{fmt(a['last_alert'])})"
                                          for a in pipeline["open_alerts"]))
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

    p = sub.add_parser("sync", help="fetch, stage, merge, locate and publish (a Prefect flow)")
    common(p, "use the bundled offline samples (samples/sources.toml)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="sync only these sources")
    p.add_argument("-v", "--verbose", action="store_true", help="Prefect's own logs too")
    p.add_argument("--force-publish", action="store_true",
                   help="publish even when the structures drop beyond max_drop_share")
    p.add_argument(
        "--force", action="store_true", help="re-stage and re-consolidate even when nothing changed"
    )
    p.set_defaults(func=cmd_sync)
    p = sub.add_parser("check", help="validate a sources file")
    common(p, "check samples/sources.toml")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("publish", help="publish a new release from the warehouse")
    common(p, "read the [publication] settings of samples/sources.toml")
    p.add_argument("--force", action="store_true",
                   help="publish even when the structures drop beyond max_drop_share")
    p.add_argument("--list", action="store_true", help="list the recorded publications")
    p.set_defaults(func=cmd_publish)
    p = sub.add_parser("geocode", help="geocode the structures' addresses again (BAN)")
    common(p, "use samples/sources.toml's [geocoder] settings")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--all", action="store_true", help="send every address, cached or not")
    g.add_argument("--failed", action="store_true",
                   help="send failed and low-score answers again now (default: only missing "
                        "ones and failures older than retry_failed_after_days)")
    p.set_defaults(func=cmd_geocode)
    p = sub.add_parser("review", help="judge candidate duplicate pairs in the terminal")
    common(p, "use samples/sources.toml's [matching] settings")
    p.add_argument("--list", action="store_true", help="print the pending pairs, ask nothing")
    p.add_argument("--limit", type=int, default=None, help="at most this many pairs")
    p.set_defaults(func=cmd_review)
    p = sub.add_parser("evaluate", help="precision and recall of the matcher on labelled pairs")
    common(p, "use samples/sources.toml's [matching] thresholds")
    p.add_argument("--pairs", default=str(DEMO_SOURCES.parent / "matching_pairs.csv"),
                   help="labelled pairs CSV (default: samples/matching_pairs.csv)")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("serve", help="serve the scheduled deployments of sources.toml")
    common(p, "serve the demo's sources")
    p.add_argument("--limit", type=int, default=None, help="at most this many runs at once")
    p.add_argument("--write-prefect-yaml", metavar="PATH",
                   help="write the deployments as a prefect.yaml (work pools) and exit")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("status", help="per source: last success, last failure, freshness")
    common(p, "the demo's sources")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a source is failing or stale (for monitoring)")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("changes", help="what changed in the structures (marts.siae_changes)")
    p.add_argument("--since", default="7d", help="how far back, e.g. 7d, 12h (default 7d)")
    p.add_argument("--structure", metavar="ID", help="only this structure_id")
    p.add_argument("--home", default=None)
    p.set_defaults(func=cmd_changes)
    p = sub.add_parser("map", help="serve the reference map page of the publication")
    p.add_argument("--home", default=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--tiles", default=None, metavar="URL",
                   help="tile layer URL template, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png"
                   " (default: none, the page works without tiles)")
    p.add_argument("--attribution", default="", help="attribution text of the tile layer")
    p.set_defaults(func=cmd_map)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `siae`."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
