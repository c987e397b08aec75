"""Locating a structure: an accepted geocoder answer, else a plausible source point, else the
commune's (or arrondissement's) centre.

A source's point is plausible when it lies in France (metropolitan or overseas) and inside its
commune or at most `max_km_outside` from the commune's border; sources swap latitude and
longitude, write 0,0, or keep a head office's point, and those must not reach a map.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from transforms.geocoding import distance_km

# Bounding boxes (lon_min, lon_max, lat_min, lat_max): metropolitan France with Corsica,
# Guadeloupe/Martinique, Saint-Martin/Saint-Barthélemy, Saint-Pierre-et-Miquelon, Guyane,
# La Réunion, Mayotte.
FRANCE_BOXES = (
    (-5.5, 10.0, 41.0, 51.5),
    (-62.0, -60.5, 14.0, 16.6),
    (-63.2, -62.7, 17.8, 18.2),
    (-56.6, -56.0, 46.7, 47.2),
    (-54.7, -51.0, 2.0, 6.0),
    (55.0, 56.0, -21.5, -20.8),
    (44.9, 45.4, -13.1, -12.5),
)
_KM_PER_DEGREE = 111.32


def in_france(lon: float, lat: float) -> bool:
    """True when the point falls in one of France's boxes."""
    a, b, c, d = FRANCE_BOXES[0]
    if a <= lon <= b and c <= lat <= d:  # mainland, nearly every point: no generator
        return True
    return any(a <= lon <= b and c <= lat <= d for a, b, c, d in FRANCE_BOXES[1:])


@functools.lru_cache(maxsize=4096)
def _polygon(polygon_wkb: bytes):
    """A commune's polygon, parsed and prepared once: a commune holds many structures."""
    polygon = shapely.from_wkb(polygon_wkb)
    shapely.prepare(polygon)
    return polygon


def forget_polygons() -> None:
    """Drop the parsed polygons once the structures are located: a national run's few
    thousand, and the memory pages they hold on to, would stay with the steps after."""
    _polygon.cache_clear()


def km_outside(polygon_wkb: bytes, lon: float, lat: float) -> float:
    """Distance in km from the point to the polygon (0 inside), on a local flat projection.

    At the scale of a commune an equirectangular projection centred on the point is accurate to
    well under 1 %, which is all a plausibility check needs.
    """
    polygon = _polygon(polygon_wkb)
    if shapely.intersects_xy(polygon, lon, lat):  # a point intersects what covers it
        return 0.0
    kx = _KM_PER_DEGREE * math.cos(math.radians(lat))

    def to_km(coords):
        out = coords.copy()
        out[:, 0] = (coords[:, 0] - lon) * kx
        out[:, 1] = (coords[:, 1] - lat) * _KM_PER_DEGREE
        return out

    return float(shapely.transform(polygon, to_km).distance(shapely.Point(0, 0)))


@dataclass(frozen=True)
class Location:
    longitude: float | None
    latitude: float | None
    geo_precision: str | None  # "source" | "municipality" | None
    geo_source: str | None  # the source whose point was kept, "ban", or "communes"
    rejected: tuple[str, ...] = ()  # why candidate points were refused
    geo_score: float | None = None


def km_outside_many(polygons: Sequence[bytes], lons: Sequence[float],
                    lats: Sequence[float]) -> np.ndarray:
    """`km_outside` for each (polygon, lon, lat), vectorised: a country holds hundreds of
    thousands of points, and one shapely call per point costs more than its geometry."""
    count = len(polygons)
    km = np.zeros(count, dtype=float)
    if not count:
        return km
    parsed = {wkb: _polygon(wkb) for wkb in dict.fromkeys(polygons)}
    geoms = np.array([parsed[wkb] for wkb in polygons], dtype=object)
    lon, lat = np.asarray(lons, dtype=float), np.asarray(lats, dtype=float)
    outside = np.flatnonzero(~shapely.intersects_xy(geoms, lon, lat))
    sizes = shapely.get_num_coordinates(geoms[outside])
    # batches of about a million vertices: each point needs its own projected copy
    start = 0
    while start < len(outside):
        stop = start + max(1, int(np.searchsorted(np.cumsum(sizes[start:]), 1_000_000)))
        picked = outside[start:stop]
        owner = np.repeat(np.arange(len(picked)), sizes[start:stop])
        kx = _KM_PER_DEGREE * np.cos(np.radians(lat[picked]))

        def to_km(coords, picked=picked, owner=owner, kx=kx):
            out = coords.copy()
            out[:, 0] = (coords[:, 0] - lon[picked][owner]) * kx[owner]
            out[:, 1] = (coords[:, 1] - lat[picked][owner]) * _KM_PER_DEGREE
            return out

        km[picked] = shapely.distance(shapely.transform(geoms[picked], to_km),
                                      shapely.points(0.0, 0.0))
        start = stop
    return km


