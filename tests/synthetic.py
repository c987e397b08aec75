"""A synthetic national set with the patterns of real records, and its truth.

Used by the benchmarks (scripts/bench_pipeline.py) and the national-size tests. Places sit in
real communes (the reference as the pipeline builds it, collectivités d'outre-mer included)
and are described by four CSV sources, two to four per place. What real records do is put in
on purpose (issue 10):

- siblings: an organisation runs two structures of different kinds at one address, with
  different SIRETs (often one SIREN), named by their kind word ("Horizon AI", "Horizon EI");
- kind words in names, and the company's kinds given per SIREN by the annuaire-like source
  (mapped to `types_candidats` when the company has several establishments);
- the network's list: 30 % of its rows without SIRET, some mistyped (they fail Luhn), some
  filled with zeros, former commune names, no ids of its own (rows keyed by their content);
- typos in names, half of the rows with coordinates.

`truth.csv` says which place each row describes and its real kinds (by `source_id`, or by
`row_number` for the network's rows).
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from pathlib import Path

import pandas as pd
from stdnum import luhn

KINDS = ("ACI", "AI", "EI", "ETTI", "EITI")
WORDS = ("Atelier", "Jardins", "Recyclerie", "Tremplin", "Solidarité", "Avenir", "Bâtiment",
         "Ressourcerie", "Emploi", "Services", "Vallée", "Horizon", "Passerelle", "Envol",
         "Cocagne", "Trait d'Union", "Élan", "Relais", "Boussole", "Étape", "Ricochet",
         "Sésame", "Archipel", "Tisserand", "Verger", "Chantier Vert", "Pont", "Escale")
STREETS = ("rue", "avenue", "chemin", "place", "boulevard", "impasse", "route")
SOURCES = {"asp": 65, "emplois": 55, "annuaire": 45, "reseau": 40}
HEADER = ["id", "siret", "nom", "type", "types_siren", "adresse", "cp", "ville", "insee",
          "tel", "lat", "lon"]


def siren(n: int) -> str:
    body = f"{20000000 + n:08d}"
    return body + luhn.calc_check_digit(body)


def siret(siren_: str, nic: int) -> str:
    body = f"{siren_}{nic:04d}"
    return body + luhn.calc_check_digit(body)


def towns(ref: dict[str, pd.DataFrame]) -> tuple[list[tuple], dict[str, list[str]]]:
    """(code, name, postcode, lat, lon) of the communes with a centre and a postcode, and the
    former names each commune code answers to."""
    communes = ref["communes"]
    current = communes[(communes["type"] == "COM") & communes["centre_lat"].notna()]
    postcode = ref["postcodes"].sort_values("code_postal").groupby("code_insee")[
        "code_postal"].first().to_dict()
    out = [(c.code_insee, c.nom, postcode[c.code_insee], c.centre_lat, c.centre_lon)
           for c in current.itertuples() if c.code_insee in postcode]
    former: dict[str, list[str]] = defaultdict(list)
    for c in communes[communes["type"].isin(["COMD", "COMA", "ANC"])
                      & communes["nom"].notna()].itertuples():
        if c.parent_code and c.nom:
            former[c.parent_code].append(c.nom)
    return out, former


def _typo(rng: random.Random, text: str) -> str:
    i = rng.randrange(1, max(2, len(text) - 1))
    return text[:i] + text[i + 1:i + 2] + text[i:i + 1] + text[i + 2:]


def _mistype(siret_: str) -> str:
    i = 9 + int(siret_[-1]) % 4
    return siret_[:i] + str((int(siret_[i]) + 3) % 10) + siret_[i + 1:]


def write_synthetic(folder: Path, places: int, ref: dict[str, pd.DataFrame], seed: int = 7,
                    ban_url: str | None = None, with_points: float = 0.5) -> dict[str, int]:
    """Write the four sources, sources.toml and truth.csv for `places` places (about 2.7
    rows each, `with_points` of them with coordinates); returns counts of the patterns put
    in."""
    rng = random.Random(seed)
    all_towns, former = towns(ref)
    overseas = [t for t in all_towns if t[0][:3] in ("975", "977", "978")]
    rows: dict[str, list[list]] = {s: [] for s in SOURCES}
    truth: list[tuple] = []
    counts: dict[str, int] = defaultdict(int)
    plan = []  # (place index, siren, nic, name, kind, town, address)
    n, company = 0, 0
    while n < places:
        town = rng.choice(overseas) if overseas and rng.random() < 0.002 else \
            rng.choice(all_towns)
        stem = " ".join(rng.sample(WORDS, 2))
        address = f"{rng.randint(1, 150)} {rng.choice(STREETS)} {rng.choice(WORDS)}"
        company += 1
        if rng.random() < 0.08 and n + 1 < places:
            # siblings: two kinds at one address, named by their kind word
            kinds = rng.sample(KINDS[:4], 2)
            same_siren = rng.random() < 0.5
            for k, kind in enumerate(kinds):
                if k and not same_siren:
                    company += 1
                plan.append((n, siren(company), k + 1, f"{stem} {kind} {n}", kind, town,
                             address))
                n += 1
            counts["siblings"] += 2
            continue
        kind = rng.choice(KINDS)
        name = f"{stem} {n}" + (f" {kind}" if rng.random() < 0.1 else "")
        plan.append((n, siren(company), 1, name, kind, town, address))
        n += 1
    establishments = defaultdict(list)
    for p in plan:
        establishments[p[1]].append(p)
    for place, siren_, nic, name, kind, town, address in plan:
        code, commune, cp, lat, lon = town
        own = siret(siren_, nic)
        company_kinds = ", ".join(sorted({p[4] for p in establishments[siren_]}))
        sole = len(establishments[siren_]) == 1
        point = (f"{lat + rng.uniform(-0.004, 0.004):.6f}",
                 f"{lon + rng.uniform(-0.004, 0.004):.6f}")
        for source in rng.sample(list(SOURCES), rng.randint(2, 4)):
            value, shown_name, city, insee = own, name, commune, code
            types, types_siren = kind, ""
            if source == "annuaire" and not sole:
                types, types_siren = "", company_kinds  # kinds per SIREN
            if source == "reseau":
                insee = ""
                draw = rng.random()
                if draw < 0.30:
                    value = ""
                    counts["reseau_without_siret"] += 1
                elif draw < 0.32:
                    value = _mistype(own)
                    counts["siret_mistyped"] += 1
                elif draw < 0.33:
                    value = "00000000000000"
                    counts["siret_filler"] += 1
                if former.get(code) and rng.random() < 0.3:
                    city = rng.choice(former[code])
                    counts["former_commune"] += 1
                if rng.random() < 0.05:
                    shown_name = _typo(rng, name)
                    counts["name_typo"] += 1
            source_id = "" if source == "reseau" else f"{source}-{place}"
            table = rows[source]
            table.append([source_id, value, shown_name, types, types_siren, address, cp, city,
                          insee, f"04{rng.randint(10000000, 99999999)}",
                          *(point if rng.random() < with_points else ("", ""))])
            # the row's line in its CSV: the header is line 1
            truth.append((source, source_id, len(table) + 1, f"p{place}", kind))
    columns = {"siret": "siret", "nom": "nom", "types": "type",
               "types_candidats": "types_siren", "adresse": "adresse", "code_postal": "cp",
               "commune": "ville", "code_insee": "insee", "telephone": "tel",
               "latitude": "lat", "longitude": "lon"}
    toml = ["[defaults]", 'kinds = ["ACI", "AI", "EI", "ETTI", "EITI"]', "",
            "[publication]", "keep = 2", ""]
    toml += (["[geocoder]", f'base_url = "{ban_url}"', "rate_per_second = 40", ""] if ban_url
             else ["[geocoder]", "enabled = false", ""])
    for source, table in rows.items():
        with (folder / f"{source}.csv").open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(HEADER)
            writer.writerows(table)
        mapping = dict(columns, **({"source_id": "id"} if source != "reseau" else {}))
        ignore = '["id", "insee"]' if source == "reseau" else "[]"
        toml += [f"[sources.{source}]", 'kind = "file"', f'path = "{source}.csv"',
                 f"priority = {SOURCES[source]}", f"ignore_columns = {ignore}",
                 f"[sources.{source}.columns]"]
        toml += [f'{k} = "{v}"' for k, v in mapping.items()] + [""]
    (folder / "sources.toml").write_text("\n".join(toml), encoding="utf-8")
    with (folder / "truth.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["source", "source_id", "row_number", "place", "kinds"])
        writer.writerows(truth)
    counts["places"], counts["rows"] = places, len(truth)
    return dict(counts)


def reference_for_generation() -> dict[str, pd.DataFrame]:
    """The reference tables the generator draws communes from (the pipeline's own, from the
    Parquet cache; no polygons)."""
    from warehouse.reference import cached_reference, read_reference, reference_version

    files = cached_reference(reference_version())
    if files is None:
        return read_reference()
    columns = ["code_insee", "nom", "type", "parent_code", "centre_lat", "centre_lon"]
    return {k: pd.read_parquet(v, columns=columns if k == "communes" else None)
            for k, v in files.items()}
