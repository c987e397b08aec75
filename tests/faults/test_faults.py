"""The fault matrix: what breaks around the pipeline (network, disk, processes, the
warehouse file) and what must hold then. Each test is registered with @fault (its id, the
fault, the expected outcome); docs/FAULTS.md is generated from them.

Runs are direct (flows.sync.sync_direct: the same pipeline without a Prefect server) unless
the fault is about the command itself; a kill -9 runs in a child process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from werkzeug import Response

from flows.status import pipeline_problems
from flows.sync import sync_direct
from tests.helpers import ROOT, query

FAULTS: list[tuple[str, str, str]] = []
ROWS = [("Atelier Vélo", "19070916200019", "3 rue Neuve", "07200", "Aubenas"),
        ("Recyclerie Ardéchoise", "42385519600014", "12 avenue de la Gare", "07200", "Aubenas"),
        ("Tremplin Vivarais", "39485379000266", "1 place de l'Église", "07200", "Aubenas"),
        ("Jardins du Coiron", "34255976200048", "5 chemin des Vignes", "07200", "Aubenas"),
        ("Envol Services", "40058084100015", "8 rue du Pont", "07200", "Aubenas"),
        ("Horizon Bâtiment", "35046768400048", "2 rue Haute", "07200", "Aubenas")]
PAGE = {"count": 2, "next": None, "previous": None, "results": [
    {"id": i, "siret": siret, "type": "EI", "raison_sociale": f"Entreprise {i}",
     "addresse_ligne_1": f"{i} rue Basse", "code_postal": "07200", "ville": "Aubenas"}
    for i, siret in ((1, "38452080500068"), (2, "41071771400027"))]}


def fault(id_: str, what: str, outcome: str):
    """Register a test as a case of the fault matrix."""
    def register(fn):
        FAULTS.append((id_, what, outcome))
        return fn
    return register


def partner_csv(rows=ROWS) -> str:
    lines = ["Nom;SIRET;Adresse;CP;Ville;Type"]
    lines += [";".join([*r, "ACI"]) for r in rows]
    return "\n".join(lines) + "\n"


def make_folder(tmp_path: Path, api_url: str | None = None, geocoder_url: str | None = None,
                extra: str = "") -> Path:
    folder = tmp_path / "conf"
    folder.mkdir(exist_ok=True)
    (folder / "partner.csv").write_text(partner_csv(), encoding="utf-8")
    toml = ['[defaults]', 'retries = 1', 'timeout = 3', '[publication]',
            'max_drop_share = 0.10', '',
            '[sources.partner]', 'kind = "file"', 'path = "partner.csv"',
            '[sources.partner.columns]', 'nom = "Nom"', 'siret = "SIRET"',
            'adresse = "Adresse"', 'code_postal = "CP"', 'commune = "Ville"',
            'types = "Type"', '']
    if api_url:
        toml += ['[sources.emplois]', 'kind = "emplois"', f'base_url = "{api_url}"',
                 'departements = ["07"]', 'rate_per_minute = 6000', '']
    toml += (['[geocoder]', f'base_url = "{geocoder_url}"', 'retries = 1', 'timeout = 3',
              'rate_per_second = 50'] if geocoder_url else ['[geocoder]', 'enabled = false'])
    (folder / "sources.toml").write_text("\n".join(toml) + "\n" + extra, encoding="utf-8")
    return folder


def run(folder: Path, home: Path, **kw):
    return sync_direct(str(folder / "sources.toml"), home=str(home), **kw)


def exit_code(summary) -> int:
    """What `siae sync` exits with for this summary."""
    return summary.exit_code


def failed(summary, step: str, source: str | None = None) -> str:
    (s,) = [s for s in summary.steps if s.step == step and s.source == source]
    assert s.status == "failed", s
    return s.message


def features(home: Path) -> int:
    return len(json.loads((home / "publish" / "siae.geojson").read_text())["features"])


def rename_one(folder: Path) -> None:
    """The partner's file with its sixth structure renamed "Nouvelle" (an edit to stage)."""
    (folder / "partner.csv").write_text(partner_csv(ROWS[:5] + [("Nouvelle", *ROWS[5][1:])]),
                                        encoding="utf-8")


