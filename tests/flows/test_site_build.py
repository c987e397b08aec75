"""The mini-site's build without a browser: a rebuild renders only what changed and shares the
rest with the previous site (hard links), and what it shares is what a full build makes."""

from __future__ import annotations

import filecmp
import gzip
import json
import os

import brotli
import pytest

from flows import site as site_module
from flows.publish import publish_release
from flows.site import build_site
from tests.helpers import load, structure
from transforms.site import phone_display
from transforms.spec import SiteSettings
from warehouse.db import connect
from warehouse.paths import WarehousePaths
from warehouse.reference import ensure_communes


def _rows(names: dict[int, str] | None = None, phones: dict[int, str] | None = None
          ) -> list[dict]:
    names, phones = names or {}, phones or {}
    return [structure(i, nom=names.get(i, f"Atelier {i}"), departement="07", region="84",
                      commune="Aubenas", code_postal="07200", code_insee="07019",
                      telephone=phones.get(i, "+33465711234")) for i in range(12)]


def _publish(home, rows) -> None:
    load(home, rows)
    publish_release(home)


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "wh"
    with connect(WarehousePaths(home).ensure().database) as con:
        ensure_communes(con)
    _publish(home, _rows())
    return home


def _page(home, n: int) -> str:
    return (home / "site" / "structures" / f"siae-{n:04d}.html").read_text(encoding="utf-8")


def test_a_rebuild_renders_only_the_changed_structure_and_links_the_rest(home, tmp_path):
    first = build_site(home)
    assert first["reused"] == 0
    old_site = (home / "site").resolve()
    _publish(home, _rows({3: "Recyclerie du Vivarais"}))
    second = build_site(home)
    site = (home / "site").resolve()
    assert site != old_site and old_site.exists()  # the previous site is kept ([site] keep)
    assert "Recyclerie du Vivarais" in _page(home, 3) and "Atelier 3" not in _page(home, 3)
    # the 11 other pages are the same files as before, not copies
    same = [i for i in range(12) if (site / "structures" / f"siae-{i:04d}.html").stat().st_ino
            == (old_site / "structures" / f"siae-{i:04d}.html").stat().st_ino]
    assert same == [i for i in range(12) if i != 3]
    # unchanged data files (the communes, the outlines) are shared with their compressed copies
    for name in ("communes.json", "communes.json.br", "outline.geojson.gz"):
        assert (site / "data" / name).samefile(old_site / "data" / name)
    assert not (site / "data" / "index.json").samefile(old_site / "data" / "index.json")
    assert second["reused"] >= 11 + 3

    # a build from nothing gives the same files, byte for byte
    for manifest in (home / "sites").glob("*.files.json"):
        manifest.unlink()
    fresh = tmp_path / "fresh"
    assert build_site(home, out=fresh)["reused"] == 0
    compared = filecmp.dircmp(site, fresh)
    assert _differences(compared) == []


def test_downloads_the_release_left_unchanged_are_linked_with_their_compressed_copies(home):
    build_site(home)
    names = ("siae.geojson", "siae.geojson.br", "siae.csv.gz", "datainclusion/structures.json.br")
    before = {n: (home / "site" / "donnees" / n).stat().st_ino for n in names}
    build_site(home)  # the same release again: every download is the previous site's file
    assert {n: (home / "site" / "donnees" / n).stat().st_ino for n in names} == before

    _publish(home, _rows({5: "Ressourcerie des Boutières"}))
    build_site(home)
    newest = (home / "site").resolve()
    assert (newest / "donnees" / "siae.geojson.br").stat().st_ino != before["siae.geojson.br"]
    geojson = (newest / "donnees" / "siae.geojson").read_bytes()
    assert "Ressourcerie des Boutières".encode() in geojson
    assert geojson == (home / "publish" / "siae.geojson").read_bytes()
    assert brotli.decompress((newest / "donnees" / "siae.geojson.br").read_bytes()) == geojson
    assert gzip.decompress((newest / "donnees" / "siae.geojson.gz").read_bytes()) == geojson


def test_the_downloads_are_read_by_the_process_that_compresses_them(home, monkeypatch):
    # a national release's downloads are 600 MB: the flow's process links them into the site
    # and leaves the reading to the forked process that compresses them
    from pathlib import Path

    monkeypatch.setattr("flows.site.ASIDE_FROM", 0)  # a process aside even for small files
    read_here, read_bytes = [], Path.read_bytes
    pid = os.getpid()

    def recording(path):
        if os.getpid() == pid and path.is_relative_to(home / "releases"):
            read_here.append(path.name)
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", recording)
    build_site(home)
    # (the small metadata files, which the datapackage gives no hash of, are read to hash)
    large = {"siae.geojson", "siae.csv", "structures.json", "structures.csv"}
    assert [n for n in read_here if n in large] == []
    site_csv = home / "site" / "donnees" / "siae.csv"
    assert site_csv.stat().st_ino == (home / "publish" / "siae.csv").stat().st_ino
    assert gzip.decompress(site_csv.with_name("siae.csv.gz").read_bytes()) == \
        site_csv.read_bytes()


