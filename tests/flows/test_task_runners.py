"""The Dask path: the demo's sync on a `distributed.LocalCluster` of 2 workers publishes what
the default runner publishes, and an unreachable cluster fails the merge, not the warehouse."""

from pathlib import Path

import pytest

from flows.sync import sync
from tests.helpers import query, run_summary

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as local:
        yield local


def with_runtime(demo: Path, runtime: str) -> str:
    path = demo / "sources.toml"
    path.write_text(path.read_text(encoding="utf-8") + f"\n[runtime]\n{runtime}\n",
                    encoding="utf-8")
    return str(path)


def test_a_dask_cluster_publishes_what_the_default_runner_does(demo, tmp_path, cluster):
    from distributed import Client, get_task_stream

    default = run_summary(sync, str(demo / "sources.toml"), home=str(tmp_path / "default"))
    sources = with_runtime(demo, f'task_runner = "dask"\ndask_address = '
                                 f'"{cluster.scheduler_address}"\npartitions = 4')
    with Client(cluster) as client, get_task_stream(client) as stream:
        on_dask = run_summary(sync, sources, home=str(tmp_path / "dask"))
    assert default.exit_code == on_dask.exit_code == 0
    # the matcher's tasks ran on the cluster's workers, one per partition
    assert len({t["worker"] for t in stream.data}) >= 1 and len(stream.data) == 4
    merge = [s for s in on_dask.steps if s.step == "merge"][0]
    assert merge.details["partitions"] == 4
    assert [s for s in default.steps if s.step == "merge"][0].details["partitions"] == 1
    # the same places, IDs, pairs and published bytes
    for table in ("core.match_candidates", "core.links", "core.structures"):
        sql = f"SELECT * FROM {table} ORDER BY ALL"
        assert query(tmp_path / "dask", sql) == query(tmp_path / "default", sql)
    assert (tmp_path / "dask" / "publish" / "siae.geojson").read_bytes() == \
        (tmp_path / "default" / "publish" / "siae.geojson").read_bytes()


def test_an_unreachable_cluster_fails_the_merge_and_keeps_the_publication(demo, tmp_path):
    import dask
    import duckdb

    home = tmp_path / "wh"
    first = run_summary(sync, str(demo / "sources.toml"), home=str(home))
    before = (home / "publish" / "siae.geojson").read_bytes()
    sources = with_runtime(demo, 'task_runner = "dask"\ndask_address = "tcp://127.0.0.1:9"')
    # without the matcher's cache every commune is to be scored, on the cluster
    with duckdb.connect(str(home / "siae.duckdb")) as con:
        con.execute("DELETE FROM ops.match_cache")
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        second = run_summary(sync, sources, home=str(home), force=True)
    merge = [s for s in second.steps if s.step == "merge"][0]
    assert merge.status == "failed" and "matching" in merge.message
    assert first.exit_code == 0 and second.exit_code != 0
    assert (home / "publish" / "siae.geojson").read_bytes() == before


def test_a_temporary_cluster_reports_to_the_flows_prefect_api():
    from prefect import flow

    from flows.scoring import task_runner
    from transforms.settings import RuntimeSettings

    @flow
    def probe() -> tuple[dict, str]:
        from prefect.context import FlowRunContext

        runner = task_runner(RuntimeSettings(task_runner="dask", dask_workers=2))
        return runner.cluster_kwargs, str(FlowRunContext.get().client.api_url)

    kwargs, api = probe()
    # new worker processes get the API address, or they would start a server of their own
    assert kwargs["env"] == {"PREFECT_API_URL": api} and api.startswith("http://")
    assert kwargs["n_workers"] == 2 and kwargs["processes"] is True


def test_an_edited_row_rescores_its_commune_and_finds_a_fresh_warehouses_pairs(demo, tmp_path):
    home = tmp_path / "wh"
    first = run_summary(sync, str(demo / "sources.toml"), home=str(home))
    scored = [s for s in first.steps if s.step == "merge"][0].details
    assert scored["communes_scored"] == scored["communes"] > 10
    network = demo / "reseau_iae_aura.csv"
    text = network.read_text(encoding="cp1252")
    assert "EPLEFPA OLIVIER DE SERRES" in text
    network.write_text(text.replace("EPLEFPA OLIVIER DE SERRES", "EPLEFPA O. DE SERRES"),
                       encoding="cp1252")
    second = run_summary(sync, str(demo / "sources.toml"), home=str(home))
    fresh = run_summary(sync, str(demo / "sources.toml"), home=str(tmp_path / "fresh"))
    assert first.exit_code == second.exit_code == fresh.exit_code == 0
    again = [s for s in second.steps if s.step == "merge"][0].details
    assert again["communes_scored"] == 1 and again["records_scored"] >= 1
    # the places the edit does not touch are taken from the clustering memo
    assert scored["components_reused"] == 0
    assert again["components_reused"] > 50 * again["components_clustered"] > 0
    for sql in ("SELECT * FROM core.match_candidates ORDER BY ALL",
                "SELECT source, source_id, rule, score FROM core.links ORDER BY ALL",
                "SELECT * EXCLUDE (structure_id) FROM core.structures ORDER BY ALL"):
        assert query(home, sql) == query(tmp_path / "fresh", sql)