def published_names(home: Path) -> set[str]:
    """The names of the published GeoJSON's structures."""
    return {f["properties"]["nom"] for f in json.loads(
        (home / "publish" / "siae.geojson").read_text())["features"]}


def serve_emplois(httpserver, handler=None):
    route = httpserver.expect_request("/api/v1/siaes/")
    if handler is None:
        route.respond_with_json(PAGE)
    else:
        route.respond_with_handler(handler)


@pytest.fixture
def good(tmp_path, httpserver):
    """A warehouse after a good run of both sources, then the API broken by the test."""
    serve_emplois(httpserver)
    folder = make_folder(tmp_path, api_url=httpserver.url_for("/").rstrip("/"))
    home = tmp_path / "wh"
    assert exit_code(run(folder, home)) == 0
    assert features(home) == 8
    httpserver.clear()
    return folder, home, httpserver


def api_failure_kept_last_good(folder, home, expected_message):
    summary = run(folder, home)
    assert expected_message in failed(summary, "fetch", "emplois")
    assert "source 'emplois'" in failed(summary, "fetch", "emplois")
    assert exit_code(summary) == 2
    assert features(home) == 8  # its last good staging still merged and published
    return summary


# --- the network ---------------------------------------------------------------------------

@fault("http-timeout", "the API answers after the timeout",
       "the source fails naming itself and the URL; its last good data stay published; exit 2")
def test_http_timeout(good):
    folder, home, server = good
    serve_emplois(server, lambda request: (time.sleep(4), Response("{}"))[1])
    api_failure_kept_last_good(folder, home, "Timeout")


@fault("http-429-then-ok", "429 with Retry-After, then the page",
       "retried after the delay; the source is staged; exit 0")
def test_http_429_then_ok(good):
    folder, home, server = good
    server.expect_ordered_request("/api/v1/siaes/").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "1"})
    server.expect_ordered_request("/api/v1/siaes/").respond_with_json(PAGE)
    summary = run(folder, home)
    assert exit_code(summary) == 0 and not summary.failed_sources


@fault("http-5xx", "the API answers 503 to every try",
       "retried with backoff, then the source fails (HTTP 503); last good data kept; exit 2")
def test_http_503(good):
    folder, home, server = good
    serve_emplois(server, lambda request: Response("down", status=503))
    api_failure_kept_last_good(folder, home, "HTTP 503")


@fault("http-html-200", "a maintenance HTML page with status 200",
       "the source fails (did not return JSON); last good data kept; exit 2")
def test_http_html(good):
    folder, home, server = good
    serve_emplois(server, lambda request: Response("<html>Maintenance</html>",
                                                   content_type="text/html"))
    api_failure_kept_last_good(folder, home, "did not return JSON")


@fault("http-schema-drift", "the API's pages lose their 'results' list",
       "the source fails naming what is missing; last good data kept; exit 2")
def test_http_schema_drift(good):
    folder, home, server = good
    serve_emplois(server, lambda request: Response(json.dumps({"count": 2, "items": []}),
                                                   content_type="application/json"))
    api_failure_kept_last_good(folder, home, "no 'results' list")


@fault("http-missing-field", "records without a mapped field (raison_sociale)",
       "staging fails naming the field; last good staging kept; exit 2")
def test_http_missing_field(good):
    folder, home, server = good
    page = {**PAGE, "results": [{k: v for k, v in r.items() if k != "raison_sociale"}
                                for r in PAGE["results"]]}
    serve_emplois(server, lambda request: Response(json.dumps(page),
                                                   content_type="application/json"))
    summary = run(folder, home)
    assert "raison_sociale" in failed(summary, "stage", "emplois")
    assert exit_code(summary) == 2 and features(home) == 8


@fault("http-connection-refused", "nothing listens at the API's address",
       "the source fails (ConnectionError) naming the URL; last good data kept; exit 2")