def _differences(cmp: filecmp.dircmp) -> list[str]:
    out = cmp.left_only + cmp.right_only + cmp.funny_files
    _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
    out += mismatch + errors
    for sub in cmp.subdirs.values():
        out += _differences(sub)
    return out


def test_pages_rendered_by_several_processes_are_those_one_process_renders(home, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setattr("flows.site.PARALLEL_FROM", 0)  # 12 structures: normally one process
    one = build_site(home, SiteSettings(workers=1), out=tmp_path / "one")
    two = build_site(home, SiteSettings(workers=2), out=tmp_path / "two")
    assert (one["workers"], two["workers"]) == (1, 2)
    assert one["rendered"] == two["rendered"] == 12 + 1 + 1  # structures, région, département
    assert _differences(filecmp.dircmp(tmp_path / "one", tmp_path / "two")) == []


def test_a_first_build_reads_the_provenance_of_each_page_makers_share_only(home, tmp_path,
                                                                          monkeypatch):
    # held at once, a national site's provenance was 1.9 GB in the flow's process
    rows = _rows()
    rows[4]["provenance"] = json.dumps({"telephone": "asp"})
    _publish(home, rows)
    reads = tmp_path / "reads.txt"
    real = site_module.publications.value_sources

    def value_sources(con, ids=None):
        with reads.open("a") as fh:  # from the forked page makers too
            fh.write(f"{os.getpid()} {'all' if ids is None else len(set(ids))}\n")
        return real(con, ids)

    monkeypatch.setattr(site_module.publications, "value_sources", value_sources)
    monkeypatch.setattr(site_module, "PARALLEL_FROM", 0)
    built = build_site(home, SiteSettings(workers=2))
    counts = [line.split()[1] for line in reads.read_text().splitlines()]
    assert built["workers"] == 2 and "all" not in counts
    # eight shares of twelve structures, each read by the process that renders it
    assert max(int(c) for c in counts) == 2 and sum(int(c) for c in counts) == 12
    assert len({line.split()[0] for line in reads.read_text().splitlines()}) > 1
    assert "asp" in _page(home, 4)


def test_a_page_maker_alone_reads_the_provenance_in_batches(home, tmp_path, monkeypatch):
    # one page maker (one core, or too little memory to fork) read a national site's
    # provenance in one query, which ran out of DuckDB's memory limit at 1M
    rows = _rows()
    rows[4]["provenance"] = json.dumps({"telephone": "asp"})
    _publish(home, rows)
    reads = []
    real = site_module.publications.value_sources

    def value_sources(con, ids=None):
        reads.append(None if ids is None else len(set(ids)))
        return real(con, ids)

    monkeypatch.setattr(site_module.publications, "value_sources", value_sources)
    monkeypatch.setattr(site_module, "PROVENANCE_BATCH", 5)
    built = build_site(home, SiteSettings(workers=1))
    assert built["workers"] == 1
    assert reads == [0, 5, 5, 2]  # none read beforehand on a first build, then batches
    assert "asp" in _page(home, 4)


def test_forked_page_makers_read_the_warehouse_the_run_holds_open(home, monkeypatch):
    # a run's steps share one open instance (shared_instance): the page makers forked from
    # it must open the file themselves, not meet the instance they inherited
    from warehouse.db import shared_instance

    rows = _rows()
    rows[4]["provenance"] = json.dumps({"telephone": "asp"})
    _publish(home, rows)
    monkeypatch.setattr(site_module, "PARALLEL_FROM", 0)
    with shared_instance():
        with connect(WarehousePaths(home).database) as con:
            con.execute("SELECT count(*) FROM core.structures").fetchall()
        built = build_site(home, SiteSettings(workers=2))
        with connect(WarehousePaths(home).database) as con:  # and the run goes on
            assert con.execute("SELECT count(*) FROM core.structures").fetchall() == [(12,)]
    assert built["workers"] == 2 and "asp" in _page(home, 4)


def test_a_failing_page_fails_the_build_and_keeps_the_site(home, monkeypatch):
    build_site(home)
    before = (home / "site").resolve()
    _publish(home, _rows({2: "Envol"}))
    monkeypatch.setattr("flows.site.PARALLEL_FROM", 0)
    monkeypatch.setattr("flows.site.phone_display", lambda _: 1 / 0)  # inherited by the fork
    with pytest.raises(ZeroDivisionError):
        build_site(home, SiteSettings(workers=2))
    assert (home / "site").resolve() == before and "Atelier 2" in _page(home, 2)
    assert not list((home / "sites").glob(".*.building"))


def test_structure_pages_carry_no_release_date_but_the_home_page_does(home):
    build_site(home)
    created = json.loads((home / "publish" / "datapackage.json").read_text())["created"]
    assert f"Données du <time datetime=\"{created}\">" in (
        home / "site" / "index.html").read_text(encoding="utf-8")
    assert "Données du" not in _page(home, 0)
    for area in ("regions/84.html", "departements/07.html"):
        assert "Données du" not in (home / "site" / area).read_text(encoding="utf-8")


AREAS = ("regions/84.html", "departements/07.html")


def test_an_area_page_is_kept_when_what_it_lists_is_unchanged(home):
    build_site(home)
    old_site = (home / "site").resolve()
    _publish(home, _rows(phones={4: "+33475000000"}))  # a phone: on the structure's page only
    build_site(home)
    site = (home / "site").resolve()
    assert "04 75 00 00 00" in _page(home, 4)
    for area in AREAS:
        assert (site / area).samefile(old_site / area)


def test_an_area_page_is_rendered_again_when_a_name_it_lists_changes(home):
    build_site(home)
    old_site = (home / "site").resolve()
    _publish(home, _rows({7: "Jardins du Coiron"}))
    build_site(home)
    site = (home / "site").resolve()
    for area in AREAS:
        assert not (site / area).samefile(old_site / area)
        assert "Jardins du Coiron" in (site / area).read_text(encoding="utf-8")


def test_a_new_title_or_report_address_renders_every_page_again(home):
    build_site(home)
    _publish(home, _rows({5: "Envol"}))
    result = build_site(home, SiteSettings(title="Les SIAE de l'Ardèche",
                                           report_url="https://example.org/signaler?id={id}"))
    site = (home / "site").resolve()
    assert not any(p.stat().st_nlink > 1 for p in (site / "structures").iterdir())
    assert result["reused"] < 12
    assert "https://example.org/signaler?id=siae-0000" in _page(home, 0)


def test_older_sites_leave_with_their_manifests(home):
    for n in range(4):
        _publish(home, _rows({0: f"Atelier numéro {n}"}))
        build_site(home, SiteSettings(keep=1))
    sites = home / "sites"
    folders = sorted(p.name for p in sites.iterdir() if p.is_dir())
    manifests = sorted(p.name.removesuffix(".files.json") for p in sites.glob("*.files.json"))
    assert len(folders) == 2 and manifests == folders
    assert "Atelier numéro 3" in _page(home, 0)


def test_a_failing_build_still_keeps_the_site_in_use(home, monkeypatch):
    # the sites beyond [site] keep go while the pages are made, never the one in use
    for n in range(2):
        _publish(home, _rows({0: f"Atelier numéro {n}"}))
        build_site(home, SiteSettings(keep=1))
    in_use = (home / "site").resolve()
    _publish(home, _rows({0: "Envol"}))
    monkeypatch.setattr("flows.site.phone_display", lambda _: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        build_site(home, SiteSettings(keep=1))
    assert (home / "site").resolve() == in_use and "Atelier numéro 1" in _page(home, 0)
    assert [p for p in (home / "sites").iterdir() if p.is_dir()] == [in_use]


def test_a_page_is_rendered_again_when_only_the_source_of_a_value_changes(home):
    def rows(source: str, names: dict[int, str] | None = None) -> list[dict]:
        out = _rows(names)
        out[4]["provenance"] = json.dumps({"telephone": source})
        return out

    _publish(home, rows("asp"))
    build_site(home)
    old_site = (home / "site").resolve()
    # structure 4's published row is the same, its provenance is not (0 is renamed, so that
    # a new release and a new site are made)
    _publish(home, rows("reseau", {0: "Envol"}))
    build_site(home)
    site = (home / "site").resolve()
    assert site != old_site
    assert "reseau" in _page(home, 4) and "asp" not in _page(home, 4)
    linked = [i for i in range(12) if (site / "structures" / f"siae-{i:04d}.html").samefile(
        old_site / "structures" / f"siae-{i:04d}.html")]
    assert linked == [i for i in range(12) if i not in (0, 4)]


def test_a_missing_previous_file_is_rendered_again(home):
    build_site(home)
    old_site = (home / "site").resolve()
    (old_site / "structures" / "siae-0007.html").unlink()
    _publish(home, _rows({1: "Envol"}))
    build_site(home)
    assert "Atelier 7" in _page(home, 7)


@pytest.mark.parametrize("number", [
    "+33123456789", "+33465711234", "+33612345678", "+33712345678", "+33912345678",
    "+33800123456", "+33899123456", "+262262123456", "+590590123456", "+596696123456",
    "+508508123456", "+3312345678", "+441632960000", "pas un numéro"])
def test_a_phone_is_shown_as_phonenumbers_formats_it(number):
    import phonenumbers

    try:
        expected = phonenumbers.format_number(phonenumbers.parse(number, None),
                                              phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        expected = number
    assert phone_display(number) == expected


def test_the_reference_files_are_compressed_once_for_every_home(tmp_path, monkeypatch):
    import gzip

    import brotli

    from flows import site

    monkeypatch.setenv("SIAE_CACHE", str(tmp_path / "cache"))
    data = json.dumps([["Aubenas", "07019"]] * 5000).encode()
    gz, br = site._kept_compressed(data)
    assert gzip.decompress(gz) == data and brotli.decompress(br) == data

    def compress_again(_):
        raise AssertionError("compressed again")

    monkeypatch.setattr(site, "_compress", compress_again)
    site._COMPRESSED.clear()
    assert site._kept_compressed(data) == (gz, br)  # read from the cache folder
    with pytest.raises(AssertionError):
        site._kept_compressed(data + b" ")  # other bytes are compressed anew


@pytest.mark.parametrize("doc", [
    pytest.param([["siae-1", "Élan </script><!--", ["ACI"], 44.5, 4.1]], id="markers"),
    pytest.param({"@type": "Organization", "name": "A & B", "date": __import__(
        "datetime").date(2024, 1, 2), "n": 3}, id="json-ld"),
])
def test_json_in_a_page_is_compact_and_cannot_end_its_script_element(doc):
    from transforms.site import script_json
    text = script_json(doc)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == json.loads(json.dumps(doc, default=str))
    assert ", " not in text.replace("A \\u0026 B", "") and ": " not in text


def test_numpy_values_in_a_page_are_written_as_their_python_values():
    np = pytest.importorskip("numpy")
    from transforms.site import script_json
    assert script_json([np.float64(44.5), np.array(["ACI", "EI"])]) == \
        script_json([44.5, ["ACI", "EI"]]) == '[44.5,["ACI","EI"]]'


def test_downloads_compressed_by_a_process_aside_are_those_compressed_with_the_pages(
        home, tmp_path, monkeypatch):
    """The release's files in donnees/ (most of the compressing) are written by a process
    of their own while the pages are made, and by the page makers once they start: the same
    files, .gz and .br included."""
    import flows.site as site

    monkeypatch.setattr(site, "ASIDE_FROM", 1 << 40)  # never aside
    inline = build_site(home, out=tmp_path / "inline")
    started = []
    real = site._aside

    def counted(folder, files):
        process = real(folder, files)
        started.append(process is not None)
        return process

    monkeypatch.setattr(site, "ASIDE_FROM", 0)
    monkeypatch.setattr(site, "_aside", counted)
    monkeypatch.setattr(site, "SPLIT_FROM", 0)  # each .gz and .br a job of its own
    monkeypatch.setattr(site, "PARALLEL_FROM", 0)  # the page makers share them
    aside = build_site(home, out=tmp_path / "aside")
    assert started == [site.can_fork()]
    assert inline["structures"] == aside["structures"]
    assert (tmp_path / "aside" / "donnees" / "siae.geojson.br").exists()
    assert _differences(filecmp.dircmp(tmp_path / "inline", tmp_path / "aside")) == []


def test_a_failing_process_aside_fails_the_build_and_keeps_the_site(home, monkeypatch):
    import flows.site as site

    if not site.can_fork():
        pytest.skip("this platform does not fork")
    build_site(home)
    before = (home / "site").resolve()
    _publish(home, _rows({2: "Envol"}))
    monkeypatch.setattr(site, "ASIDE_FROM", 0)

    def broken(shared):
        os._exit(3)  # a process killed in its work (out of memory, a full disk)

    monkeypatch.setattr(site, "_compress_all", broken)
    with pytest.raises(site.SiteError, match="exit code 3"):
        build_site(home)
    assert (home / "site").resolve() == before and "Atelier 2" in _page(home, 2)
    assert not list((home / "sites").glob(".*.building"))


def test_jobs_shared_by_the_process_aside_and_the_page_makers_run_once_each(tmp_path):
    import functools
    import multiprocessing

    import flows.site as site
    from flows.forked import run_forked

    if not site.can_fork():
        pytest.skip("this platform does not fork")
    log = tmp_path / "log"

    def job(i: int) -> None:
        with open(log, "a") as f:  # appends of a line are atomic
            f.write(f"{i}\n")

    shared = site._Shared([functools.partial(job, i) for i in range(40)])
    aside = multiprocessing.get_context("fork").Process(target=site._compress_all,
                                                        args=(shared,))
    aside.start()
    run_forked(shared.for_pages(), 2)
    aside.join()
    assert aside.exitcode == 0
    assert sorted(int(line) for line in log.read_text().split()) == list(range(40))
