"""Benchmark: the whole `siae sync` (a Prefect flow) on N synthetic source records, then a
re-run with nothing changed, then one with 1% of the rows edited; for several N, the ratios
from one size to the next (x10 records should cost about x10 time). Prints per run and step:
wall seconds, records/s, the flow's peak RSS and the forked processes' private memory while
the step ran; per run, the flow's peak RSS during that run, the private memory of
the processes it forked at their largest, and both together (scripts/memory_watch.py); the
candidate pairs of the matcher; pairwise precision and recall against the generator's truth.
Writes the same as JSON and as a markdown table, with a probe of the machine's speed before
and after each size (`machine_probe`: the machine is shared, and its speed varies by
20-30% from one hour to the next). A step's seconds run from its first start
to its last end (the sources are staged side by side); `busy_seconds` in the JSON is the sum
over its instances.

Four CSV sources describe the places in real communes (2 to 4 sources per place, about 2.7
records each; 30% of the network's rows without SIRET, typos, siblings, placeholders); the
geocoder is a local server speaking the BAN's CSV contract, answering near the commune's
centre, in its own process (scripts/local_ban.py), as the real one is another machine. Each
size's first run includes the start-up of the temporary Prefect server that `siae sync`
starts (flows/local_server.py: without importing Prefect's server in this process, as
Prefect's own in-process start does, 2-3 s more); the size's other runs use it too.

    uv run python scripts/bench_pipeline.py --records 10000 [100000 1000000]
        [--out DIR] [--keep DIR] [--no-reruns] [--dask-workers 1 2]
    uv run python scripts/bench_pipeline.py --compare BEFORE.json AFTER.json

`--dask-workers`: after the runs of each size, consolidate again (forced) with matching on a
temporary Dask cluster of each number of worker processes (`[runtime] task_runner = "dask"`),
and print the merge step's seconds (cluster start included) and the speed-up against the
first number.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import multiprocessing
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# As in the tests: no telemetry (this machine has no internet), patience on 2 cores.
for _name, _value in (("DO_NOT_TRACK", "1"), ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
                      ("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")):
    os.environ.setdefault(_name, _value)

import duckdb  # noqa: E402
from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402

from flows.local_server import temporary_server  # noqa: E402
from flows.outcome import summary_of  # noqa: E402
from flows.sync import sync  # noqa: E402
from scripts.local_ban import local_ban  # noqa: E402
from scripts.memory_watch import MemoryWatch  # noqa: E402
from tests.synthetic import HEADER, reference_for_generation, write_synthetic  # noqa: E402


def in_child(fn, *args):
    """fn(*args) in a forked process, where the platform forks: the generator's and the
    edit's Python objects (rows read and written, a million at 1M) are freed but not given
    back to the system, and this process's next run would start with them in its RSS (the
    1M first run started at 764 MiB). `siae sync` generates nothing."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return fn(*args)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        return pool.submit(fn, *args).result()


def write_sources(folder: Path, places: int, ban_url: str, seed: int = 7) -> dict:
    """The synthetic national set with the real patterns (tests/synthetic.py)."""
    return write_synthetic(folder, places, reference_for_generation(), seed=seed,
                           ban_url=ban_url)


