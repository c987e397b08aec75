"""A record re-keyed by its source (row hash changed) keeps the ID of the place it was."""

from transforms.merge import record_key
from transforms.spec import MatchingSettings
from transforms.staging import RECORD_COLUMNS
from transforms.succession import successions

T = MatchingSettings()


def rec(source, source_id, nom, **fields):
    base = dict.fromkeys(RECORD_COLUMNS)
    base.update(source=source, source_id=source_id, nom=nom, types=["ACI"],
                code_insee="07019", code_postal="07200", adresse="3 rue Neuve",
                telephone="+33475000000")
    base.update(fields)
    return base


JARDINS = rec("reseau", "h-old", "Les Jardins du Coiron")
JARDINS_NEW_PHONE = rec("reseau", "h-new", "Les Jardins du Coiron", telephone="+33475111111")
KNOWN = {record_key("reseau", "h-old"): "siae-aaaa"}


def test_a_row_whose_phone_changed_inherits_the_vanished_rows_id():
    (s,) = successions([JARDINS], [JARDINS_NEW_PHONE], KNOWN, T)
    assert (s.new_key, s.old_key, s.structure_id) == (
        "record:reseau:h-new", "record:reseau:h-old", "siae-aaaa")
    assert s.score >= T.merge_threshold


def test_another_place_in_the_same_commune_inherits_nothing():
    other = rec("reseau", "h-other", "Recyclerie de l'Ardèche", adresse="12 avenue de la Gare",
                telephone="+33475999999")
    assert successions([JARDINS], [other], KNOWN, T) == []


def test_a_record_of_another_source_does_not_take_over():
    same_place_elsewhere = {**JARDINS_NEW_PHONE, "source": "dreets"}
    assert successions([JARDINS], [same_place_elsewhere], KNOWN, T) == []


def test_a_vanished_record_whose_place_lives_on_is_not_inherited():
    # its ID is still claimed by the DREETS record, so the place has not disappeared
    dreets = rec("dreets", "d1", "Jardins du Coiron")
    known = {**KNOWN, record_key("dreets", "d1"): "siae-aaaa"}
    assert successions([JARDINS, dreets], [JARDINS_NEW_PHONE, dreets], known, T) == []


def test_a_new_record_with_a_known_siret_keeps_its_own_identity():
    with_siret = {**JARDINS_NEW_PHONE, "siret": "19070916200019"}
    known = {**KNOWN, "siret:19070916200019": "siae-bbbb"}
    assert successions([JARDINS], [with_siret], known, T) == []


def test_each_vanished_record_is_inherited_once_by_the_best_match():
    closer = JARDINS_NEW_PHONE
    # also above the threshold, but a worse match ("h-new0" sorts first: order does not decide)
    farther = rec("reseau", "h-new0", "Jardin du Coiron", telephone="+33475222222")
    found = successions([JARDINS], [farther, closer], KNOWN, T)
    assert [s.new_key for s in found] == ["record:reseau:h-new"]


def test_judgements_follow_a_record_through_its_successive_keys():
    from transforms.succession import carry_judgements

    other = "record:emplois:e1"
    judged = {frozenset({"record:reseau:h1", other}): "different"}
    renamed = [("record:reseau:h1", "record:reseau:h2"), ("record:reseau:h2", "record:reseau:h3")]
    carried = carry_judgements(judged, renamed)
    assert carried[frozenset({"record:reseau:h3", other})] == "different"
    # a decision stated on the newest key is not overridden by the inherited one
    judged[frozenset({"record:reseau:h3", other})] = "same"
    assert carry_judgements(judged, renamed)[frozenset({"record:reseau:h3", other})] == "same"


def test_the_id_inherited_is_the_one_last_published_not_the_first_stored():
    # a split gave the record another ID than the one stored with its key at first
    split = {**JARDINS, "structure_id": "siae-cccc"}
    (s,) = successions([split], [JARDINS_NEW_PHONE], KNOWN, T)
    assert s.structure_id == "siae-cccc"


def test_frames_as_read_from_the_warehouse_give_what_rows_give():
    import pandas as pd

    split = {**JARDINS, "structure_id": "siae-cccc"}
    other = rec("reseau", "h-other", "Recyclerie du Vivarais", code_insee="07010")
    unchanged = rec("emplois", "e1", "Tremplin", siret="19070916200019")
    previous = [split, unchanged, {**other, "structure_id": None}]
    current = [JARDINS_NEW_PHONE, unchanged, rec("reseau", "h-new0", "Jardin du Coiron",
                                                 telephone="+33475222222")]
    known = {**KNOWN, record_key("reseau", "h-other"): "siae-dddd"}
    rows = successions(previous, current, known, T)
    assert [s.structure_id for s in rows] == ["siae-cccc"]
    frames = successions(pd.DataFrame(previous, dtype=object),
                         pd.DataFrame(current, dtype=object), known, T)
    assert frames == rows
