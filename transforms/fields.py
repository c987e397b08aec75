"""The canonical fields, declared once.

Every layer takes its columns from this table, in this order: what a source may map
(`mappable`), the records of staging and `core.records` (`record`), the golden records of
`core.structures` (`structure`), and the publication (`published`: `marts.siae`, the GeoJSON
properties, the CSV, Parquet and datapackage columns). The DuckDB, Table Schema and Arrow
types, the column comments and the README's field table are derived from it. Adding a
published field is one line here plus the transform that fills it.

`merge` says how survivorship fills a structure's field from its records (transforms.merge):
`first` the highest-priority record that has it, `address` the fields of the chosen address
block (they travel together), `kinds` the union of the records' confirmed kinds,
`candidates` the kinds records propose without confirming them (minus the confirmed ones),
`latest` the most recent value, `closed` closed as soon as one source says so, `postes` from
the records' open positions, `sources` the records' sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

# Field type → (DuckDB type, Table Schema type, Arrow type).
TYPES = {
    "string": ("VARCHAR", "string", pa.string()),
    "integer": ("INTEGER", "integer", pa.int32()),
    "number": ("DOUBLE", "number", pa.float64()),
    "boolean": ("BOOLEAN", "boolean", pa.bool_()),
    "date": ("DATE", "date", pa.date32()),
    "list": ("VARCHAR[]", "list", pa.list_(pa.string())),
    "json": ("JSON", "object", pa.string()),
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # a key of TYPES
    description: str  # French for published fields (the datapackage, the site, comments)
    # Where it is a column: R staging.<source> and core.records, S core.structures,
    # P marts.siae and every published file.
    layers: str = ""
    mappable: bool = False  # a source may map one of its columns to it (sources.toml)
    merge: str | None = None  # how survivorship fills it (see the module docstring)
    review: bool = False  # shown side by side to analysts (siae review, labelled pairs)
    datainclusion: str | None = None  # the data·inclusion schema v1 field it maps to

    @property
    def record(self) -> bool:
        return "R" in self.layers

    @property
    def structure(self) -> bool:
        return "S" in self.layers

    @property
    def published(self) -> bool:
        return "P" in self.layers

    @property
    def duckdb_type(self) -> str:
        return TYPES[self.type][0]

    @property
    def schema_type(self) -> str:
        return TYPES[self.type][1]

    @property
    def arrow_type(self) -> pa.DataType:
        return TYPES[self.type][2]


_f = Field
FIELDS: tuple[Field, ...] = (
    _f("source", "string", "Source de l'enregistrement (nom dans sources.toml)", layers="R"),
    _f("source_id", "string", "Identifiant de l'enregistrement dans sa source (sinon une "
       "empreinte de la ligne)", layers="R", mappable=True),
    _f("row_number", "integer", "Ligne de l'enregistrement dans le fichier de la source",
       layers="R"),
    _f("structure_id", "string", "Identifiant stable de la structure (lieu) dans SIAE Atlas",
       layers="SP", datainclusion="id"),
    _f("identity_key", "string", "Clé d'identité affichée (siret:… ou record:source:id)",
       layers="S"),
    _f("siret", "string", "SIRET de l'établissement (14 chiffres)", layers="RSP",
       mappable=True, merge="first", review=True, datainclusion="siret"),
    _f("siren", "string", "SIREN de l'entreprise (9 premiers chiffres du SIRET)",
       layers="RSP", merge="first"),
    _f("nom", "string", "Nom de la structure", layers="RSP", mappable=True,
       merge="first", review=True, datainclusion="nom"),
    _f("enseigne", "string", "Enseigne ou nom d'usage", layers="RSP", mappable=True,
       merge="first", review=True),
    _f("types", "list", "Types de structure (ACI, AI, EI, ETTI, EITI; GEIQ, EA, EATT si "
       "configurés)", layers="RSP", mappable=True, merge="kinds", review=True,
       datainclusion="reseaux_porteurs"),
    _f("types_candidats", "list", "Types qu'une source donne sans pouvoir les rattacher à cet "
       "établissement (par SIREN): non publiés tant qu'une autre source ne les confirme pas",
       layers="RS", mappable=True, merge="candidates"),
    _f("adresse", "string", "Numéro et voie", layers="RSP", mappable=True,
       merge="address", review=True, datainclusion="adresse"),
    _f("complement_adresse", "string", "Complément d'adresse", layers="RSP",
       mappable=True, merge="address", review=True, datainclusion="complement_adresse"),
    _f("code_postal", "string", "Code postal", layers="RSP", mappable=True,
       merge="address", review=True, datainclusion="code_postal"),
    _f("commune", "string", "Nom officiel de la commune", layers="RSP", mappable=True,
       merge="address", review=True, datainclusion="commune"),
    _f("code_insee", "string", "Code INSEE de la commune (Paris, Lyon, Marseille: la ville)",
       layers="RSP", mappable=True, merge="address", review=True,
       datainclusion="code_insee"),
    _f("code_arrondissement", "string", "Code INSEE de l'arrondissement municipal, s'il y a "
       "lieu", layers="RSP", merge="address"),
    _f("departement", "string", "Code du département (2A/2B, 971…976; 975, 977, 978 pour "
       "les collectivités d'outre-mer)", layers="RSP",
       mappable=True, merge="address"),
    _f("region", "string", "Code de la région (COG)", layers="RSP", merge="address"),
    _f("commune_method", "string", "Comment la commune a été trouvée dans le référentiel",
       layers="R"),
    _f("latitude", "number", "Latitude WGS 84", layers="RSP", mappable=True,
       review=True, datainclusion="latitude"),
    _f("longitude", "number", "Longitude WGS 84", layers="RSP", mappable=True,
       review=True, datainclusion="longitude"),
    _f("geo_precision", "string", "Précision du point: housenumber, street, locality, "
       "municipality (centre de la commune) ou source (coordonnées fournies par une source)",
       layers="SP"),
    _f("geo_score", "number", "Score du géocodeur (0 à 1), vide sinon", layers="SP"),
    _f("geo_source", "string", "Origine du point: une source, le géocodeur, ou communes",
       layers="SP"),
    _f("geo_refused", "list", "Points des sources refusés, et pourquoi", layers="S"),
    _f("telephone", "string", "Téléphone au format E.164", layers="RSP", mappable=True,
       merge="first", review=True, datainclusion="telephone"),
    _f("courriel", "string", "Adresse électronique", layers="RSP", mappable=True,
       merge="first", review=True, datainclusion="courriel"),
    _f("site_web", "string", "Site internet", layers="RSP", mappable=True,
       merge="first", review=True, datainclusion="site_web"),
    _f("description", "string", "Présentation de la structure par une de ses sources",
       layers="RSP", mappable=True, merge="first", datainclusion="description"),
    _f("postes", "json", "Postes de la source (les emplois de l'inclusion): code ROME, "
       "intitulé, recrutement ouvert, dates", layers="R"),
    _f("recrute", "boolean", "Recrute en ce moment (au moins un poste ouvert); vide si aucune "
       "source ne le dit", layers="SP", merge="postes"),
    _f("postes_ouverts", "list", "Intitulés des postes ouverts", layers="SP", merge="postes"),
    _f("date_maj", "date", "Date de mise à jour la plus récente parmi les sources",
       layers="RSP", mappable=True, merge="latest", review=True,
       datainclusion="date_maj"),
    _f("etat_administratif", "string", "A ouvert, F fermé (selon une source)",
       layers="RS", mappable=True, merge="closed"),
    _f("date_fermeture", "date", "Date de fermeture de l'établissement", layers="RS",
       mappable=True, merge="latest"),
    _f("siret_signature", "string", "SIRET de signature de la convention (ASP)", layers="R",
       mappable=True),
    _f("siret_ecarte", "string", "SIRET donné par la source mais écarté (invalide ou factice): "
       "l'enregistrement est gardé comme un lieu sans SIRET", layers="R"),
    _f("sources", "list", "Sources qui décrivent cette structure", layers="SP",
       merge="sources"),
    _f("provenance", "json", "Source de chaque champ (champ → source)", layers="S"),
)

BY_NAME = {f.name: f for f in FIELDS}


def _names(flag: str) -> tuple[str, ...]:
    return tuple(f.name for f in FIELDS if getattr(f, flag))


MAPPABLE = _names("mappable")
RECORD = _names("record")
STRUCTURE = _names("structure")
PUBLISHED = _names("published")
REVIEWED = _names("review")


def published_fields() -> tuple[Field, ...]:
    """The published fields in publication order."""
    return tuple(f for f in FIELDS if f.published)


def duckdb_types(names: tuple[str, ...]) -> dict[str, str]:
    """Column → DuckDB type for the given fields, in the given order."""
    return {n: BY_NAME[n].duckdb_type for n in names}


def merged_by(strategy: str) -> tuple[str, ...]:
    """The structure fields survivorship fills with `strategy`, in table order."""
    return tuple(f.name for f in FIELDS if f.merge == strategy)


README_START = "<!-- fields: generated from transforms/fields.py -->"
README_END = "<!-- fields: end -->"


def readme_table() -> str:
    """The README's table of the canonical fields (kept equal to the README by a test;
    `uv run python scripts/write_readme_fields.py` rewrites it)."""
    where = {"R": "records", "S": "structures", "P": "**published**"}
    lines = [README_START,
             "| field | type | in | mappable | description | data·inclusion |",
             "|---|---|---|---|---|---|"]
    for f in FIELDS:
        layers = ", ".join(where[c] for c in f.layers)
        lines.append(f"| `{f.name}` | {f.schema_type} | {layers} | "
                     f"{'yes' if f.mappable else ''} | {f.description} | "
                     f"{f'`{f.datainclusion}`' if f.datainclusion else ''} |")
    return "\n".join([*lines, README_END])
