"""Matching: name normalisation, blocking, features, score bands."""

import random

import numpy as np
import pytest
from rapidfuzz import fuzz

from transforms import matching
from transforms.matching import (
    _LONG_NOISE,
    _NOISE,
    _block_entries,
    _block_keys,
    _is_noise,
    _name_words,
    _pairs_within_runs,
    candidate_pairs,
    classify,
    features,
    name_tokens,
    score,
    usable_siret,
)
from transforms.spec import MatchingSettings


def r(nom, adresse="3 rue Neuve", code_insee="07019", siret=None, **kw):
    return {"nom": nom, "adresse": adresse, "code_insee": code_insee, "code_postal": "07200",
            "siret": siret, **kw}


@pytest.mark.parametrize(
    ("name", "tokens"),
    [
        ("ASSOCIATION LES JARDINS DE COCAGNE", ["JARDINS", "COCAGNE"]),
        ("Atelier Chantier d'Insertion St Jean", ["SAINT", "JEAN"]),
        ("I D E O", ["IDEO"]),
        ("SARL Éco-Logis", ["ECO", "LOGIS"]),
    ],
)
def test_name_tokens_drop_legal_forms_kinds_and_articles(name, tokens):
    assert name_tokens(name) == tokens


def test_blocking_pairs_within_a_commune_only():
    records = [r("Recyclerie du Forez"), r("Recyclerie Forez"),
               r("Recyclerie du Forez", code_insee="42147"), r("Tremplin", adresse="1 place")]
    assert candidate_pairs(records) == [(0, 1)]


def test_the_same_address_in_a_commune_is_a_block_too():
    assert candidate_pairs([r("Recyclerie"), r("Tremplin")]) == [(0, 1)]


def test_two_different_sirets_are_never_candidates():
    records = [r("Recyclerie", siret="19070916200019"), r("Recyclerie", siret="42385519600014"),
               r("Recyclerie")]
    assert candidate_pairs(records) == [(0, 2), (1, 2)]


def test_a_typo_late_in_a_word_still_meets_through_the_prefix():
    assert candidate_pairs([r("PENELOPE"), r("PENELPOE")]) == [(0, 1)]


def crowd(word, places, copies, **kw):
    """`places` structures of one commune whose names share `word`, each at its own address
    and listed `copies` times (once per source)."""
    return [r(f"{word} {other}", adresse=f"{n} rue Neuve", **kw)
            for n, other in enumerate(["Forez", "Pilat", "Velay", "Vivarais", "Jarez", "Roanne",
                                       "Gier", "Lignon", "Furan", "Ondaine"][:places], 1)
            for _ in range(copies)]


def test_a_word_many_places_share_is_not_enough_in_a_crowded_block():
    records = crowd("Solidarite", places=3, copies=2)  # six records share SOLIDARITE
    copies = [(0, 1), (2, 3), (4, 5)]
    assert candidate_pairs(records, whole_blocks_up_to=6) == [
        (i, j) for i in range(6) for j in range(i + 1, 6)]
    assert candidate_pairs(records, whole_blocks_up_to=4) == copies


def test_a_name_wholly_in_the_other_still_meets_in_a_crowded_block():
    records = crowd("Solidarite", places=3, copies=1) + [
        r("Association Solidarite", adresse="9 rue Haute"),  # its only word is SOLIDARITE
        r("Solidarite Pilat", adresse="9 rue Haute")]
    pairs = candidate_pairs(records, whole_blocks_up_to=4)
    assert (1, 4) in pairs  # same name, addresses differ
    assert {(0, 3), (1, 3), (2, 3), (3, 4)} <= set(pairs)  # "Solidarite" is in every name
    assert (0, 1) not in pairs and (0, 4) not in pairs


def test_pairs_grow_with_the_records_not_their_square():
    def pairs(places):
        return len(candidate_pairs(crowd("Solidarite", places, copies=3), whole_blocks_up_to=4))

    # the three copies of each place meet (3 pairs a place); different places never do
    assert pairs(5) == 5 * 3 and pairs(10) == 10 * 3