def edit_one_percent(folder: Path, seed: int = 11) -> int:
    """Give a new phone number to 1% of the rows of every source, drawn at random. The phone
    of the source a place takes it from is published, so about 1% of the places change in
    the release and on the site; a network row (no ids) is also re-keyed."""
    rng = random.Random(seed)
    edited = 0
    for name in ("asp", "emplois", "annuaire", "reseau"):
        path = folder / f"{name}.csv"
        with path.open(encoding="utf-8", newline="") as fh:
            table = list(csv.reader(fh))
        picked = rng.sample(range(1, len(table)), max(1, (len(table) - 1) // 100))
        for i in picked:
            table[i][HEADER.index("tel")] = f"04{rng.randint(10000000, 99999999)}"
        with path.open("w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows(table)
        edited += len(picked)
    return edited


def size(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.1f} MiB"


RECORDS_PER_PLACE = 2.7  # what the generator draws on average


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_peak_mib() -> float:
    """The largest peak RSS of a process this one started and waited for (the forked page
    renderers and file encoders; their pages shared with this process count in both)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _elapsed(home: Path, run_id: str) -> dict[str, float]:
    """Per step name, from the first such step's start to the last one's end (ops.runs),
    steps that had nothing to do left out: the sources staged side by side take less than
    the sum of their steps."""
    with duckdb.connect(str(home / "siae.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT step, epoch(max(ended_at) - min(started_at)) FROM ops.runs "
            "WHERE run_id = ? AND step <> 'run' AND status <> 'unchanged' GROUP BY step",
            [run_id]).fetchall()
    return {step: float(seconds) for step, seconds in rows}


def _windows(home: Path, run_id: str) -> dict[str, tuple]:
    """Per step name, (first start, last end) as ops.runs has them (local times), steps
    that had nothing to do left out."""
    with duckdb.connect(str(home / "siae.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT step, min(started_at), max(ended_at) FROM ops.runs "
            "WHERE run_id = ? AND step <> 'run' AND status <> 'unchanged' GROUP BY step",
            [run_id]).fetchall()
    return {step: (start, end) for step, start, end in rows}


def _after_publication(home: Path, run_id: str) -> float | None:
    """Seconds from the publication's end (the GeoJSON in place) to the run's end: the site
    and the snapshot. None when nothing was published."""
    with duckdb.connect(str(home / "siae.duckdb"), read_only=True) as con:
        seconds = con.execute(
            "SELECT epoch(max(ended_at) FILTER (WHERE step = 'run') "
            "- max(ended_at) FILTER (WHERE step = 'publish' AND status = 'ok')) "
            "FROM ops.runs WHERE run_id = ?", [run_id]).fetchone()[0]
    return None if seconds is None else float(seconds)


@contextlib.contextmanager
def sync_server() -> Iterator[str]:
    """The temporary Prefect server `siae sync` runs against, for this process's flows (its
    settings, read when Prefect was imported, are told the address)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    with temporary_server() as url, temporary_settings(updates={PREFECT_API_URL: url}):
        try:
            yield url
        finally:
            # Prefect's senders of events and logs outlive a flow run, bound to this server:
            # stopped with it, the next size's runs start their own
            for service in (EventsWorker, APILogWorker):
                service.drain_all(timeout=30, at_exit=False)


def _run(folder: Path, home: Path, label: str, force: bool = False,
         started: float | None = None) -> tuple[dict, object]:
    """One `sync`; `started`: when its wall time began (before the server's start-up)."""
    t0 = time.perf_counter() if started is None else started
    server_s = time.perf_counter() - t0
    with MemoryWatch() as watch:
        summary = summary_of(sync(str(folder / "sources.toml"), home=str(home), force=force,
                                  return_state=True))
    wall = time.perf_counter() - t0
    memory = watch.result
    steps: dict[str, dict] = {}
    for st in summary.steps:
        entry = steps.setdefault(st.step, {"seconds": 0.0, "busy_seconds": 0.0, "rows_in": 0})
        entry["busy_seconds"] += st.seconds
        entry["rows_in"] += st.rows_in or 0
        # the merge's parts: loading the records, matching, clustering
        entry.update({k: v for k, v in (st.details or {}).items() if k.endswith("_s")})
    elapsed = _elapsed(home, summary.run_id)
    windows = _windows(home, summary.run_id)
    for step, entry in steps.items():
        # a step that had nothing to do (publish: unchanged) still took its time
        entry["seconds"] = elapsed.get(step, entry["busy_seconds"])
        # its memory: the flow's RSS and the forked processes' own, at their largest while
        # it ran (steps side by side, geocode and locate, share their samples)
        entry["memory"] = memory.between(*windows[step]) if step in windows else None
    for entry in steps.values():
        entry["records_per_s"] = (round(entry["rows_in"] / entry["seconds"])
                                  if entry["rows_in"] and entry["seconds"] > 0 else None)
        entry["seconds"] = round(entry["seconds"], 2)
        entry["busy_seconds"] = round(entry["busy_seconds"], 2)
    failed = [f"{st.step} {st.source or ''}: {st.message}" for st in summary.steps
              if st.status == "failed"]
    # what the release says changed: an edit that no published value shows costs less
    published = next((st.details for st in summary.steps if st.step == "publish"), {}) or {}
    changed = {k: published[k] for k in ("added", "changed", "moved", "removed")
               if k in published}
    after = _after_publication(home, summary.run_id)
    return {"run": label, "wall_s": round(wall, 1), "server_start_s": round(server_s, 1),
            # the GeoJSON is in place this long after the start (Prefect's shut-down after
            # the run is counted in, so it is a little less)
            "to_geojson_s": None if after is None else round(wall - after, 1),
            # this run's own peak (lifetime peak where /proc is missing)
            "peak_rss_mib": memory.peak_mib or round(_peak_mib()),
            "start_rss_mib": memory.start_mib, "forked_private_mib": memory.forked_mib,
            "together_mib": memory.together_mib,
            "child_peak_rss_mib": round(_child_peak_mib()),
            "structures": summary.structures, "features": summary.features,
            "geocoding_requests": summary.geocoding_requests, "steps": steps,
            "published_changes": changed, "failed": failed}, summary


def print_run(records: int, run: dict) -> None:
    """One run's figures, printed as soon as it ends (a long benchmark shows its progress)."""
    steps = ", ".join(f"{k} {v['seconds']:.1f}"
                      + (f" ({v['records_per_s']:,}/s)" if v["records_per_s"] else "")
                      for k, v in run["steps"].items())
    print(f"{records:>9,} {run['run']:<10} {run['wall_s']:7.1f} s wall"
          + (f" (Prefect's server up at {run['server_start_s']:.1f} s)"
             if run.get("server_start_s") else "")
          + (f" (GeoJSON published at {run['to_geojson_s']:.1f} s)"
             if run.get("to_geojson_s") is not None else "") + ", "
          f"peak RSS {run['peak_rss_mib']} MiB (from {run['start_rss_mib']}; forked "
          f"processes {run['forked_private_mib']} MiB of their own, together "
          f"{run['together_mib']}), "
          f"{run['structures']} structures, "
          f"{run['geocoding_requests']} geocoding requests"
          + (f", release: {run['published_changes']}" if run["published_changes"] else "")
          + (f"; FAILED {run['failed']}" if run["failed"] else ""))
    print(f"{'':>9} {'':<10} {steps}", flush=True)
    peaks = ", ".join(f"{k} {m['rss_mib']:,}" + (f" + {m['forked_mib']:,}" if m["forked_mib"]
                                                  else "")
                      for k, v in run["steps"].items() if (m := v.get("memory")))
    if peaks:
        print(f"{'':>9} {'':<10} peak MiB (flow + forked): {peaks}", flush=True)


def _pairs(home: Path, settings) -> int:
    """Candidate pairs the matcher compares on the records of the last consolidation."""
    from transforms.matching import candidate_pairs
    from warehouse.db import fetch_frame

    with duckdb.connect(str(home / "siae.duckdb"), read_only=True) as con:
        rows = fetch_frame(con, "SELECT * FROM core.records").to_dict("records")
    return len(candidate_pairs(rows, settings.whole_blocks_up_to))


def on_dask(folder: Path, home: Path, workers: list[int]) -> dict:
    """The merge step's seconds of a forced consolidation per number of Dask workers."""
    sources = folder / "sources.toml"
    original = sources.read_text(encoding="utf-8")
    out = {}
    try:
        for w in workers:
            sources.write_text(original + f'\n[runtime]\ntask_runner = "dask"\n'
                                          f"dask_workers = {w}\n", encoding="utf-8")
            run, _ = _run(folder, home, f"dask x{w}", force=True)
            print_run(int(run["steps"]["merge"]["rows_in"]), run)
            out[w] = {"merge_s": run["steps"]["merge"]["seconds"], "wall_s": run["wall_s"],
                      "failed": run["failed"]}
    finally:
        sources.write_text(original, encoding="utf-8")
    return out


def machine_probe() -> float:
    """Seconds of a fixed workload (Python dicts and strings, then zlib), the fastest of
    three: how fast this shared machine is at the moment. Single runs of the same code
    hours apart differed by 20-30%; a probe before and after each size tells a slower
    machine from slower code."""
    data = bytes(range(256)) * 32768  # 8 MiB
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        counts: dict[str, int] = {}
        for i in range(400_000):
            key = f"k{i % 5000}"
            counts[key] = counts.get(key, 0) + i
        zlib.compress(data, 6)
        best = min(best, time.perf_counter() - start)
    return round(best, 3)


def cpu_times(stat: str | None = None) -> tuple[int, int] | None:
    """(steal, total) clock ticks of every CPU since boot, from /proc/stat's `cpu` line
    (`stat`: its text, else the file's); None where there is none."""
    if stat is None:
        try:
            stat = Path("/proc/stat").read_text()
        except OSError:
            return None
    for line in stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            # user nice system idle iowait irq softirq steal [guest guest_nice]: the guest
            # times are already counted in user and nice
            ticks = [int(f) for f in fields[1:9]]
            return (ticks[7] if len(ticks) > 7 else 0), sum(ticks)
    return None


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None
                ) -> float | None:
    """The share of CPU time the hypervisor gave to other guests between two cpu_times(): on
    a shared virtual machine, one cause of a slower hour that the probe's short workload
    does not see. (0.0% on the benchmark of 2026-12-06 at 9b672ac: what slowed that
    machine's hours was not steal its guest could count.)"""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 4)