def test_http_refused(good, tmp_path):
    folder, home, server = good
    toml = folder / "sources.toml"
    toml.write_text(toml.read_text().replace(server.url_for("/").rstrip("/"),
                                             "http://127.0.0.1:9"), encoding="utf-8")
    api_failure_kept_last_good(folder, home, "ConnectionError")


@fault("http-truncated", "a download shorter than its Content-Length",
       "the source fails (truncated); nothing staged from it; exit 2")
def test_http_truncated(tmp_path, httpserver):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer():
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 5000\r\n"
                     b"\r\nNom;SIRET\r\nA;1\r\n")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    folder = make_folder(tmp_path, extra=(
        '[sources.distant]\nkind = "http"\n'
        f'url = "http://127.0.0.1:{listener.getsockname()[1]}/liste.csv"\nretries = 0\n'
        '[sources.distant.columns]\nnom = "Nom"\nsiret = "SIRET"\n'))
    summary = run(folder, tmp_path / "wh")
    message = failed(summary, "fetch", "distant")
    assert "source 'distant'" in message
    assert "truncated" in message or "ChunkedEncodingError" in message \
        or "ContentDecodingError" in message or "ProtocolError" in message
    assert exit_code(summary) == 2 and features(tmp_path / "wh") == 6
    listener.close()


@fault("token-missing", "a token variable that is not set",
       "the source fails saying which variable; no request sent; exit 2")
def test_token_missing(tmp_path, httpserver, monkeypatch):
    monkeypatch.delenv("SIAE_TEST_TOKEN", raising=False)
    serve_emplois(httpserver)
    folder = make_folder(tmp_path, api_url=httpserver.url_for("/").rstrip("/"))
    toml = folder / "sources.toml"
    toml.write_text(toml.read_text().replace(
        'departements = ["07"]', 'departements = ["07"]\ntoken_env = "SIAE_TEST_TOKEN"'),
        encoding="utf-8")
    summary = run(folder, tmp_path / "wh")
    assert "SIAE_TEST_TOKEN is not set" in failed(summary, "fetch", "emplois")
    assert len(httpserver.log) == 0 and exit_code(summary) == 2


# --- files -------------------------------------------------------------------------------

@fault("file-missing", "the partner's file is not there",
       "the source fails (no file matches); siae check says so too; last good kept; exit 2")
def test_file_missing(tmp_path):
    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    (folder / "partner.csv").unlink()
    summary = run(folder, home)
    assert "no file matches" in failed(summary, "fetch", "partner")
    # the last good staging is still what is published
    assert exit_code(summary) == 2 and features(home) == 6
    check = subprocess.run([sys.executable, "-m", "flows.cli", "check", "--sources",
                            str(folder / "sources.toml")], capture_output=True, text=True,
                           cwd=ROOT)
    assert check.returncode == 1 and "path matches no file" in check.stderr


@fault("file-empty", "an empty partner file",
       "the source fails (empty payload); the last good staging stays; exit 2")
def test_file_empty(tmp_path):
    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    (folder / "partner.csv").write_text("", encoding="utf-8")
    summary = run(folder, home)
    assert "empty payload" in failed(summary, "stage", "partner")
    assert exit_code(summary) == 2 and features(home) == 6


@fault("file-too-few-rows", "a file with fewer usable rows than expect.min_rows",
       "the source fails saying how many and why rows were refused; last good kept")
def test_too_few_rows(tmp_path):
    folder = make_folder(tmp_path, extra="")
    toml = folder / "sources.toml"
    toml.write_text(toml.read_text().replace('types = "Type"', 'types = "Type"\n'
                                             '[sources.partner.expect]\nmin_rows = 4'))
    home = tmp_path / "wh"
    run(folder, home)
    (folder / "partner.csv").write_text(partner_csv(ROWS[:2]), encoding="utf-8")
    summary = run(folder, home)
    assert "2 usable rows, fewer than expect.min_rows = 4" in failed(summary, "stage",
                                                                      "partner")
    assert features(home) == 6