def candidate_points(flat: Sequence) -> list[tuple[float, float, str]]:
    """The (lon, lat, source) points of a structure's `coordinate_candidates`, which the
    merge keeps flat: lon, lat, source, lon, lat, source..."""
    return list(zip(flat[0::3], flat[1::3], flat[2::3], strict=True))


def choose_location(
    candidates: Sequence[tuple[float, float, str]],
    polygon_wkb: bytes | None,
    centre: tuple[float, float] | None,
    max_km_outside: float,
    geocoded: tuple | None = None,
    kms: Sequence[float] | None = None,
) -> Location:
    """An accepted geocoder answer (lon, lat, type, score[, citycode]), else the first plausible
    (lon, lat, source) candidate, else the commune's centre, else nothing.

    Candidates come in survivorship order (highest priority first). `kms`, when known
    already (`km_outside_many`): each candidate's distance to the polygon.
    """
    refused, plausible = [], None
    for n, (lon, lat, source) in enumerate(candidates):
        if not in_france(lon, lat):
            refused.append(f"{source}: ({lon}, {lat}) outside France")
            continue
        if polygon_wkb is not None:
            km = kms[n] if kms is not None else km_outside(polygon_wkb, lon, lat)
            if km > max_km_outside:
                refused.append(f"{source}: ({lon}, {lat}) {km:.1f} km outside its commune")
                continue
        if plausible is None:
            plausible = (lon, lat, source)
    # Every candidate is judged, even when the geocoder's answer wins, so that implausible
    # source points are reported to the source's owner.
    if geocoded is not None:
        lon, lat, kind, score = geocoded[:4]
        return Location(round(lon, 6), round(lat, 6), kind, "ban", tuple(refused), score)
    if plausible is not None:
        lon, lat, source = plausible
        return Location(round(lon, 6), round(lat, 6), "source", source, tuple(refused))
    if centre is not None:
        return Location(
            round(centre[0], 6), round(centre[1], 6), "municipality", "communes", tuple(refused)
        )
    return Location(None, None, None, None, tuple(refused))


# What locating adds to each structure.
LOCATION_COLUMNS = ("longitude", "latitude", "geo_precision", "geo_score", "geo_source",
                    "geo_refused")


def locate_structures(structures, shapes: dict[str, dict], max_km_outside: float,
                      geocoded: dict[str, tuple] | None = None):
    """Add longitude, latitude, geo_precision, geo_score, geo_source and geo_refused to
    merged structures (a copy).

    `shapes` maps commune and arrondissement codes to {"polygon", "centre"}; an
    arrondissement's shape is preferred to its city's. `geocoded` holds the accepted geocoder
    answers by structure_id.
    """
    out = structures.copy()
    for column, values in locations(structures, shapes, max_km_outside, geocoded).items():
        out[column] = values
    return out


