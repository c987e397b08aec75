"""Who recruits: les emplois' positions normalised, open titles per place."""

import json

from transforms.postes import normalize_postes, open_titles, poste_rows

API = json.dumps([
    {"id": 1, "rome": "a1203", "appellation_modifiee": "Ouvrier  espaces verts",
     "recrutement_ouvert": "True", "cree_le": "2026-09-01T08:00:00Z",
     "mis_a_jour_le": "2026-10-15T08:00:00Z"},
    {"id": 2, "rome": "K2304", "appellation_modifiee": "Agent de tri",
     "recrutement_ouvert": "False"},
    {"id": 3, "rome": "XX", "appellation_modifiee": "<b>Commis</b>", "recrutement_ouvert": True},
    "not a position",
])


def test_positions_are_normalised():
    postes = json.loads(normalize_postes(API))
    assert [p["rome"] for p in postes] == [None, "A1203", "K2304"]  # an invalid code dropped
    assert postes[1] == {"rome": "A1203", "appellation": "Ouvrier espaces verts",
                         "recrutement_ouvert": True, "cree_le": "2026-09-01",
                         "mis_a_jour_le": "2026-10-15"}
    assert postes[2]["recrutement_ouvert"] is False  # the string "False"


def test_recruiting_is_unknown_until_a_source_says():
    assert open_titles([None, None]) == (None, [])
    assert open_titles([normalize_postes("[]")]) == (False, [])
    assert open_titles([normalize_postes(API), None]) == (True, ["<b>Commis</b>",
                                                                 "Ouvrier espaces verts"])


def test_every_position_gets_its_structure():
    rows = poste_rows([{"source": "emplois", "source_id": "7", "postes": normalize_postes(API)},
                       {"source": "reseau", "source_id": "x", "postes": None}],
                      {("emplois", "7"): "siae-1"})
    assert len(rows) == 3 and {r[0] for r in rows} == {"siae-1"}