@fault("file-cut-off", "a file that lost most of its rows since the last good staging "
       "(a cut-off download, a partial export)",
       "the source fails naming both counts and expect.max_drop_share; last good kept; exit 2; "
       "raising the share stages it")
def test_cut_off_file(tmp_path):
    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    (folder / "partner.csv").write_text(partner_csv(ROWS[:2]), encoding="utf-8")
    summary = run(folder, home)
    message = failed(summary, "stage", "partner")
    assert "2 usable rows, 67% fewer than the last good staging's 6" in message
    assert "expect.max_drop_share = 50%" in message
    assert exit_code(summary) == 2 and features(home) == 6
    assert query(home, "SELECT rows_staged FROM ops.source_state") == [(6,)]
    # the team confirms the drop: the same file is staged (and meets the publication's guard)
    toml = folder / "sources.toml"
    toml.write_text(toml.read_text().replace('types = "Type"', 'types = "Type"\n'
                                             '[sources.partner.expect]\nmax_drop_share = 1'))
    summary = run(folder, home)
    assert [s.status for s in summary.steps if s.step == "stage"] == ["ok"]
    assert query(home, "SELECT rows_staged FROM ops.source_state") == [(2,)]


@fault("file-being-written", "the partner's export is rewritten while the fetch reads it",
       "the source fails (the file changed while it was read): nothing landed, last good kept, "
       "exit 2; the next run reads it whole")
def test_file_changed_while_read(tmp_path, monkeypatch):
    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    partner = folder / "partner.csv"
    partner.write_text(partner_csv(ROWS[:5]), encoding="utf-8")
    read_bytes = Path.read_bytes

    def read_then_written(self):  # the exporter appends a row once the fetch has read
        data = read_bytes(self)
        if self.name == "partner.csv":
            with self.open("a", encoding="utf-8") as fh:
                fh.write("Nouvelle;13002526500013;1 rue;07200;Aubenas;ACI\n")
        return data

    monkeypatch.setattr(Path, "read_bytes", read_then_written)
    summary = run(folder, home)
    monkeypatch.undo()
    assert "partner.csv changed while it was read" in failed(summary, "fetch", "partner")
    assert exit_code(summary) == 2 and features(home) == 6
    landed = {p.name for p in (home / "raw" / "partner").glob("*.csv")}
    assert len(landed) == 1  # only the first run's payload
    assert [s.status for s in run(folder, home).steps if s.step == "stage"] == ["ok"]
    assert features(home) == 6  # five rows and the new one


@fault("path-glob-dotdot", "a path glob with '..' that reaches an unrelated file",
       "that file is read as what it is: the source fails (no mapped column), nothing from "
       "it is published")
def test_glob_with_dotdot(tmp_path):
    folder = make_folder(tmp_path, extra=(
        '[sources.stray]\nkind = "file"\npath = "../*.txt"\n'
        '[sources.stray.columns]\nnom = "Nom"\n'))
    (tmp_path / "notes.txt").write_text("root:x:0:0:root:/root:/bin/bash\n")
    summary = run(folder, tmp_path / "wh")
    assert "none of the mapped columns" in failed(summary, "stage", "stray")
    assert "root:x" not in (tmp_path / "wh" / "publish" / "siae.geojson").read_text()


# --- the publication ------------------------------------------------------------------------

@fault("drop-guard", "a source suddenly loses most of its rows",
       "the publication is refused (drop over max_drop_share); the current one stays; "
       "siae status --check exits 1 and lists it; exit 1")
def test_drop_guard(tmp_path):
    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    before = (home / "publish").resolve()
    # a third of the rows: within the source's own expect.max_drop_share (50%)
    (folder / "partner.csv").write_text(partner_csv(ROWS[:4]), encoding="utf-8")
    summary = run(folder, home)
    assert "a drop over 10%" in failed(summary, "publish")
    assert exit_code(summary) == 1 and (home / "publish").resolve() == before
    assert summary.current_release["features"] == 6
    problems = pipeline_problems(home)
    assert problems and problems[0]["source"] == "(publication)"
    status = subprocess.run([sys.executable, "-m", "flows.cli", "status", "--check", "--home",
                             str(home), "--sources", str(folder / "sources.toml")],
                            capture_output=True, text=True, cwd=ROOT)
    assert status.returncode == 1 and "(publication)" in status.stdout