def locations(structures, shapes: dict[str, dict], max_km_outside: float,
              geocoded: dict[str, tuple] | None = None) -> dict[str, list]:
    """The LOCATION_COLUMNS of each structure, as `locate_structures` adds them."""
    geocoded = geocoded or {}
    # column by column, not a dict per structure: a national set's 370,000 dicts were a
    # second of this step and memory at the run's peak
    ids = structures["structure_id"].tolist()
    candidates = [candidate_points(c) for c in structures["coordinate_candidates"].tolist()]
    found = [shapes.get(a or "") or shapes.get(c or "") or {} for a, c in zip(
        _column(structures, "code_arrondissement"), _column(structures, "code_insee"),
        strict=True)]
    # How far each candidate point lies outside its commune, for all structures at once
    polygons, lons, lats = [], [], []
    for points, shape in zip(candidates, found, strict=True):
        if shape.get("polygon") is not None:
            for lon, lat, _ in points:
                polygons.append(shape["polygon"])
                lons.append(lon)
                lats.append(lat)
    kms = iter(km_outside_many(polygons, lons, lats).tolist())
    located = []
    for sid, points, shape in zip(ids, candidates, found, strict=True):
        polygon = shape.get("polygon")
        located.append(
            choose_location(
                points,
                polygon,
                shape.get("centre"),
                max_km_outside,
                geocoded.get(sid),
                [next(kms) for _ in points] if polygon is not None else None,
            )
        )
    return {"longitude": [loc.longitude for loc in located],
            "latitude": [loc.latitude for loc in located],
            "geo_precision": [loc.geo_precision for loc in located],
            "geo_score": [loc.geo_score for loc in located],
            "geo_source": [loc.geo_source for loc in located],
            "geo_refused": [list(loc.rejected) for loc in located]}


def _column(frame: pd.DataFrame, name: str) -> list:
    """A column's values as a list; NULLs when the frame lacks it."""
    return frame[name].tolist() if name in frame.columns else [None] * len(frame)


def disagreements(located: pd.DataFrame, max_km: float) -> list[list]:
    """Source points far from the geocoder's, or refused (outside France or their commune)."""
    out = []
    for sid, source, lon0, lat0, candidates, refused in zip(*(located[c].tolist() for c in (
            "structure_id", "geo_source", "longitude", "latitude", "coordinate_candidates",
            "geo_refused")), strict=True):
        if source == "ban":
            ban = (lon0, lat0)
            for lon, lat, source_name in candidate_points(candidates):
                d = distance_km((lon, lat), ban)
                if d > max_km:
                    out.append([sid, source_name, lon, lat, ban[0], ban[1], round(d, 3),
                                f"{d:.1f} km from the geocoder's point"])
        for why in refused:
            out.append([sid, why.split(":")[0], None, None, None, None, None, why])
    return out


def communes_from_geocoder(structures: pd.DataFrame, geocoded: dict[str, tuple],
                          communes: dict[str, dict]) -> pd.DataFrame:
    """Give a commune to the structures the reference could not place (a name a commune had
    before a renaming, "Capavenir Vosges") from the accepted geocoder answer's `citycode`.

    `communes` maps codes to reference rows (code_insee, nom, type, parent_code, departement,
    region); an arrondissement code folds into its city, kept as `code_arrondissement`. The
    provenance of the address fields so filled says `ban`.
    """
    out = structures.copy()
    # only the structures without a commune are looked at (a few in 370,000)
    codes = _column(out, "code_insee")
    for n in [n for n, c in enumerate(codes) if not c]:
        i, sid = out.index[n], out["structure_id"].iat[n]
        answer = geocoded.get(sid)
        code = answer[4] if answer is not None and len(answer) > 4 else None
        if not code or code not in communes:
            continue
        row, arrondissement = communes[code], None
        if row["type"] == "ARM" and row.get("parent_code") in communes:
            arrondissement, row = code, communes[row["parent_code"]]
        filled = {"code_insee": row["code_insee"], "commune": row["nom"],
                  "code_arrondissement": arrondissement, "departement": row["departement"],
                  "region": row["region"]}
        for column, value in filled.items():
            out.at[i, column] = value
        provenance = json.loads(
            (out["provenance"].iat[n] if "provenance" in out.columns else None) or "{}")
        provenance.update({k: "ban" for k in filled if filled[k] is not None})
        out.at[i, "provenance"] = json.dumps(provenance, sort_keys=True)
    return out