def test_the_settings_default_to_one_record_per_source(tmp_path):
    from transforms.spec import parse_spec

    text = "".join(f'[sources.s{n}]\nkind = "file"\npath = "s{n}.csv"\n'
                   f'columns = {{ nom = "nom" }}\n' for n in range(5))
    spec = parse_spec(text + '[sources.s5]\nkind = "file"\npath = "x.csv"\nenabled = false\n'
                      'columns = { nom = "nom" }\n', tmp_path / "sources.toml")
    assert spec.matching.whole_blocks_up_to == 5
    spec = parse_spec(text + "[matching]\nwhole_blocks_up_to = 3\n", tmp_path / "sources.toml")
    assert spec.matching.whole_blocks_up_to == 3



# Names that take every path of the columnar folding: accents, ligatures Arrow leaves alone,
# spaced acronyms, ST/STE, letters beyond Latin, combining marks, mistyped noise words.
TRICKY_NAMES = ["Éco-Logis Stéphane", "Œuvre d'Insertion", "I D E O Services", "ST JEAN STE ANNE",
                "ste-marie st", "Ωmega Жилье", "ﬁnance Solidaire", "Cafe\u0301 Re\u0301cup",
                "ASSOCIATION INSRTION", "½ Lune ²", "Straße Grüne", "", None, "A B", "ST"]


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_names_are_split_in_columns_as_one_by_one(name):
    import pyarrow as pa

    rows, words = _name_words(pa.array(["Autre Nom", name, name], pa.string()))
    by_row = [[w for row, w in zip(rows.tolist(), words.to_pylist(), strict=True) if row == k]
              for k in range(3)]
    assert by_row == [name_tokens("Autre Nom"), name_tokens(name), name_tokens(name)]


def test_the_blocking_keys_of_a_partition_are_those_of_each_record(monkeypatch):
    monkeypatch.setattr(matching, "_COLUMNS_FROM", 0)  # in columns however few the records
    records = [r(name, adresse=adresse, telephone=phone, enseigne=sign, code_insee=insee)
               for name in TRICKY_NAMES
               for adresse, phone, sign, insee in [
                   ("3 rue Neuve", None, None, "07019"),
                   ("3, Rue Neuve", "+33465711234", "Tremplin", None),  # code_postal only
                   ("", "+33465711234", name, "42147")]] + [
        {"nom": "Sans Commune", "adresse": "1 place", "code_insee": None, "code_postal": None}]
    record, key, is_name, name_keys = _block_entries(records)
    got: list[set[int]] = [set() for _ in records]
    for i, k in zip(record.tolist(), key.tolist(), strict=True):
        got[i].add(k)
    expected = [_block_keys(x) for x in records]
    # as many keys per record, of which as many name keys
    assert [len(keys) for keys, _ in expected] == [len(mine) for mine in got]
    assert [names for _, names in expected] == name_keys.tolist()
    # and the same blocks, of the same kinds
    blocks = {}
    for i, k in zip(record.tolist(), key.tolist(), strict=True):
        blocks.setdefault(k, set()).add(i)
    by_key = {}
    for i, (keys, _) in enumerate(expected):
        for k in keys:
            by_key.setdefault(k, set()).add(i)
    assert sorted(map(sorted, blocks.values())) == sorted(map(sorted, by_key.values()))
    names_blocks = sorted(sorted(m) for k, m in blocks.items() if is_name[k])
    assert names_blocks == sorted(sorted(m) for k, m in by_key.items()
                                  if k.split("|", 1)[1][:2] in ("p:", "n:"))


def test_pairs_within_runs_are_every_pair_of_each_run_in_order():
    left, right = _pairs_within_runs(np.array([4, 4, 4, 7, 9, 9]))
    assert list(zip(left.tolist(), right.tolist(), strict=True)) == [(0, 1), (0, 2), (1, 2), (4, 5)]


def brute_force_pairs(records, whole):
    """candidate_pairs' rule written plainly, one block and one pair at a time."""
    keyed = [_block_keys(x) for x in records]
    blocks = {}
    for i, (keys, _) in enumerate(keyed):
        for k in keys:
            blocks.setdefault(k, []).append(i)
    pairs, shared, named = set(), {}, {}
    for k, members in blocks.items():
        if len(members) > 200:
            continue
        for x, i in enumerate(members):
            for j in members[x + 1:]:
                if usable_siret(records[i].get("siret")) and usable_siret(records[j].get("siret")):
                    continue
                if len(members) <= whole:
                    pairs.add((i, j))
                else:
                    shared[(i, j)] = shared.get((i, j), 0) + 1
                    if k.split("|", 1)[1][:2] in ("p:", "n:"):
                        named[(i, j)] = named.get((i, j), 0) + 1
    for (i, j), n in shared.items():
        m = named.get((i, j), 0)
        if n >= 2 or (m and m >= min(keyed[i][1], keyed[j][1])):
            pairs.add((i, j))
    return sorted(pairs)


