"""The mini-site's data, shaped from a publication: what each page shows, in French.

Pure functions: the published rows in, the compact index the map page loads, the details a
popup or a structure page shows, the counts of an area, the schema.org description. The
files and pages are written by flows/site.py.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

import orjson
import phonenumbers

from transforms.text import combining_marks

KINDS = {
    "ACI": ("Atelier et chantier d'insertion",
            "Une structure, souvent associative, qui embauche en CDD d'insertion des "
            "personnes très éloignées de l'emploi sur une activité d'utilité sociale "
            "(espaces verts, maraîchage, recyclerie, bâtiment…), avec un accompagnement "
            "social et professionnel."),
    "AI": ("Association intermédiaire",
           "Une association qui embauche des personnes en parcours d'insertion et les met à "
           "disposition de particuliers, d'associations, de collectivités ou d'entreprises "
           "pour des missions ponctuelles, avec un accompagnement."),
    "EI": ("Entreprise d'insertion",
           "Une entreprise qui produit des biens ou des services sur un marché ordinaire et "
           "embauche en CDD d'insertion des personnes en parcours, avec un accompagnement."),
    "ETTI": ("Entreprise de travail temporaire d'insertion",
             "Une entreprise de travail temporaire dont les intérimaires sont des personnes "
             "en parcours d'insertion, mises à disposition d'entreprises clientes, avec un "
             "accompagnement."),
    "EITI": ("Entreprise d'insertion par le travail indépendant",
             "Une structure qui accompagne des personnes en parcours vers une activité de "
             "travailleur indépendant, en leur apportant du travail et un accompagnement."),
    "GEIQ": ("Groupement d'employeurs pour l'insertion et la qualification",
             "Un groupement d'entreprises qui embauche des personnes éloignées de l'emploi, "
             "les forme et les met à disposition de ses entreprises adhérentes."),
    "EA": ("Entreprise adaptée",
           "Une entreprise dont la majorité des salariés sont des travailleurs handicapés."),
    "EATT": ("Entreprise adaptée de travail temporaire",
             "Une entreprise adaptée qui met à disposition des travailleurs handicapés en "
             "intérim."),
}
# France métropolitaine, for the first view of a national publication.
MAINLAND = {"south": 41.3, "west": -5.3, "north": 51.2, "east": 9.7}
OVERSEAS = {"971": "Guadeloupe", "972": "Martinique", "973": "Guyane", "974": "La Réunion",
            "975": "Saint-Pierre-et-Miquelon", "976": "Mayotte", "977": "Saint-Barthélemy",
            "978": "Saint-Martin"}
INDEX_FIELDS = ["id", "nom", "types", "commune", "cp", "dep", "reg", "lat", "lon", "recrute",
                "approx", "new"]


@functools.cache
def _combining() -> dict[int, str | None]:
    """Every combining mark, for one `str.translate` that deletes them (a Python test per
    character was most of the time of sorting a national index by name), and the ligatures
    people type as two letters ("oeuvre" finds "Œuvre"). Made on first use: it takes 70 ms."""
    return {**combining_marks(), **{ord(k): v for k, v in _LIGATURES.items()}}


_LIGATURES = {"œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ß": "ss", "ẞ": "ss"}

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_ST, _STE = re.compile(r"\bst\b"), re.compile(r"\bste\b")


def fold(text: str | None) -> str:
    """A text folded for a tolerant search, the same way the pages' script folds what is
    typed: no accents, œ/æ/ß as oe/ae/ss, lower case, hyphens and apostrophes as spaces,
    st/ste as saint/sainte.
    """
    text = text or ""
    if not text.isascii():  # ASCII has no accents to take off
        text = unicodedata.normalize("NFD", text).translate(_combining())
    text = _NOT_ALNUM.sub(" ", text.lower())
    text = _STE.sub("sainte", _ST.sub("saint", text))
    return " ".join(text.split())


_GEOGRAPHIC = re.compile(r"\+33([1-79])(\d\d)(\d\d)(\d\d)(\d\d)")


def phone_display(e164: str | None) -> str | None:
    """A phone as people write it in France: "04 65 71 07 59" (overseas: "0262 …")."""
    if not e164:
        return None
    # mainland numbers other than 08 are always in pairs; parsing each with phonenumbers
    # took a third of a site's build
    if len(e164) == 12 and (m := _GEOGRAPHIC.fullmatch(e164)):
        return "0{} {} {} {} {}".format(*m.groups())
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def safe_url(url: str | None) -> str | None:
    """An http(s) link, never another scheme (javascript:, data:)."""
    return url if url and re.match(r"^https?://", url, flags=re.I) else None


def index_rows(rows: Iterable[Mapping], added: set[str]) -> list[list]:
    """The compact rows the map page loads for every structure on the map (INDEX_FIELDS)."""
    out = []
    for r in rows:
        if r.get("latitude") is None or r.get("longitude") is None:
            continue
        out.append([r["structure_id"], r.get("nom"), list(r.get("types") or []),
                    r.get("commune"), r.get("code_postal"), r.get("departement"),
                    r.get("region"), round(float(r["latitude"]), 6),
                    round(float(r["longitude"]), 6), r.get("recrute"),
                    r.get("geo_precision") == "municipality", r["structure_id"] in added])
    # by name as people read them (the page lists them in this order)
    return sorted(out, key=lambda x: (fold(x[1]), x[0]))


def details(r: Mapping) -> dict:
    """What a popup or a card shows beyond the index."""
    return {
        "enseigne": r.get("enseigne"), "adresse": r.get("adresse"),
        "complement": r.get("complement_adresse"),
        "telephone": phone_display(r.get("telephone")), "tel": r.get("telephone"),
        "courriel": r.get("courriel"), "site_web": safe_url(r.get("site_web")),
        "postes": list(r.get("postes_ouverts") or []),
    }


def area_summary(rows: Iterable[Mapping]) -> dict:
    """Counts by kind, how many recruit, how many are on the map."""
    rows = list(rows)
    kinds = Counter(k for r in rows for k in (r.get("types") or []))
    return {"structures": len(rows),
            "by_kind": [(k, KINDS.get(k, (k,))[0], kinds[k]) for k in KINDS if kinds[k]],
            "recrutent": sum(1 for r in rows if r.get("recrute")),
            "on_map": sum(1 for r in rows if r.get("latitude") is not None)}


def by_area(rows: Iterable[Mapping]) -> tuple[dict, dict]:
    """Rows grouped by région and by département."""
    regions, deps = defaultdict(list), defaultdict(list)
    for r in rows:
        if r.get("region"):
            regions[r["region"]].append(r)
        if r.get("departement"):
            deps[r["departement"]].append(r)
    return dict(regions), dict(deps)


def json_ld(r: Mapping, url: str) -> str:
    """schema.org Organization of a structure, as JSON safe inside a <script> element."""
    doc = {"@context": "https://schema.org", "@type": "Organization", "name": r.get("nom"),
           "url": url, "identifier": r.get("siret"),
           "address": {"@type": "PostalAddress", "streetAddress": r.get("adresse"),
                       "postalCode": r.get("code_postal"),
                       "addressLocality": r.get("commune"), "addressCountry": "FR"}}
    if r.get("latitude") is not None:
        doc["geo"] = {"@type": "GeoCoordinates", "latitude": r["latitude"],
                      "longitude": r["longitude"]}
    if r.get("telephone"):
        doc["telephone"] = r["telephone"]
    if r.get("courriel"):
        doc["email"] = r["courriel"]
    if safe_url(r.get("site_web")):
        doc["sameAs"] = r["site_web"]
    return script_json({k: v for k, v in doc.items() if v is not None})


def script_json(doc: object) -> str:
    """JSON to put inside a <script> element: a "</script>" in a value cannot end it.
    Compact, by orjson (an area page's markers are a fifth of its making), by the json
    module for what orjson refuses (numpy values), with the same text."""
    try:
        text = orjson.dumps(doc).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=_plain)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _plain(value: object) -> object:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (lat, lon) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0088 * math.asin(math.sqrt(h))
