"""Structures located by a forked process while the records are written, and memos written
by forked processes while the flow goes on, are those of the flow's own process: the same
core tables, disagreements, publication and memos."""

import pytest

from flows import consolidation, forked
from flows.fingerprints import GEOCODING_CODE, cluster_memo_fingerprint
from flows.sync import sync_direct
from tests.helpers import query
from transforms.spec import load_spec
from warehouse.memos import cluster_memo_path, load_layered, query_memo_path

pytestmark = pytest.mark.skipif(not forked.can_fork(), reason="this platform does not fork")

TABLES = {
    "structures": "SELECT * FROM core.structures ORDER BY ALL",
    "disagreements": "SELECT * EXCLUDE (run_id) FROM ops.geo_disagreements ORDER BY ALL",
    "ids": "SELECT identity_key, structure_id FROM core.structure_ids ORDER BY ALL",
}


def _synced(demo, home, monkeypatch, fork_from: int, forks: list) -> dict:
    def counting(job):
        forks.append("locate")
        return forked.forked_meanwhile(job)

    def background(job, what):
        forks.append(what)
        return forked.forked_background(job, what)

    monkeypatch.setattr(consolidation, "LOCATE_FORK_FROM", fork_from)
    monkeypatch.setattr(consolidation, "MEMO_FORK_FROM", fork_from)
    monkeypatch.setattr(consolidation, "forked_meanwhile", counting)
    monkeypatch.setattr(consolidation, "forked_background", background)
    summary = sync_direct(str(demo / "sources.toml"), home=str(home))
    assert summary.published
    out = {name: query(home, sql) for name, sql in TABLES.items()}
    out["geojson"] = (home / "publish" / "siae.geojson").read_bytes()
    priority = {n: s.priority for n, s in load_spec(demo / "sources.toml").sources.items()
                if s.enabled}
    out["clusters"] = load_layered(cluster_memo_path(home),
                                   cluster_memo_fingerprint(priority)).entries
    out["queries"] = load_layered(query_memo_path(home), GEOCODING_CODE).entries
    return out


def test_structures_located_by_a_forked_process_are_located_as_here(demo, tmp_path,
                                                                     monkeypatch):
    here_forks, forked_forks = [], []
    here = _synced(demo, tmp_path / "here", monkeypatch, 10**9, here_forks)
    there = _synced(demo, tmp_path / "forked", monkeypatch, 0, forked_forks)
    assert here_forks == []
    assert forked_forks == ["writing the clustering memo", "writing the geocoding's query memo",
                            "locate"]
    assert here["structures"] and here["disagreements"]  # something to compare
    assert here["clusters"] and here["queries"]
    assert there == here