@pytest.mark.parametrize("columns_from", [0, 10**6], ids=["in-columns", "one-by-one"])
@pytest.mark.parametrize("seed", range(6))
def test_candidate_pairs_follow_the_rule_on_random_communes(seed, columns_from, monkeypatch):
    monkeypatch.setattr(matching, "_COLUMNS_FROM", columns_from)
    rnd = random.Random(seed)
    words = ["Solidarite", "Forez", "Pilat", "Velay", "Jarez", "Éco", "St", "I D E", "Gier"]
    records = [r(" ".join(rnd.sample(words, rnd.randrange(0, 4))) or None,
                 adresse=rnd.choice([None, "1 rue Neuve", "2 rue Neuve"]),
                 code_insee=rnd.choice(["07019", "07019", "42147", None]),
                 telephone=rnd.choice([None, "+33465711234"]),
                 siret=rnd.choice([None, None, "19070916200019", "42385519600014",
                                   "12345678999901"]))
               for _ in range(rnd.randrange(20, 80))]
    for whole in (1, 2, 4, 6):
        assert candidate_pairs(records, whole_blocks_up_to=whole) == brute_force_pairs(
            records, whole)

BANDS = MatchingSettings(merge_threshold=0.85, review_threshold=0.60)


@pytest.mark.parametrize(
    ("a", "b", "band"),
    [
        (r("Recyclerie du Forez", telephone="+33465711234"),
         r("Association Recyclerie Forez", telephone="+33465711234"), "merge"),
        (r("Recyclerie du Forez", adresse="3 rue Neuve", telephone="+33465711234"),
         r("Recyclerie du Forez", adresse="14 avenue Jaurès", telephone="+33465711234"),
         "merge"),  # moved, same phone
        (r("Recyclerie du Forez", adresse="3 rue Neuve", telephone="+33465711234"),
         r("Recyclerie du Forez", adresse="14 avenue Jaurès", telephone="+33465719999"),
         "distinct"),  # an antenne: other address, other phone
        (r("Recyclerie du Forez"), r("Tremplin Emploi"), "distinct"),
        (r("Recyclerie du Forez", adresse=None), r("Recyclerie du Forez", adresse=None),
         "review"),  # a name alone is not enough to merge
        (r("Recyclerie du Forez", telephone="+33465711234"),
         r("RECYCLERIE DU FOREZ", telephone="+33477000000"), "merge"),  # head office's phone
        (r("Tremplin Environnement"), r("Tremplin Horizon"), "review"),  # same building
        (r("ADEF AI", types=["AI"]), r("ADEF EI", types=["EI"]), "distinct"),  # siblings
        (r("ADEF", types=["AI"]), r("ADEF", types=["EI"]), "review"),  # kinds disagree
        (r("ADEF AI"), r("ADEF EI"), "review"),  # the names' kind words disagree
        (r("ADEF", types=["AI"]), r("ADEF", types_candidats=["AI", "EI"]), "merge"),
        (r("ACT INTERIM ISERE"), r("ACT ITNERIM ISERE"), "merge"),  # a typo in one word
        (r("ASSOC M O ENTREPRISE"), r("ASSOC M O ENTREPRISE"), "merge"),  # only common words
    ],
    ids=["abbreviated-same-phone", "moved", "antenne", "other-name", "name-only",
         "same-name-address-other-phone", "other-name-same-building", "sibling-kinds-and-names",
         "disjoint-kinds", "kind-words-in-names", "candidate-kinds-overlap", "typo-in-a-word",
         "name-of-common-words"],
)
def test_score_bands(a, b, band):
    assert classify(score(features(a, b)), BANDS) == band