def bench(records: int, folder: Path, ban_url: str, reruns: bool,
          dask_workers: list[int] | None = None) -> dict:
    """One size: the first run, then (with `reruns`) the unchanged and 1%-edited ones."""
    places = max(10, round(records / RECORDS_PER_PLACE))
    counts = in_child(write_sources, folder, places, ban_url)
    home = folder / "wh"
    out = {"records": counts["rows"], "places": places, "runs": [],
           "probe_s": {"before": machine_probe()}}
    ticks = cpu_times()
    started = time.perf_counter()
    with sync_server():
        return _runs(out, counts, folder, home, reruns, dask_workers, started, ticks)


def _runs(out: dict, counts: dict, folder: Path, home: Path, reruns: bool,
          dask_workers: list[int] | None, started: float, ticks) -> dict:
    from flows.evaluation import score_warehouse
    from transforms.spec import load_spec

    first, summary = _run(folder, home, "first", started=started)
    print_run(counts["rows"], first)
    out["runs"].append(first)
    spec = load_spec(folder / "sources.toml")
    out["candidate_pairs"] = _pairs(home, spec.matching)
    score = score_warehouse(spec, folder / "truth.csv", home, summary.run_id)
    out["precision"], out["recall"] = round(score.precision, 4), round(score.recall, 4)
    out["kinds_exact"] = round(score.kinds_exact, 4)
    if reruns:
        ids = _structure_ids(home)
        out["runs"].append(_run(folder, home, "unchanged")[0])
        print_run(counts["rows"], out["runs"][-1])
        out["edited_rows"] = in_child(edit_one_percent, folder)
        out["runs"].append(_run(folder, home, "1% edited")[0])
        print_run(counts["rows"], out["runs"][-1])
        out["ids_kept_after_edit"] = len(ids & _structure_ids(home)) / max(1, len(ids))
        out["successions"] = _successions(home)
    if dask_workers:
        out["dask"] = on_dask(folder, home, dask_workers)
    out["probe_s"]["after"] = machine_probe()
    out["cpu_steal"] = steal_share(ticks, cpu_times())
    out["warehouse_mib"] = round((home / "siae.duckdb").stat().st_size / 2**20, 1)
    out["geojson_mib"] = round((home / "publish" / "siae.geojson").stat().st_size / 2**20, 1)
    return out


