"""Structures located by forked processes, a share each, are those located in the flow's own
process: the same core tables, disagreements and publication."""

import pytest

from flows import consolidation, forked
from flows.sync import sync_direct
from tests.helpers import query

pytestmark = pytest.mark.skipif(not forked.can_fork(), reason="this platform does not fork")

TABLES = {
    "structures": "SELECT * FROM core.structures ORDER BY ALL",
    "disagreements": "SELECT * EXCLUDE (run_id) FROM ops.geo_disagreements ORDER BY ALL",
    "ids": "SELECT identity_key, structure_id FROM core.structure_ids ORDER BY ALL",
}


def _synced(demo, home, monkeypatch, fork_from: int, forks: list) -> dict:
    real = forked.run_forked  # (not the module's: a second call would wrap the first)

    def counting(jobs, workers):
        forks.extend(j for j in jobs if getattr(j, "func", None) is consolidation._locations)
        return real(jobs, workers)

    monkeypatch.setattr(consolidation, "LOCATE_FORK_FROM", fork_from)
    monkeypatch.setattr(consolidation, "run_forked", counting)
    summary = sync_direct(str(demo / "sources.toml"), home=str(home))
    assert summary.published
    out = {name: query(home, sql) for name, sql in TABLES.items()}
    out["geojson"] = (home / "publish" / "siae.geojson").read_bytes()
    return out


def test_structures_located_by_a_forked_process_are_located_as_here(demo, tmp_path,
                                                                     monkeypatch):
    here_forks, forked_forks = [], []
    here = _synced(demo, tmp_path / "here", monkeypatch, 10**9, here_forks)
    there = _synced(demo, tmp_path / "forked", monkeypatch, 0, forked_forks)
    assert here_forks == [] and len(forked_forks) == min(2, forked.default_workers())
    assert here["structures"] and here["disagreements"]  # something to compare
    assert there == here
