"""Matching by partitions of départements gives the pairs of one pass over every record."""

import pandas as pd
import pytest

from flows.scoring import partition_count, score_records
from transforms.matching import score_pairs
from transforms.partitions import departement_key, partition_rows
from transforms.settings import MatchingSettings, RuntimeSettings

COMMUNES = ["07019", "07019", "69123", "69383", "01015", "2A004", "97411", "97411", "43157"]
POSTCODES = {"07019": "07200", "69123": "69001", "69383": "69003", "01015": "01300",
             "2A004": "20000", "97411": "97400", "43157": "43000"}
NAMES = ["Atelier Tremplin", "Jardins de Cocagne", "Recyclerie Horizon", "Passerelle Emploi"]


def records() -> pd.DataFrame:
    """Pairs of near-identical records (a typo, a missing phone) in nine communes of six
    départements (seven partition keys: Corsica by postcode is "20"), some keyed by postcode
    only, and a record with no commune at all."""
    rows = []
    for c, commune in enumerate(COMMUNES):
        for n, name in enumerate(NAMES):
            for copy in range(2):
                by_postcode = (c + n) % 3 == 0
                rows.append({
                    "source": f"s{copy}", "source_id": f"{c}-{n}-{copy}", "siret": None,
                    "nom": name if copy == 0 else name.replace("e", "é", 1),
                    "enseigne": None, "adresse": f"{n + 1} rue du Pont",
                    "code_insee": None if by_postcode else commune,
                    "code_postal": POSTCODES[commune] if by_postcode else None,
                    "telephone": f"+3347500{c}{n}00" if copy == 0 else None,
                    "courriel": None, "site_web": None, "latitude": None, "longitude": None,
                    "types": ["ACI"], "types_candidats": None,
                })
    rows.append({**rows[0], "source_id": "nowhere", "code_insee": None, "code_postal": None})
    return pd.DataFrame(rows, dtype=object)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 50])
def test_partitions_give_the_pairs_of_one_pass(count):
    frame = records()
    settings = MatchingSettings()
    whole = score_pairs(frame.to_dict("records"), settings)
    assert len(whole) >= len(COMMUNES) * len(NAMES) // 2  # the set has pairs to find
    scored, used = score_records(frame, settings, RuntimeSettings(partitions=count),
                                 direct=True)
    assert scored == whole
    assert used == min(count, 7)


def test_a_departement_is_never_split_and_the_load_is_balanced():
    frame = records()
    parts = partition_rows(frame, 3)
    keys = [{departement_key(frame.at[i, "code_insee"] or frame.at[i, "code_postal"])
             for i in part} for part in parts]
    assert all(a.isdisjoint(b) for x, a in enumerate(keys) for b in keys[x + 1:])
    assert sorted(k for ks in keys for k in ks) == [
        "01", "07", "20", "2A", "43", "69", "974"]  # Corsica's postcodes start with 20
    sizes = sorted(len(p) for p in parts)
    assert sizes[-1] - sizes[0] <= 16  # within one département's weight
    assert len(frame) - 1 == sum(sizes)  # the record with no commune is in none


def test_overseas_departements_are_three_characters():
    assert departement_key("97411") == "974" and departement_key("97100") == "971"
    assert departement_key("2A004") == "2A" and departement_key(None) is None


@pytest.mark.parametrize("count", [1, 2, 3])
def test_scoring_some_communes_gives_their_pairs_of_one_pass(count):
    frame = records()
    settings = MatchingSettings()
    chosen = {"07019", "2A004", "97411"}
    only = [c in chosen for c in frame["code_insee"].fillna("")]
    kept = [i for i, o in enumerate(only) if o]
    whole = score_pairs(frame.iloc[kept].to_dict("records"), settings)
    expected = [(kept[i], kept[j], *rest) for i, j, *rest in whole]
    scored, _ = score_records(frame, settings, RuntimeSettings(partitions=count), direct=True,
                              only=only)
    assert scored == [tuple(p) for p in expected] and expected


def test_partition_count_defaults():
    from flows.forked import default_workers

    assert partition_count(RuntimeSettings()) == 1
    # enough records to score: one forked process per core, as the GIL gives threads nothing
    assert partition_count(RuntimeSettings(), 50_000) == default_workers()
    assert partition_count(RuntimeSettings(), 5_000) == 1
    assert partition_count(RuntimeSettings(task_runner="dask", dask_workers=3)) == 6
    assert partition_count(RuntimeSettings(task_runner="dask", partitions=5)) == 5


def test_dask_settings_need_the_dask_runner():
    with pytest.raises(ValueError, match="task_runner"):
        RuntimeSettings(dask_address="tcp://127.0.0.1:8786")