STEPS = ("prepare", "fetch", "stage", "merge", "geocode", "locate", "publish", "site",
         "snapshot")


def markdown(results: list[dict]) -> str:
    """The figures as markdown tables: per size and run, then the x10 ratios."""
    lines = ["| records | run | wall s | GeoJSON at s | peak RSS MiB | forked MiB | together MiB | "
             + " | ".join(STEPS)
             + " | pairs | P | R |",
             "|---:|---|---:|---:|---:|---:|---:|" + "---:|" * len(STEPS) + "---:|---:|---:|"]
    for r in results:
        for run in r["runs"]:
            first = run["run"] == "first"
            cells = [f"{run['steps'][s]['seconds']:.1f}" if s in run["steps"] else ""
                     for s in STEPS]
            at = run.get("to_geojson_s")
            lines.append(f"| {r['records']:,} | {run['run']} | {run['wall_s']:.1f} | "
                         f"{'' if at is None else f'{at:.1f}'} | "
                         f"{run['peak_rss_mib']} | {run.get('forked_private_mib', '')} | "
                         f"{run.get('together_mib', '')} | "
                         + " | ".join(cells) + " | "
                         + (f"{r['candidate_pairs']:,} | {r['precision']:.3f} | "
                            f"{r['recall']:.3f} |" if first else " | | |"))
    lines += ["", "Peak memory per step (MiB): the flow's RSS, + the forked processes' own "
                  "(their sum at its largest in brackets when they forked):", "",
              "| records | run | " + " | ".join(STEPS) + " |",
              "|---:|---|" + "---:|" * len(STEPS)]
    for r in results:
        for run in r["runs"]:
            cells = []
            for s in STEPS:
                m = run["steps"].get(s, {}).get("memory")
                cells.append("" if not m else f"{m['rss_mib']:,}" + (
                    f" + {m['forked_mib']:,} ({m['together_mib']:,})" if m["forked_mib"]
                    else ""))
            lines.append(f"| {r['records']:,} | {run['run']} | " + " | ".join(cells) + " |")
    ratios = _ratios(results)
    if ratios:
        lines += ["", "| from → to | records | wall | merge | of which matching | "
                      "candidate pairs |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {a:,} → {b:,} | x{x['records']:.1f} | x{x['wall']:.1f} | "
                  f"x{x['merge']:.1f} | x{x['matching']:.1f} | x{x['pairs']:.1f} |"
                  for (a, b), x in ratios]
    lines += ["", "Machine probe (`machine_probe`, seconds, lower is faster), before and after "
              "each size: " + "; ".join(f"{r['records']:,}: {r['probe_s']['before']:.3f} / "
                                        f"{r['probe_s'].get('after', 0):.3f}"
                                        for r in results if r.get("probe_s"))]
    steal = [(r["records"], r["cpu_steal"]) for r in results if r.get("cpu_steal") is not None]
    if steal:
        lines += ["", "CPU time taken by the hypervisor for other guests (steal, /proc/stat) "
                      "during each size: " + "; ".join(f"{n:,}: {share:.1%}"
                                                      for n, share in steal)]
    dask = [(r["records"], r["dask"]) for r in results if r.get("dask")]
    if dask:
        lines += ["", "| records | Dask workers | merge s (cluster start included) | speed-up |",
                  "|---:|---:|---:|---:|"]
        for n, by_workers in dask:
            base = next(iter(by_workers.values()))["merge_s"]
            lines += [f"| {n:,} | {w} | {d['merge_s']:.1f} | x{base / d['merge_s']:.2f} |"
                      for w, d in by_workers.items()]
    return "\n".join(lines) + "\n"


