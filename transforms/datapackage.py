"""The Frictionless Data Package of a release: one resource per file, with the Table Schema
of each table and a JSON Schema of each GeoJSON file. `frictionless validate datapackage.json`
passes on every release (tested, and run in CI).

Frictionless reads Parquet through pandas, which gives list columns as arrays that no Table
Schema type accepts, and it cannot count a Parquet file's bytes: the Parquet resource declares
its list columns as `any` (described as lists) and keeps its size and hash under `x-bytes` and
`x-sha256`. A GeoJSON resource's JSON Schema sits in `jsonSchema` (frictionless does not apply
it; the tests do, with `jsonschema`).
"""

from __future__ import annotations

import datetime as dt

from transforms import datainclusion_export as di
from transforms.kinds import KNOWN_KINDS
from transforms.publication import FIELDS, table_schema

_JSON_TYPES = {"string": "string", "number": "number", "integer": "integer",
               "boolean": "boolean", "date": "string", "list": "array", "object": "object"}


def parquet_schema() -> dict:
    """The Table Schema of siae.parquet: the CSV's, list columns typed `any`."""
    schema = table_schema()
    for f in schema["fields"]:
        if f["type"] == "list":
            f["type"] = "any"
            f["description"] += " (liste de chaînes: list<string> en Parquet)"
            for key in ("delimiter", "itemType", "categories"):
                f.pop(key, None)
    return schema


def geojson_schema() -> dict:
    """A JSON Schema of the published GeoJSON: a FeatureCollection of Points whose id is the
    structure_id and whose properties are the published fields, typed."""
    properties = {}
    for name, kind, description in FIELDS:
        prop: dict = {"type": [_JSON_TYPES[kind], "null"], "description": description}
        if kind == "date":
            prop["format"] = "date"
        if kind == "list":
            prop["items"] = {"type": "string"}
        if name == "types":
            prop["items"] = {"enum": list(KNOWN_KINDS)}
        if name == "structure_id":
            prop["type"] = "string"
        properties[name] = prop
    feature = {
        "type": "object",
        "required": ["type", "id", "geometry", "properties"],
        "properties": {
            "type": {"const": "Feature"},
            "id": {"type": "string"},
            "geometry": {
                "type": "object", "required": ["type", "coordinates"],
                "properties": {
                    "type": {"const": "Point"},
                    "coordinates": {"type": "array", "minItems": 2, "maxItems": 2,
                                    "prefixItems": [
                                        {"type": "number", "minimum": -180, "maximum": 180},
                                        {"type": "number", "minimum": -90, "maximum": 90}]},
                },
            },
            "properties": {"type": "object", "required": [n for n, _, _ in FIELDS],
                           "properties": properties, "additionalProperties": False},
        },
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "SIAE Atlas GeoJSON", "type": "object",
            "required": ["type", "features"],
            "properties": {"type": {"const": "FeatureCollection"},
                           "features": {"type": "array", "items": feature}}}


def resource(path: str, size: int, sha256: str) -> dict:
    """The descriptor of one file of a release, of `size` bytes and digest `sha256`."""
    stem, ext = path.rsplit(".", 1)
    res: dict = {"name": f"{stem.replace('/', '-')}-{ext}", "path": path}
    if ext == "parquet":
        res.update({"format": "parquet", "mediatype": "application/vnd.apache.parquet",
                    "schema": parquet_schema(), "x-bytes": size,
                    "x-sha256": sha256})
        return res
    res.update(bytes=size, hash=f"sha256:{sha256}")
    if path == "datainclusion/structures.csv":
        res.update(format="csv", mediatype="text/csv", encoding="utf-8",
                   dialect={"delimiter": ",", "header": True}, schema=di.table_schema(),
                   description="Les mêmes structures au schéma data·inclusion v1 "
                               "(structures), reseaux_porteurs en liste JSON")
    elif path == "datainclusion/structures.json":
        res.update(format="json", mediatype="application/json",
                   description="Les mêmes structures au schéma data·inclusion v1 (structures)",
                   conformsTo="https://pypi.org/project/data-inclusion-schema/ (v1, Structure)")
    elif ext == "csv":
        res.update(format="csv", mediatype="text/csv", encoding="utf-8",
                   dialect={"delimiter": ",", "header": True}, schema=table_schema())
    elif ext == "geojson":
        res.update(format="geojson", mediatype="application/geo+json",
                   jsonSchema=geojson_schema())
    elif ext == "gpkg":
        res.update(format="gpkg", mediatype="application/geopackage+sqlite3")
    return res


def datapackage(resources: list[dict], sources: list[dict], created: dt.datetime | None,
                rows: int) -> dict:
    """The Frictionless Data Package descriptor of a publication."""
    return {
        "profile": "data-package",
        "name": "siae-atlas",
        "title": "SIAE Atlas — structures d'insertion par l'activité économique",
        "description": "Annuaire géolocalisé des SIAE (ACI, AI, EI, ETTI, EITI): une ligne par "
                       "lieu, fusionné à partir des sources listées.",
        "licenses": [{"name": "etalab-2.0", "title": "Licence Ouverte / Open Licence 2.0",
                      "path": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"}],
        "created": created.isoformat(timespec="seconds") if created else None,
        "rows": rows,
        "sources": sources,
        "resources": resources,
    }
