"""Build samples/matching_pairs.csv: the labelled pairs the matcher is evaluated on.

Run after `uv run siae sync --demo` (it reads the demo's records from the warehouse). For each
real structure of the demo, synthetic variations that a second source could plausibly publish
are paired with it (seeded, reproducible):

  same place:  typo (a letter dropped or swapped), abbreviation (ASSOCIATION → ASSOC, SAINT →
               ST, AVENUE → AV, case), missing SIRET (the same record without SIRET or
               contacts), moved (a new address in the same commune, the same phone or e-mail)
  different:   neighbour (another structure of the same commune), antenne (the same name at
               another address of the commune, other contacts), same building (another name
               at the same address), similar name (a shared word, another structure)

In every pair the variant has no SIRET: pairs with two SIRETs are decided by rule, not by the
matcher.
"""

from __future__ import annotations

import csv
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from transforms.matching import name_tokens  # noqa: E402
from warehouse.db import connect, fetch_frame  # noqa: E402
from warehouse.paths import WarehousePaths  # noqa: E402

FIELDS = ("siret", "nom", "adresse", "code_postal", "commune", "code_insee", "telephone",
          "courriel", "site_web", "latitude", "longitude")
STREETS = ("rue des Tanneurs", "avenue de la Gare", "chemin du Moulin", "place de l'Église",
           "route Nationale", "impasse des Acacias", "boulevard de la Liberté")
ABBREVIATIONS = [(r"\bASSOCIATION\b", "ASSOC"), (r"\bAssociation\b", "Asso"),
                 (r"\bSAINT\b", "ST"), (r"\bSaint\b", "St"), (r"\bAvenue\b", "Av."),
                 (r"\bAVENUE\b", "AV"), (r"\bRue\b", "R."), (r"\bBoulevard\b", "Bd")]


def typo(text: str, rng: random.Random) -> str:
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    if len(letters) < 6:
        return text + "S"
    i = rng.choice(letters[1:-1])
    if rng.random() < 0.5:
        return text[:i] + text[i + 1:]
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


def abbreviate(text: str, rng: random.Random) -> str:
    out = text
    for pattern, short in ABBREVIATIONS:
        out = re.sub(pattern, short, out)
    if out == text:
        out = text.title() if text.isupper() else text.upper()
    if rng.random() < 0.5:
        out = f"Association {out}"
    return out


def jitter(r: dict, rng: random.Random, metres: float) -> None:
    if r.get("latitude") is not None:
        r["latitude"] = round(r["latitude"] + rng.uniform(-1, 1) * metres / 111_000, 6)
        r["longitude"] = round(r["longitude"] + rng.uniform(-1, 1) * metres / 78_000, 6)


def variant(base: dict, **changes) -> dict:
    out = {**base, "siret": None, **changes}
    return out


def main() -> None:
    rng = random.Random(20261126)
    with connect(WarehousePaths.resolve().database, read_only=True) as con:
        records = fetch_frame(con, "SELECT * FROM core.records WHERE siret IS NOT NULL "
                                   "AND code_insee IS NOT NULL ORDER BY siret, source")
    bases: dict[str, dict] = {}
    for r in records.to_dict("records"):
        bases.setdefault(r["siret"], {f: r.get(f) for f in FIELDS})
    by_commune = defaultdict(list)
    for b in bases.values():
        by_commune[b["code_insee"]].append(b)
    pairs = []

    def add(label, kind, left, right):
        pairs.append((label, kind, left, right))

    for siret, b in sorted(bases.items()):
        v = variant(b, nom=typo(b["nom"], rng), telephone=None if rng.random() < 0.5
                    else b["telephone"])
        jitter(v, rng, 40)
        add("same", "typo", b, v)
        v = variant(b, nom=abbreviate(b["nom"], rng),
                    adresse=abbreviate(b["adresse"] or "", rng) if b["adresse"] else None)
        add("same", "abbreviation", b, v)
        add("same", "missing_siret", b, variant(b, telephone=None, courriel=None,
                                                site_web=None))
        if b["telephone"] or b["courriel"]:
            v = variant(b, adresse=f"{rng.randint(1, 90)} {rng.choice(STREETS)}",
                        latitude=None, longitude=None)
            add("same", "moved", b, v)
        v = variant(b, adresse=f"{rng.randint(1, 90)} {rng.choice(STREETS)}",
                    telephone=f"+3346571{rng.randint(0, 9999):04d}", courriel=None,
                    site_web=None)
        jitter(v, rng, 3000)
        add("different", "antenne", b, v)
        # Other structures of the commune, not namesakes (two SIRETs with one name are
        # antennes, which no matcher can tell apart at one address).
        others = [o for o in by_commune[b["code_insee"]] if o["siret"] != siret
                  and name_tokens(o["nom"]) != name_tokens(b["nom"])]
        if others:
            o = rng.choice(others)
            add("different", "neighbour", b, variant(o))
            add("different", "same_building",
                b, variant(o, adresse=b["adresse"], latitude=b["latitude"],
                           longitude=b["longitude"]))
        word = next(iter(w for w in (b["nom"] or "").split() if len(w) > 4), None)
        if word and others:
            o = rng.choice(others)
            add("different", "similar_name", b, variant(o, nom=f"{o['nom']} {word}"))

    out = ROOT / "samples" / "matching_pairs.csv"
    header = ["pair", "label", "kind"] + [f"left_{f}" for f in FIELDS] + [
        f"right_{f}" for f in FIELDS]
    with out.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for n, (label, kind, left, right) in enumerate(pairs, start=1):
            w.writerow([n, label, kind] + ["" if left.get(f) is None else left[f] for f in FIELDS]
                       + ["" if right.get(f) is None else right[f] for f in FIELDS])
    counts = defaultdict(int)
    for label, kind, _, _ in pairs:
        counts[(label, kind)] += 1
    print(f"{out}: {len(pairs)} pairs", dict(sorted(counts.items())))


if __name__ == "__main__":
    main()