def _change(before: float | None, after: float | None, digits: int = 1) -> str:
    """`before → after (±x%)`, the share left out under 1 (a tenth of a second is noise);
    what is missing on either side stays blank."""
    if before is None or after is None:
        return ""
    cell = f"{before:,.{digits}f} → {after:,.{digits}f}"
    return cell + (f" ({(after - before) / before:+.0%})" if before >= 1 else "")


def compare(before: list[dict], after: list[dict]) -> str:
    """Two benchmarks' results (their JSON) side by side, as a markdown table: per size and
    run found in both, the wall time, when the GeoJSON was published, the flow's peak RSS,
    the processes' together and each step's seconds, before → after."""
    lines = ["| records | run | wall s | GeoJSON at s | peak RSS MiB | together MiB | "
             + " | ".join(STEPS) + " |", "|---:|---|" + "---:|" * (4 + len(STEPS))]
    old = {(r["records"], run["run"]): run for r in before for run in r["runs"]}
    for r in after:
        for run in r["runs"]:
            was = old.get((r["records"], run["run"]))
            if was is None:
                continue
            steps = [_change(was["steps"].get(st, {}).get("seconds"),
                             run["steps"].get(st, {}).get("seconds")) for st in STEPS]
            lines.append(f"| {r['records']:,} | {run['run']} | "
                         f"{_change(was['wall_s'], run['wall_s'])} | "
                         f"{_change(was.get('to_geojson_s'), run.get('to_geojson_s'))} | "
                         f"{_change(was['peak_rss_mib'], run['peak_rss_mib'], 0)} | "
                         f"{_change(was.get('together_mib'), run.get('together_mib'), 0)} | "
                         + " | ".join(steps) + " |")
    probes = {r["records"]: r.get("probe_s", {}).get("before") for r in before}
    cells = [(r["records"], _change(probes.get(r["records"]),
                                    r.get("probe_s", {}).get("before"), 3)) for r in after]
    lines += ["", "Machine probe before each size (seconds, lower is faster), before → after: "
              + "; ".join(f"{n:,}: {cell}" for n, cell in cells)]
    return "\n".join(lines) + "\n"


