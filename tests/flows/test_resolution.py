"""Entity resolution through the whole flow: matches, judgements, stable IDs, redirects."""

import json
from pathlib import Path

import pytest

from flows.judgements import append_judgement
from flows.sync import sync
from tests.helpers import query, run_summary

pytestmark = pytest.mark.usefixtures("prefect_server")


def run(demo: Path, home: Path):
    return run_summary(sync, str(demo / "sources.toml"), home=str(home))


def ids(home: Path) -> dict[str, str]:
    """structure_id by (source, source_id) of every record."""
    rows = query(home, "SELECT source, source_id, structure_id FROM core.links")
    return {(s, i): sid for s, i, sid in rows}


def matched_pair(home: Path) -> tuple[tuple[str, str], tuple[str, str]]:
    # the network's structure written without SIRET (its row with a mistyped SIRET is
    # matched too, now that it keeps its place)
    (src, sid, structure), = query(
        home, "SELECT source, source_id, structure_id FROM core.links JOIN core.records "
              "USING (source, source_id) WHERE rule = 'match' AND source = 'reseau_iae_aura' "
              "AND siret_ecarte IS NULL")
    other = query(home, "SELECT source, source_id FROM core.links WHERE structure_id = ? "
                        "AND source <> 'reseau_iae_aura' ORDER BY 1 LIMIT 1", [structure])[0]
    return (src, sid), other


def test_the_matcher_merges_a_record_without_siret(demo, tmp_path):
    home = tmp_path / "wh"
    run(demo, home)
    (src, sid), other = matched_pair(home)
    score = query(home, "SELECT score FROM core.links WHERE source = ? AND source_id = ?",
                  [src, sid])[0][0]
    assert score >= 0.85 and other[0] == "emplois_aura"


def test_different_splits_and_same_merges_on_the_next_run_and_both_last(demo, tmp_path):
    home = tmp_path / "wh"
    first = run(demo, home)
    before = ids(home)
    left, right = matched_pair(home)
    judgements = demo / "judgements.csv"
    append_judgement(judgements, left, right, "different")
    # the review-band pair (a siège and its antenne) judged the same place
    (l_src, l_id, r_src, r_id), = query(
        home, "SELECT left_source, left_source_id, right_source, right_source_id "
              "FROM core.match_candidates WHERE band = 'review'")
    append_judgement(judgements, (l_src, l_id), (r_src, r_id), "same")
    antenne_id = before[(r_src, r_id)]
    siege_id = before[(l_src, l_id)]
    assert antenne_id != siege_id

    second = run(demo, home)
    after = ids(home)
    assert after[left] != after[right]  # split
    assert after[right] == before[right]  # the surviving side keeps its ID
    # the side split off is keyed to its new ID, so that it keeps it (and the other side
    # its own) whatever records join either side later
    (moved,), = query(home, "SELECT structure_id FROM core.structure_ids WHERE identity_key "
                            "= ?", [f"record:{left[0]}:{left[1]}"])
    assert moved == after[left]
    assert after[(l_src, l_id)] == after[(r_src, r_id)]  # merged
    survivor = after[(l_src, l_id)]
    gone = ({antenne_id, siege_id} - {survivor}).pop()
    assert second.structures == first.structures  # one split, one merge
    redirects = json.loads((home / "publish" / "redirects.json").read_text())["redirects"]
    assert {"from": gone, "to": survivor} in redirects
    changes = json.loads((home / "publish" / "changes.json").read_text())
    assert {"from": gone, "to": survivor} in changes["redirects"]

    run(demo, home)
    assert ids(home) == after  # judgements keep applying

    # the merged-away record leaves its source: the redirect stays
    (gone_record,) = [k for k, sid in before.items() if sid == gone]
    assert gone_record[0] == "emplois_aura"
    page = json.loads((demo / "emplois_aura.json").read_text(encoding="utf-8"))
    page["results"] = [r for r in page["results"] if r["id"] != gone_record[1]]
    page["count"] = len(page["results"])
    (demo / "emplois_aura.json").write_text(json.dumps(page), encoding="utf-8")
    run(demo, home)
    assert gone_record not in ids(home) and survivor in set(ids(home).values())
    assert (gone, survivor) in query(home, "SELECT from_id, to_id FROM "
                                           "core.structure_redirects")


