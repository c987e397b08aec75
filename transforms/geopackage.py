"""siae.gpkg: the published structures as a GeoPackage layer for GIS users (QGIS, ArcGIS),
written with geopandas. Byte-stable: the same rows give the same file (GDAL's timestamp is
pinned), so an unchanged publication stays unchanged."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from transforms.publication import FIELDS, LIST_DELIMITER

LAYER = "siae"
# GDAL stamps the file with the current time unless told otherwise.
_FIXED_DATE = {"OGR_CURRENT_DATE": "2000-01-01T00:00:00Z"}


def _cell(value: object, kind: str) -> object:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == "list":
        return LIST_DELIMITER.join(str(v) for v in value)
    return value


def gpkg_bytes(rows: list[Mapping[str, object]]) -> bytes:
    """The structures that have a point, one layer `siae` in WGS 84, lists joined by `|`."""
    located = [r for r in rows if r.get("latitude") is not None
               and r.get("longitude") is not None]
    # column by column, and only lists converted value by value: pandas reads NaN and None
    # alike (a third of the time of a _cell() call per value at national size)
    columns = {name: ([_cell(r.get(name), kind) for r in located] if kind == "list"
                      else [r.get(name) for r in located]) for name, kind, _ in FIELDS}
    frame = pd.DataFrame(columns)
    for name, kind, _ in FIELDS:
        if kind == "date":
            frame[name] = pd.to_datetime(frame[name]).dt.date
        elif kind == "boolean":
            frame[name] = frame[name].astype("boolean")
    geometry = shapely.points(np.array([float(r["longitude"]) for r in located]),
                              np.array([float(r["latitude"]) for r in located]))
    layer = gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:4326")
    pyogrio.set_gdal_config_options(_FIXED_DATE)
    # written in GDAL's memory, not a temporary file: building the release's files touches no
    # disk, so a full disk is met (and reported) where the release is written
    buffer = io.BytesIO()
    # through Arrow: the same bytes, in half the time (GDAL reads whole columns, not features
    # one by one: 15.8 to 6.4 s for 370,000 points)
    layer.to_file(buffer, layer=LAYER, driver="GPKG", engine="pyogrio", use_arrow=True)
    return buffer.getvalue()