def _ratios(results: list[dict]) -> list[tuple[tuple[int, int], dict]]:
    out = []
    for a, b in zip(results, results[1:], strict=False):
        fa, fb = a["runs"][0], b["runs"][0]
        out.append(((a["records"], b["records"]), {
            "records": b["records"] / a["records"], "wall": fb["wall_s"] / fa["wall_s"],
            "merge": fb["steps"]["merge"]["seconds"] / max(fa["steps"]["merge"]["seconds"],
                                                           0.01),
            "matching": fb["steps"]["merge"].get("matching_s", 0.0) / max(
                fa["steps"]["merge"].get("matching_s", 0.0), 0.01),
            "pairs": b["candidate_pairs"] / max(a["candidate_pairs"], 1)}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, nargs="+", default=[10000],
                    help="source records per size (default 10000)")
    ap.add_argument("--out", type=Path, default=Path("test-artifacts/bench"),
                    help="where bench_pipeline.json and .md go")
    ap.add_argument("--keep", type=Path, help="keep the folders (sources, warehouse) here")
    ap.add_argument("--no-reruns", action="store_true", help="first runs only")
    ap.add_argument("--dask-workers", type=int, nargs="+",
                    help="also match on a temporary Dask cluster of each number of workers")
    ap.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"),
                    help="print two benchmarks' bench_pipeline.json side by side; run nothing")
    args = ap.parse_args()
    if args.compare:
        print(compare(*(json.loads(p.read_text(encoding="utf-8")) for p in args.compare)))
        return
    results = []
    with local_ban() as ban_url:
        for n in args.records:
            base = args.keep or Path(tempfile.mkdtemp(prefix="siae-bench-"))
            folder = base / f"records-{n}"
            folder.mkdir(parents=True, exist_ok=True)
            try:
                result = bench(n, folder, ban_url, not args.no_reruns, args.dask_workers)
            finally:
                if not args.keep:
                    shutil.rmtree(base, ignore_errors=True)
            results.append(result)
            print(f"{'':>9} machine probe {result['probe_s']['before']:.3f} s before, "
                  f"{result['probe_s']['after']:.3f} s after" + (
                      f"; CPU steal {result['cpu_steal']:.1%}"
                      if result.get("cpu_steal") is not None else ""), flush=True)
            print(f"{'':>9} candidate pairs {result['candidate_pairs']:,}; precision "
                  f"{result['precision']:.3f}, recall {result['recall']:.3f}, kinds exact "
                  f"{result['kinds_exact']:.3f}" + (
                      f"; 1% edited: {result['edited_rows']} rows, "
                      f"{result['ids_kept_after_edit']:.1%} of IDs kept"
                      if "edited_rows" in result else ""), flush=True)
            for w, d in (result.get("dask") or {}).items():
                print(f"{'':>9} Dask x{w}: merge {d['merge_s']:.1f} s, wall {d['wall_s']:.1f} s"
                      + (f"; FAILED {d['failed']}" if d["failed"] else ""), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_pipeline.json").write_text(json.dumps(results, indent=1),
                                                  encoding="utf-8")
    table = markdown(results)
    (args.out / "bench_pipeline.md").write_text(table, encoding="utf-8")
    print()
    print(table)
    if any(run["failed"] for r in results for run in r["runs"]) or any(
            d["failed"] for r in results for d in (r.get("dask") or {}).values()):
        sys.exit(1)


def _successions(home: Path) -> int:
    with duckdb.connect(str(home / "siae.duckdb"), read_only=True) as con:
        return con.execute("SELECT count(*) FROM core.id_successions").fetchone()[0]


def _structure_ids(home: Path) -> set[str]:
    with duckdb.connect(str(home / "siae.duckdb"), read_only=True) as con:
        return {r[0] for r in con.execute("SELECT structure_id FROM core.structures").fetchall()}


if __name__ == "__main__":
    main()