def test_ids_survive_a_source_removed_and_added_back(demo, tmp_path):
    home = tmp_path / "wh"
    run(demo, home)
    before = ids(home)
    text = (demo / "sources.toml").read_text(encoding="utf-8")
    without = text.replace("[sources.datainclusion]\n",
                           "[sources.datainclusion]\nenabled = false\n")
    (demo / "sources.toml").write_text(without, encoding="utf-8")
    seen = dict(query(home, "SELECT identity_key, last_seen FROM core.structure_ids"))
    run(demo, home)
    during = ids(home)
    assert all(before[k] == v for k, v in during.items())
    # the disabled source's record keys were not seen by this run; the others were
    later = dict(query(home, "SELECT identity_key, last_seen FROM core.structure_ids"))
    away = {k for k in seen if k.startswith("record:datainclusion:")}
    assert away and all(later[k] == seen[k] for k in away)
    here = {f"record:{s}:{i}" for s, i in during}
    assert here and all(later[k] > seen[k] for k in here)
    (demo / "sources.toml").write_text(text, encoding="utf-8")
    run(demo, home)
    assert ids(home) == before


def test_a_network_row_edited_in_place_keeps_its_structure_id(demo, tmp_path, capsys):
    # A row without SIRET nor id of its own is keyed by a hash of its content: editing its
    # phone re-keys it. Its place must keep its ID, and the map sees a change, not a swap.
    csv = demo / "reseau_iae_aura.csv"
    row = (";Le Chantier des Gorges;12 Rue du Pont;;07150;VALLON-PONT-D'ARC;"
           "Atelier chantier d'insertion;04 75 88 00 00;;;;\r\n")
    csv.write_bytes(csv.read_bytes() + row.encode("cp1252"))
    home = tmp_path / "wh"
    run(demo, home)
    sql = "SELECT structure_id, telephone FROM core.structures WHERE nom = 'Le Chantier des Gorges'"
    ((before, phone),) = query(home, sql)
    assert phone == "+33475880000"
    csv.write_bytes(csv.read_bytes().replace(b"04 75 88 00 00", b"04 75 88 11 11"))
    run(demo, home)
    assert query(home, sql) == [(before, "+33475881111")]
    (succession,) = query(home, "SELECT old_key, new_key, structure_id FROM core.id_successions")
    assert succession[2] == before and succession[0] != succession[1]
    changes = json.loads((home / "publish" / "changes.json").read_text())
    assert changes["added"] == [] and changes["removed"] == []
    assert {"structure_id": before, "fields": ["telephone"]} in changes["changed"]
    # analysts read the same story, with dates, in the warehouse's history
    history = "SELECT changement, champs FROM marts.siae_changes WHERE structure_id = ? " \
              "ORDER BY modifie_le"
    assert query(home, history, [before]) == [("added", []), ("changed", ["telephone"])]
    csv.write_bytes(b"".join(line for line in csv.read_bytes().splitlines(keepends=True)
                             if b"Chantier des Gorges" not in line))
    run(demo, home)
    assert [c for c, _ in query(home, history, [before])] == ["added", "changed", "removed"]
    assert query(home, "SELECT count(*) FROM core.structures_history WHERE structure_id = ? "
                       "AND valid_to IS NULL", [before]) == [(0,)]
    # the same story in the terminal
    from flows.cli import main

    capsys.readouterr()
    assert main(["changes", "--home", str(home), "--structure", before]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in lines[:-1]] == ["added", "changed", "removed"]
    assert "Le Chantier des Gorges (telephone)" in lines[1]
    assert lines[-1].startswith("3 changes since")


def test_a_judgement_still_binds_a_row_after_its_source_edits_it(demo, tmp_path):
    home = tmp_path / "wh"
    run(demo, home)
    left, right = matched_pair(home)  # a network row without SIRET, matched to les emplois
    append_judgement(demo / "judgements.csv", left, right, "different")
    run(demo, home)
    split = ids(home)[left]
    assert split != ids(home)[right]
    # the network adds a phone number to that row: a new row hash, the same place
    csv = demo / "reseau_iae_aura.csv"
    text = csv.read_bytes().decode("cp1252")
    line = next(x for x in text.splitlines() if "Ondaine Agro" in x)
    edited = line.replace("Atelier chantier d'insertion;;", "Atelier chantier d'insertion;"
                                                           "04 77 56 00 00;", 1)
    assert edited != line
    csv.write_bytes(text.replace(line, edited).encode("cp1252"))
    run(demo, home)
    (key, structure_id), = query(
        home, "SELECT l.source_id, l.structure_id FROM core.links l JOIN core.records r "
              "USING (source, source_id) WHERE r.source = ? AND r.nom = 'Association Ondaine "
              "Agro'", [left[0]])
    assert key != left[1]  # re-keyed by its source
    now = ids(home)
    assert structure_id == split  # the place kept its ID...
    assert structure_id != now[right]  # ...and the analyst's "different" still holds
    run(demo, home)
    assert ids(home) == now  # and on the following runs