def test_points_far_apart_count_against():
    near = features(r("Recyclerie", latitude=44.62, longitude=4.39),
                    r("Recyclerie", latitude=44.6201, longitude=4.3901))
    far = features(r("Recyclerie", latitude=44.62, longitude=4.39),
                   r("Recyclerie", latitude=44.70, longitude=4.50))
    assert score(near) > score(far)


def test_cross_validation_rechooses_the_threshold_on_the_other_folds():
    from transforms.matching import cross_validate

    names = ["Jardins du Coiron", "Recyclerie Ardéchoise", "Tremplin Vivarais", "Envol Services",
             "Horizon Bâtiment", "Passerelle Emploi", "Atelier Vélo Solidaire", "Ressourcerie Sud"]
    labelled = []
    for i, name in enumerate(names):
        phone = f"+3347500000{i}"
        left = r(name, adresse=f"{i + 1} rue Neuve", telephone=phone)
        labelled.append(("same", "typo", left, r(name + "s", adresse=f"{i + 1} rue Neuve",
                                                  telephone=phone)))
        # a neighbour of the same network: another name at another number
        labelled.append(("different", "neighbour", left,
                         r(names[(i + 1) % len(names)], adresse=f"{i + 40} rue Neuve")))
    cv = cross_validate(labelled, folds=4)
    assert len(cv.merge_thresholds) == 4
    assert cv.precision == 1.0 and cv.recall == 1.0


def test_the_matcher_reads_no_record_field_beyond_matched_fields():
    # score_records gives the matcher rows of MATCHED_FIELDS only: a field it reads and the
    # list lacks would be None there, and the scores would silently change
    import re
    from pathlib import Path

    import transforms.matching as matching
    from transforms.staging import RECORD_COLUMNS
    source = Path(matching.__file__).read_text(encoding="utf-8")
    named = {c for c in RECORD_COLUMNS if re.search(rf"[\"']{c}[\"']", source)}
    assert named == set(matching.MATCHED_FIELDS)


def test_scoring_whole_records_or_their_matched_fields_gives_the_same_pairs():
    import pandas as pd

    from flows.scoring import score_records
    from tests.helpers import record
    from transforms.matching import score_pairs
    from transforms.settings import RuntimeSettings
    rows = []
    for n, (name, phone) in enumerate([("Atelier Tremplin", "+33475000001"),
                                       ("Atelier Tremplin ", "+33475000001"),
                                       ("Jardins de Cocagne", None),
                                       ("Les Jardins de Cocagne", "+33475000002"),
                                       ("Recyclerie Horizon", None)]):
        rows.append(record(f"s{n % 2}", str(n), nom=name, telephone=phone,
                           adresse=f"{n % 3 + 1} rue du Pont", complement_adresse="Bât. B",
                           code_insee="07019", code_postal="07200", commune="Aubenas",
                           departement="07", region="84", siren=None, types=["ACI"],
                           date_maj=None, description=f"structure {n}"))
    frame = pd.DataFrame(rows, dtype=object)
    settings = MatchingSettings()
    whole = score_pairs(frame.to_dict("records"), settings)
    assert whole  # the set has pairs to find
    scored, _ = score_records(frame, settings, RuntimeSettings(), direct=True)
    assert scored == whole


def test_a_mistyped_long_noise_word_is_noise_as_the_plain_rule_says():
    # a name word within 85% of a long legal form or kind word ("INSRTION") is noise
    rng = random.Random(5)
    words = sorted(_LONG_NOISE) + ["JARDINS", "COCAGNE", "RECYCLERIE", "INTERMEDE"]
    tokens = []
    for _ in range(3000):
        w = list(rng.choice(words))
        for _ in range(rng.randint(0, 3)):  # a few typos: dropped, doubled, changed letters
            i = rng.randrange(len(w))
            w[i:i + 1] = rng.choice([[], [w[i], w[i]], [rng.choice("AEIRSTNX")]])
        tokens.append("".join(w))
    plain = [t in _NOISE or (len(t) >= 6 and any(fuzz.ratio(t, w) >= 85
                                                    for w in _LONG_NOISE)) for t in tokens]
    assert [_is_noise(t) for t in tokens] == plain
    assert any(plain) and not all(plain)
    assert name_tokens("ASSOCIATION INSRTION JARDINS") == ["JARDINS"]
