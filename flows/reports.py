"""What the commands print for a person: the run summary, the sources' status, the changes,
the publications, the evaluation. Pure renderings of values the flows return."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable


def _blank(v: object) -> str:
    return "" if v is None else str(v)


def _step_note(s) -> str:
    d = s.details or {}
    reasons = d.get("reject_reasons")
    note = ", ".join(f"{k} {v}" for k, v in reasons.items()) if reasons else ""
    if d.get("warnings"):
        note += f"{'; ' if note else ''}{d['warnings']} field warnings"
    if d.get("unmapped_columns"):
        note += f"{'; ' if note else ''}unmapped: {', '.join(d['unmapped_columns'])}"
    if s.step == "merge" and d:
        note = (f"{d['matched']} pairs matched, {d['to_review']} to review (siae review), "
                f"{d['judgements']} judgements, {d['redirects']} IDs redirected")
    if s.step == "geocode" and d:
        refused = ", ".join(f"{k} {v}" for k, v in sorted(d.get("refused", {}).items()))
        note = (f"{d['requests']} requests ({d['sent']} addresses sent), "
                f"{d['cache_hits']} from cache" + (f"; not kept: {refused}" if refused else ""))
    if d.get("by_precision"):
        note = "located by " + ", ".join(f"{k} {v}" for k, v in d["by_precision"].items())
    return s.message or note


def summary_text(summary) -> str:
    """The run report a person reads: per source, then merge and publication."""
    lines = [f"\nRun {summary.run_id}",
             f"{'source':<24}{'step':<13}{'status':<11}{'read':>7}{'kept':>7}{'rejected':>10}"
             f"{'seconds':>9}  reasons / message"]
    for s in summary.steps:
        lines.append(f"{(s.source or '-'):<24}{s.step:<13}{s.status:<11}{_blank(s.rows_in):>7}"
                     f"{_blank(s.rows_out):>7}{_blank(s.rejected):>10}{s.seconds:>9.2f}  "
                     f"{_step_note(s)}")
    lines += ["", f"structures after merging: {summary.structures}",
              f"geocoding requests sent: {summary.geocoding_requests}",
              f"features published: {summary.features} ({summary.without_coordinates} without "
              f"coordinates, {summary.closed} closed and {summary.unconfirmed} with unconfirmed "
              "kinds stay in DuckDB)"]
    if summary.published_by_precision:
        lines.append("published by precision: " + ", ".join(
            f"{k} {v}" for k, v in sorted(summary.published_by_precision.items())))
    if summary.published:
        lines.append(f"GeoJSON: {summary.geojson}")
    elif summary.current_release:
        kept = summary.current_release
        lines.append(f"GeoJSON: not written this run; the current publication stays: release "
                     f"{kept['release_id']} of {_when(kept['published_at'])}, "
                     f"{kept['features']} features of {kept['structures']} structures")
    else:
        lines.append("GeoJSON: not written this run, and there is no publication yet")
    if summary.failed_sources:
        lines.append(f"FAILED sources (last good data kept): "
                     f"{', '.join(summary.failed_sources)}")
    if summary.failed_targets:
        lines.append(f"FAILED publication targets (they keep their previous release): "
                     f"{', '.join(summary.failed_targets)}")
    return "\n".join(lines) + "\n"


def _when(t: dt.datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t else "never"


def status_text(statuses, pipeline: dict, now: dt.datetime, problems: list[dict] = (),
                from_warehouse: bool = False) -> str:
    """`siae status`: one line per source, then the consolidation, the publication, the
    pairs to review and the open alerts."""
    lines = ["sources as recorded in the warehouse; --sources FILE also judges their "
             "freshness (expect.max_age)", ""] if from_warehouse else []
    lines.append(f"{'source':<24}{'last success':<18}{'age':>8}{'rows':>8}  {'state':<8}"
                 "last failure")
    for st in statuses:
        age = st.age(now)
        state = "FAILING" if st.failing else "STALE" if st.stale(now) else "ok"
        failure = f"{_when(st.last_failure)}: {st.failure_message}" if st.last_failure else ""
        shown_age = "-" if age is None else (
            f"{age.days}d" if age.days else f"{int(age.total_seconds() // 3600)}h")
        rows = "-" if st.rows is None else st.rows
        lines.append(f"{st.source:<24}{_when(st.last_success):<18}{shown_age:>8}{rows:>8}  "
                     f"{state:<8}{failure[:120]}")
    cons, pub = pipeline["consolidation"], pipeline["publication"]
    lines.append("")
    lines.append("last consolidation: " + (
        f"{_when(cons['finished_at'])} (run {cons['run_id']})"
        + (", geocoding INCOMPLETE" if cons["incomplete"] else "") if cons else "never"))
    lines.append("current publication: " + (
        f"{pub['release_id']} of {_when(pub['published_at'])}, {pub['features']} features "
        f"of {pub['structures']} structures" if pub else "none"))
    if pipeline.get("review_pending") is not None:
        lines.append(f"match pairs awaiting review: {pipeline['review_pending']} (siae review)")
    for p in problems:
        if p["source"].startswith("("):
            lines.append(f"FAILING {p['source']}: {p['message']}"[:200])
    if pipeline.get("open_alerts"):
        lines.append("open alerts: " + ", ".join(
            f"{a['source']} {a['problem']} (last alert {_when(a['last_alert'])})"
            for a in pipeline["open_alerts"]))
    return "\n".join(lines) + "\n"


def status_json(statuses, problems: list[dict], pipeline: dict, now: dt.datetime) -> str:
    """`siae status --json`, for monitoring probes."""
    doc = {"checked_at": now, "problems": problems, "sources": [
        {"source": st.source, "last_success": st.last_success,
         "last_failure": st.last_failure, "failure_message": st.failure_message,
         "rows": st.rows, "failing": st.failing, "stale": st.stale(now)}
        for st in statuses], **pipeline}
    return json.dumps(doc, indent=2, default=lambda v: v.isoformat(timespec="seconds"))


def changes_text(rows: list[tuple], since: dt.datetime) -> str:
    """`siae changes`: one line per change, then the counts."""
    lines = []
    for at, change, sid, nom, fields in rows:
        detail = f" ({', '.join(fields)})" if fields else ""
        lines.append(f"{at:%Y-%m-%d %H:%M}  {change:<8} {sid}  {nom or ''}{detail}")
    counts = {k: sum(1 for r in rows if r[1] == k) for k in ("added", "changed", "removed")}
    lines.append(f"{len(rows)} changes since {since:%Y-%m-%d %H:%M}: "
                 + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return "\n".join(lines) + "\n"


def _json(doc) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False,
                      default=lambda v: v.isoformat(timespec="seconds")
                      if hasattr(v, "isoformat") else str(v)) + "\n"


def summary_json(summary) -> str:
    """`siae sync --json`: the run report as one JSON document (the steps, the counts, the
    failed sources and targets, the exit code)."""
    from dataclasses import asdict

    doc = asdict(summary)
    doc |= {"failed_sources": summary.failed_sources, "failed_targets": summary.failed_targets,
            "exit_code": summary.exit_code}
    return _json(doc)


def changes_json(rows: list[tuple], since: dt.datetime) -> str:
    """`siae changes --json`: the changes, oldest first, with the counts."""
    changes = [{"at": at, "change": change, "structure_id": sid, "nom": nom,
                "fields": list(fields or [])} for at, change, sid, nom, fields in rows]
    return _json({"since": since, "changes": changes,
                  "counts": {k: sum(1 for r in rows if r[1] == k)
                             for k in ("added", "changed", "removed")}})


def publications_json(rows: Iterable[tuple]) -> str:
    """`siae publish --list --json`: the releases, newest first."""
    keys = ("release_id", "published_at", "structures", "features", "added", "removed",
            "moved", "changed")
    return _json([dict(zip(keys, row, strict=True)) for row in rows])


def publications_text(rows: Iterable[tuple]) -> str:
    """`siae publish --list`: one line per release, newest first."""
    return "".join(
        f"{release}  {when:%Y-%m-%d %H:%M}  {structures} structures, {features} on the map; "
        f"+{added} -{removed} moved {moved} changed {changed}\n"
        for release, when, structures, features, added, removed, moved, changed in rows)


def evaluation_text(result, cv, pairs_file: str, thresholds) -> str:
    """`siae evaluate`: the bands per kind of pair, precision and recall, and the
    cross-validated estimate of the threshold choice."""
    lines = [f"{result.pairs} labelled pairs ({pairs_file}), merge >= "
             f"{thresholds.merge_threshold}, review >= {thresholds.review_threshold}",
             f"{'kind':<16}{'merge':>7}{'review':>8}{'distinct':>10}"]
    for kind, bands in result.by_kind.items():
        lines.append(f"{kind:<16}{bands.get('merge', 0):>7}{bands.get('review', 0):>8}"
                     f"{bands.get('distinct', 0):>10}")
    lines.append(f"precision {result.precision:.3f}  recall {result.recall:.3f}  "
                 f"(left for review: {result.review})")
    # The thresholds were chosen on this set: say how well that choice generalises.
    lines.append(f"held out (5 folds, merge threshold re-chosen on the other four for "
                 f"precision >= 0.99): precision {cv.precision:.3f}  recall {cv.recall:.3f}  "
                 "thresholds " + ", ".join(f"{t:.2f}" for t in cv.merge_thresholds))
    return "\n".join(lines) + "\n"


def rows_text(columns: list[str], rows: list[tuple], fmt: str = "table") -> str:
    """`siae sql`: a query's result as an aligned table, CSV or JSON (one object per row).
    Lists and structs are written as JSON in the table and the CSV."""
    if fmt == "json":
        return json.dumps([dict(zip(columns, row, strict=True)) for row in rows],
                          ensure_ascii=False, indent=1, default=_json_value) + "\n"
    flat = [[_cell(v) for v in row] for row in rows]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(flat)
        return out.getvalue()
    if not columns:
        return "(no result)\n"
    widths = [min(60, max([len(c)] + [len(v) for v in col]))
              for c, col in zip(columns, zip(*flat, strict=True) if flat else
                                [[] for _ in columns], strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join((v if len(v) <= w else v[:w - 1] + "…").ljust(w)
                        for v, w in zip(row, widths, strict=True)).rstrip() for row in flat]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines) + "\n"


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, list | dict | tuple):
        return json.dumps(v, ensure_ascii=False, default=_json_value)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def _json_value(v):
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)  # Decimal, UUID, bytes…