@fault("disk-full", "the disk fills while the release is written (RLIMIT_FSIZE)",
       "the publication fails naming the file; no half-written folder stays; the current "
       "release stays")
def test_disk_full(tmp_path):
    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    before = (home / "publish").resolve()
    rename_one(folder)
    # the limit set once the warehouse is written, so that the release's files meet it
    script = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              "from flows.consolidation import merge_geocode_locate, _publish_step; "
              "from flows.run_report import Run; "
              "from transforms.spec import load_spec; from flows.ingest import ingest, prepare;"
              f"spec = load_spec({str(folder / 'sources.toml')!r}); "
              f"run = Run(__import__('pathlib').Path({str(home)!r}), spec, direct=True); "
              "c = prepare(run); [ingest(run, s, c, False) for s in spec.selected()]; "
              "merge_geocode_locate(run); "
              "resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000)); "
              "_publish_step(run, False, 6); "
              "print([x.message for x in run.summary.steps if x.step == 'publish'])")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert "could not write" in out.stdout and "releases" in out.stdout, out.stdout + out.stderr
    assert (home / "publish").resolve() == before
    assert not list((home / "releases").glob(".*.building"))


@fault("read-only-releases", "the releases folder cannot be written (even by root)",
       "the publication fails naming the path; the previous publication is untouched")
def test_read_only_releases(tmp_path):
    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    current = (home / "publish").resolve()
    (home / "publish").unlink()
    # /sys refuses new files to everyone: a folder that cannot be written
    (home / "releases").rename(tmp_path / "kept")
    (home / "releases").symlink_to("/sys/kernel")
    summary = run(folder, home)
    assert "could not write" in failed(summary, "publish")
    assert exit_code(summary) == 1
    assert current.name in [p.name for p in (tmp_path / "kept").iterdir()]


@fault("stale-building", "a half-built release left by a killed publication",
       "cleaned by the next publication")
def test_stale_building(tmp_path):
    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    (home / "releases" / ".20260101T000000-x.building").mkdir()
    rename_one(folder)
    run(folder, home)
    assert not list((home / "releases").glob(".*.building"))


# --- the warehouse ---------------------------------------------------------------------------

@fault("warehouse-locked", "an analyst's session holds the warehouse file",
       "the run waits SIAE_DB_LOCK_WAIT, then fails with one line naming the lock; exit 1; "
       "nothing changed")
def test_warehouse_locked(tmp_path):
    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    holder = subprocess.Popen([sys.executable, "-c",
                               "import duckdb, time; c = duckdb.connect("
                               f"{str(home / 'siae.duckdb')!r}, read_only=True); "
                               "print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        out = subprocess.run([sys.executable, "-m", "flows.cli", "sync", "--no-prefect",
                              "--sources", str(folder / "sources.toml"), "--home", str(home)],
                             capture_output=True, text=True, cwd=ROOT, timeout=120,
                             env={**os.environ, "SIAE_DB_LOCK_WAIT": "2"})
    finally:
        holder.kill()
    assert out.returncode == 1
    assert "locked by another process" in out.stderr and "Traceback" not in out.stderr


@fault("warehouse-corrupt", "the warehouse file is garbage",
       "sync stops with one line saying so and pointing to siae rebuild; rebuild restores "
       "the same publication")
def test_warehouse_corrupt(tmp_path):
    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    geojson = (home / "publish" / "siae.geojson").read_bytes()
    (home / "siae.duckdb").write_bytes(b"this is not a database" * 1000)
    out = subprocess.run([sys.executable, "-m", "flows.cli", "sync", "--no-prefect",
                          "--sources", str(folder / "sources.toml"), "--home", str(home)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 1 and "siae rebuild" in out.stderr
    assert "Traceback" not in out.stderr
    rebuilt = subprocess.run([sys.executable, "-m", "flows.cli", "rebuild", "--sources",
                              str(folder / "sources.toml"), "--home", str(home)],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (home / "publish" / "siae.geojson").read_bytes() == geojson


@fault("warehouse-deleted", "the warehouse file is deleted, releases too",
       "siae rebuild gives a byte-identical GeoJSON from the raw payloads alone")
def test_rebuild_after_deletion(tmp_path):
    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    geojson = (home / "publish" / "siae.geojson").read_bytes()
    assert lose_and_rebuild(folder, home) == geojson


def lose_and_rebuild(folder: Path, home: Path) -> bytes:
    """Delete the warehouse file and every release, run `siae rebuild`; the GeoJSON it
    published."""
    import shutil

    from flows.rebuild import rebuild
    from transforms.spec import load_spec

    (home / "siae.duckdb").unlink()
    shutil.rmtree(home / "releases")
    (home / "publish").unlink()
    summary, _ = rebuild(load_spec(folder / "sources.toml"), home)
    assert summary.published
    return (home / "publish" / "siae.geojson").read_bytes()


@fault("rebuild-after-refused-fetch", "the warehouse is lost after a fetch was refused "
       "(a cut-off file, the newest payload landed)",
       "siae rebuild stages the fetch the last good staging was made from: the same GeoJSON")
def test_rebuild_skips_a_refused_fetch(tmp_path):
    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    geojson = (home / "publish" / "siae.geojson").read_bytes()
    (folder / "partner.csv").write_text(partner_csv(ROWS[:2]), encoding="utf-8")
    failed(run(folder, home), "stage", "partner")  # landed in raw/, refused
    assert lose_and_rebuild(folder, home) == geojson


@fault("two-runs", "two runs at once on one warehouse",
       "the second waits for the consolidation lock (SIAE_CONSOLIDATION_WAIT), then gives up "
       "with a message; nothing half-done")
def test_two_runs_at_once(tmp_path, monkeypatch):
    from warehouse.lock import consolidation_lock

    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    monkeypatch.setenv("SIAE_CONSOLIDATION_WAIT", "1")
    holder = subprocess.Popen([sys.executable, "-c",
                               "import time; from pathlib import Path; "
                               "from warehouse.lock import consolidation_lock\n"
                               f"with consolidation_lock(Path({str(home)!r})):\n"
                               "    print('held', flush=True); time.sleep(30)"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        summary = run(folder, home)
    finally:
        holder.kill()
    assert "another consolidation is running" in failed(summary, "consolidate")
    assert exit_code(summary) == 1
    with consolidation_lock(home, 5):  # released with the holder
        pass


def hold_lock(home: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the consolidation lock for `seconds` (a consolidation)."""
    holder = subprocess.Popen([sys.executable, "-c",
                               "import time; from pathlib import Path; "
                               "from warehouse.lock import consolidation_lock\n"
                               f"with consolidation_lock(Path({str(home)!r})):\n"
                               f"    print('held', flush=True); time.sleep({seconds})"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout.readline().strip() == "held"
    return holder


@fault("ingest-during-consolidation", "a source's own ingest while a consolidation runs",
       "the staging waits for the consolidation to end (SIAE_CONSOLIDATION_WAIT), so that "
       "the consolidation never merges one staging and copies another; then it is staged")
def test_ingest_waits_for_a_running_consolidation(tmp_path, monkeypatch):
    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    rename_one(folder)
    monkeypatch.setenv("SIAE_CONSOLIDATION_WAIT", "60")
    holder = hold_lock(home, 2)
    try:
        summary = run(folder, home)
    finally:
        holder.kill()
    (stage,) = [s for s in summary.steps if s.step == "stage"]
    assert stage.status == "ok" and stage.seconds >= 1.0  # it waited for the lock
    assert exit_code(summary) == 0 and summary.published
    assert "Nouvelle" in published_names(home)


@fault("ingest-gives-up", "a source's ingest while a consolidation runs longer than "
       "SIAE_CONSOLIDATION_WAIT",
       "the source is not staged (its payload is landed), with a message naming it and the "
       "consolidation; its last good staging stays and the next run stages it")
def test_ingest_gives_up_waiting_for_a_consolidation(tmp_path, monkeypatch):
    from flows.ingest import ingest, prepare
    from flows.run_report import Run
    from transforms.spec import load_spec
    from warehouse.db import connect

    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    rename_one(folder)
    monkeypatch.setenv("SIAE_CONSOLIDATION_WAIT", "1")
    spec = load_spec(folder / "sources.toml")
    one = Run(home, spec, direct=True)  # `siae ingest partner`, without its consolidation
    holder = hold_lock(home, 30)
    try:
        assert ingest(one, spec.sources["partner"], prepare(one), force=False) is False
    finally:
        holder.kill()
    message = failed(one.finish(), "stage", "partner")
    assert "source 'partner': not staged" in message and "another consolidation" in message
    with connect(home / "siae.duckdb", read_only=True) as con:
        names = {r[0] for r in con.execute("SELECT nom FROM staging.partner").fetchall()}
    assert "Nouvelle" not in names and "Horizon Bâtiment" in names
    summary = run(folder, home)  # the next run stages it
    assert exit_code(summary) == 0 and "Nouvelle" in published_names(home)


@fault("staged-meanwhile", "a source is staged again (its own scheduled ingest) while a "
       "consolidation merges it",
       "that consolidation writes nothing (core.records would not be the records merged) and "
       "says which source changed; the publication stays; the next run consolidates it")
def test_staged_during_the_merge(tmp_path, monkeypatch):
    from flows import consolidation
    from warehouse.db import connect

    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    published = (home / "publish" / "siae.geojson").read_bytes()
    rename_one(folder)
    real_score = consolidation.score_with_cache

    def score_then_ingest(*args, **kwargs):
        scored = real_score(*args, **kwargs)
        with connect(home / "siae.duckdb") as con:  # what another process's ingest writes
            con.execute("UPDATE staging.partner SET nom = 'Atelier Renommé' WHERE "
                        "source_id = (SELECT min(source_id) FROM staging.partner)")
            con.execute("UPDATE ops.source_state SET run_id = 'the-other-ingest'")
        return scored

    monkeypatch.setattr(consolidation, "score_with_cache", score_then_ingest)
    summary = run(folder, home)
    assert "the staging of partner changed during this consolidation" in failed(
        summary, "locate")
    assert exit_code(summary) == 1
    assert (home / "publish" / "siae.geojson").read_bytes() == published
    monkeypatch.setattr(consolidation, "score_with_cache", real_score)
    again = run(folder, home)
    assert exit_code(again) == 0 and again.published
    names = published_names(home)
    assert "Atelier Renommé" in names and "Nouvelle" in names  # the other ingest's staging


@fault("bad-judgements", "the analysts' judgements file has a line that cannot be used",
       "the consolidation fails naming the file and line; the publication stays; an alert")
def test_bad_judgements(tmp_path):
    folder = make_folder(tmp_path)
    home = tmp_path / "wh"
    run(folder, home)
    (folder / "judgements.csv").write_text(
        "left_source,left_source_id,right_source,right_source_id,decision\n"
        "partner,a,partner,b,peut-être\n", encoding="utf-8")
    summary = run(folder, home)
    assert "line 2" in failed(summary, "merge") and exit_code(summary) == 1
    assert pipeline_problems(home)[0]["source"] == "(consolidation)"


# --- the geocoder ------------------------------------------------------------------------------

@fault("geocoder-down", "the BAN answers 503 to every batch",
       "the geocoding step fails, cached answers are used, the rest is published; exit 2; "
       "the next run asks again")
def test_geocoder_down(tmp_path, httpserver):
    httpserver.expect_request("/geocodage/search/csv/").respond_with_data("down", status=503)
    folder = make_folder(tmp_path, geocoder_url=httpserver.url_for("/geocodage"))
    home = tmp_path / "wh"
    summary = run(folder, home)
    assert "HTTP 503" in failed(summary, "geocode")
    assert summary.published and features(home) == 6  # the communes' centres
    assert summary.failed_steps == ["geocode"] and exit_code(summary) == 2
    assert query(home, "SELECT inputs FROM ops.consolidations")[0][0] == "incomplete"


@fault("geocoder-html", "the BAN answers an HTML page",
       "the geocoding step fails naming it; the publication goes on with the other points; "
       "exit 2")
def test_geocoder_html(tmp_path, httpserver):
    httpserver.expect_request("/geocodage/search/csv/").respond_with_data(
        "<html>oops</html>", content_type="text/html")
    folder = make_folder(tmp_path, geocoder_url=httpserver.url_for("/geocodage"))
    summary = run(folder, tmp_path / "wh")
    assert "geocoder" in failed(summary, "geocode") and summary.published
    assert exit_code(summary) == 2


# --- killed runs -----------------------------------------------------------------------------

@pytest.mark.parametrize("step", ["fetch", "stage", "merge", "geocode", "locate", "publish"])
def test_kill_at_each_step_then_rerun(tmp_path, httpserver, step):
    from tests.helpers import ban_handler

    httpserver.expect_request("/geocodage/search/csv/").respond_with_handler(ban_handler())
    folder = make_folder(tmp_path, geocoder_url=httpserver.url_for("/geocodage"))
    clean_home, home = tmp_path / "clean", tmp_path / "wh"
    run(folder, clean_home)
    killed = subprocess.run([sys.executable, "-m", "tests.faults.runner",
                             str(folder / "sources.toml"), str(home), step],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    summary = run(folder, home)
    assert exit_code(summary) == 0, [s for s in summary.steps if s.status == "failed"]
    assert (home / "publish" / "siae.geojson").read_bytes() == \
        (clean_home / "publish" / "siae.geojson").read_bytes()
    assert not list((home / "releases").glob(".*.building"))
    runs = query(home, "SELECT status FROM ops.runs WHERE step = 'run' ORDER BY started_at")
    assert runs == [("interrupted",), ("ok",)]


for _step in ("fetch", "stage", "merge", "geocode", "locate", "publish"):
    FAULTS.append((f"kill-9-{_step}", f"kill -9 during {_step}",
                   "nothing half-written is used: the next run ends ok, publishes the same "
                   "GeoJSON as a clean run, marks the killed run interrupted"))


@fault("sigterm-sync", "SIGTERM to siae sync while it runs",
       "the command stops, its temporary Prefect server stops with it (no orphan)")
def test_sigterm_stops_the_temporary_server(tmp_path):
    folder = make_folder(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "sync", "--sources",
                             str(folder / "sources.toml"), "--home", str(tmp_path / "wh")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"})
    deadline = time.monotonic() + 120
    servers: list[int] = []
    while time.monotonic() < deadline and not servers:
        out = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "uvicorn"],
                             capture_output=True, text=True)
        servers = [int(p) for p in out.stdout.split()]
        time.sleep(0.5)
    assert servers, "no temporary server started"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    time.sleep(2)
    for pid in servers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@fault("kill-9-sync", "kill -9 of siae sync",
       "its temporary Prefect server dies with it (PR_SET_PDEATHSIG): no orphan")
def test_kill_9_leaves_no_orphan_server(tmp_path):
    folder = make_folder(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "sync", "--sources",
                             str(folder / "sources.toml"), "--home", str(tmp_path / "wh")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"})
    deadline = time.monotonic() + 120
    servers: list[int] = []
    while time.monotonic() < deadline and not servers:
        out = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "uvicorn"],
                             capture_output=True, text=True)
        servers = [int(p) for p in out.stdout.split()]
        time.sleep(0.5)
    assert servers
    proc.kill()
    proc.wait()
    time.sleep(3)
    for pid in servers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_matrix_has_at_least_25_faults():
    assert len(FAULTS) >= 25 and len({f[0] for f in FAULTS}) == len(FAULTS)

