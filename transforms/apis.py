"""Shapers: the landed payloads of the public sources → tables in canonical columns.

Each public source speaks its own contract (../shared/SOURCES.md). A shaper reads the payload as
landed (API pages gathered by the connector, or the partner's files) by field *name*, fails
loudly when an expected field is missing, and yields one row per place with the canonical
column names, so staging treats every source alike.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable

from transforms.containers import unpack
from transforms.readers import ReadError, Table, guess_format, read_table

# The canonical columns each shaper yields (the default `columns` of its kind).
KIND_FIELDS = {
    "datainclusion": (
        "source_id", "siret", "nom", "types", "adresse", "complement_adresse", "code_postal",
        "commune", "code_insee", "latitude", "longitude", "telephone", "courriel", "site_web",
        "description", "date_maj",
    ),
    "recherche_entreprises": (
        "source_id", "siret", "nom", "enseigne", "types", "types_candidats", "adresse",
        "complement_adresse", "code_postal", "commune", "code_insee", "latitude", "longitude",
        "date_maj", "etat_administratif", "date_fermeture",
    ),
    "emplois": (
        "source_id", "siret", "nom", "enseigne", "types", "adresse", "complement_adresse",
        "code_postal", "commune", "code_insee", "latitude", "longitude", "telephone",
        "courriel", "site_web", "description", "date_maj", "postes",
    ),
    # No contact column: the ASP export holds personal data of contacts, never published.
    "asp_fluxiae": (
        "source_id", "siret", "siret_signature", "nom", "types", "adresse",
        "complement_adresse", "code_postal", "commune", "code_insee",
    ),
}
# data·inclusion's `reseaux_porteurs` values that are SIAE (and related) kinds.
_NETWORK_KINDS = {"aci", "ai", "ei", "etti", "eiti", "geiq", "ea", "eatt"}


def _table(kind: str, rows: list[dict], numbers: list[int] | None = None) -> Table:
    columns = list(KIND_FIELDS[kind])
    body = [[_s(r.get(c)) for c in columns] for r in rows]
    return Table(columns, body, numbers or list(range(1, len(body) + 1)))


def _s(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def api_pages(data: bytes, source_hint: str) -> list[dict]:
    """The response bodies of a landed API payload (`{"pages": [{"url", "body"}]}`) or of a
    single saved page."""
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReadError(f"{source_hint}: not valid JSON: {exc}") from exc
    if isinstance(doc, dict) and isinstance(doc.get("pages"), list):
        return [p["body"] if isinstance(p, dict) and "body" in p else p for p in doc["pages"]]
    return [doc]


def _results(body: object, where: str) -> list:
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise ReadError(f"{where}: a page without a 'results' list")
    return body["results"]


def _require(item: dict, fields: Iterable[str], where: str) -> None:
    missing = [f for f in fields if f not in item]
    if missing:
        raise ReadError(f"{where}: expected field(s) {', '.join(missing)} missing "
                        f"(fields: {', '.join(sorted(item)[:15])})")


# --- data·inclusion (data.gouv.fr dataset "structures-inclusion") -------------------------

def network_kinds(value: str) -> list[str]:
    """SIAE kinds among `reseaux_porteurs` (a list, a JSON list, or `{a,b}` text)."""
    tokens = re.findall(r"[a-z][a-z-]*", (value or "").lower())
    return [t.upper() for t in tokens if t in _NETWORK_KINDS]


def datainclusion_table(data: bytes, fmt: str) -> Table:
    """The SIAE rows of a data·inclusion structures file (parquet or csv)."""
    table = read_table(data, fmt, ["id", "nom", "reseaux_porteurs"])
    needed = ("id", "nom", "reseaux_porteurs", "siret", "code_postal", "commune")
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ReadError(f"data·inclusion file: column(s) {', '.join(missing)} missing")
    rows, numbers = [], []
    for number, cells in zip(table.row_numbers, table.rows, strict=True):
        r = dict(zip(table.columns, cells, strict=True))
        kinds = network_kinds(r["reseaux_porteurs"])
        if not kinds:
            continue  # not a SIAE: most of the ~100,000 structures are other services
        r["source_id"] = r["id"]
        r["types"] = ", ".join(kinds)
        rows.append(r)
        numbers.append(number)
    return _table("datainclusion", rows, numbers)


# --- API Recherche d'entreprises -----------------------------------------------------------

def _street(e: dict) -> str:
    parts = [e.get("numero_voie"), e.get("indice_repetition"), e.get("type_voie"),
             e.get("libelle_voie")]
    street = " ".join(_s(p) for p in parts if _s(p))
    return street or _s(e.get("adresse"))


def _is_open(e: dict) -> bool:
    return (_s(e.get("etat_administratif")) or "A").upper() == "A" and not e.get("date_fermeture")


def recherche_entreprises_table(data: bytes) -> Table:
    """One row per establishment (siège and matching ones) of the SIAE companies found.

    The API knows the kinds of a company (SIREN), not of its establishments: an EI's sister
    establishment is not an EI because the company runs one. The kinds go to `types` only
    when they can only be this establishment's, the company's sole open one; otherwise they
    are `types_candidats`, which another source must confirm before they are published.
    """
    companies: dict[str, dict] = {}
    for page_no, body in enumerate(api_pages(data, "recherche d'entreprises"), start=1):
        for item in _results(body, f"recherche d'entreprises page {page_no}"):
            _require(item, ("siren", "nom_complet", "siege", "complements"),
                     f"recherche d'entreprises page {page_no}")
            company = companies.setdefault(item["siren"], {"item": item, "etabs": {},
                                                          "open": None})
            declared = item.get("nombre_etablissements_ouverts")
            if isinstance(declared, int):
                company["open"] = max(company["open"] or 0, declared)
            for e in [item["siege"], *(item.get("matching_etablissements") or [])]:
                if isinstance(e, dict) and e.get("siret"):
                    company["etabs"][e["siret"]] = e
    rows: dict[str, dict] = {}
    for company in companies.values():
        item, etabs = company["item"], company["etabs"]
        kinds = _s((item.get("complements") or {}).get("type_siae"))
        # The API's count of open establishments, else those the answer lists.
        open_count = company["open"] if company["open"] is not None else sum(
            _is_open(e) for e in etabs.values())
        for siret, e in etabs.items():
            sole = open_count == 1 and _is_open(e)
            rows[siret] = {
                "source_id": siret,
                "siret": siret,
                "nom": item.get("nom_complet") or item.get("nom_raison_sociale"),
                "enseigne": ", ".join(e.get("liste_enseignes") or []),
                "types": kinds if sole else "",
                "types_candidats": "" if sole else kinds,
                "adresse": _street(e),
                "complement_adresse": e.get("complement_adresse"),
                "code_postal": e.get("code_postal"),
                "commune": e.get("libelle_commune"),
                "code_insee": e.get("commune"),
                "latitude": e.get("latitude"),
                "longitude": e.get("longitude"),
                "date_maj": item.get("date_mise_a_jour"),
                "etat_administratif": e.get("etat_administratif"),
                "date_fermeture": e.get("date_fermeture"),
            }
    # sorted by SIRET: the order of pages must not matter
    return _table("recherche_entreprises", [rows[k] for k in sorted(rows)])


# --- Les emplois de l'inclusion --------------------------------------------------------------

def _first(item: dict, *keys: str) -> object:
    for k in keys:
        if item.get(k) not in (None, ""):
            return item[k]
    return None


def emplois_table(data: bytes) -> Table:
    """Rows of les emplois' `/api/v1/siaes/` pages, or of the token `/data-inclusion/` ones."""
    rows = []
    for page_no, body in enumerate(api_pages(data, "les emplois"), start=1):
        for item in _results(body, f"les emplois page {page_no}"):
            _require(item, ("id", "siret"), f"les emplois page {page_no}")
            if not any(k in item for k in ("raison_sociale", "nom")):
                raise ReadError(f"les emplois page {page_no}: neither raison_sociale nor nom")
            rows.append({
                "source_id": item["id"],
                "siret": item.get("siret"),
                "nom": _first(item, "raison_sociale", "nom"),
                "enseigne": item.get("enseigne"),
                "types": _first(item, "type", "kind", "typologie"),
                "adresse": _first(item, "addresse_ligne_1", "adresse"),
                "complement_adresse": _first(item, "addresse_ligne_2", "complement_adresse"),
                "code_postal": item.get("code_postal"),
                "commune": _first(item, "ville", "commune"),
                "code_insee": item.get("code_insee"),
                "latitude": item.get("latitude"),
                "longitude": item.get("longitude"),
                "telephone": item.get("telephone"),
                "courriel": item.get("courriel"),
                "site_web": item.get("site_web"),
                "description": item.get("description"),
                "date_maj": _first(item, "mis_a_jour_le", "date_maj"),
                # the positions, kept as JSON text until staging normalises them
                "postes": json.dumps(item["postes"], ensure_ascii=False)
                if isinstance(item.get("postes"), list) else None,
            })
    return _table("emplois", rows)


# --- ASP fluxIAE exports -------------------------------------------------------------------

_ASP_STRUCTURE_FIELDS = ("structure_id_siae", "structure_siret_actualise",
                         "structure_siret_signature", "structure_denomination")
_ASP_ANNEX_FIELDS = ("af_id_structure", "af_mesure_dispositif_code", "af_date_fin_effet",
                     "af_etat_annexe_financiere_code")
_ACTIVE_STATES = {"VALIDE", "PROVISOIRE"}
_MEASURE = re.compile(r"^(ACI|AI|EI|ETTI|EITI)_DC$")  # *_MP are measures in prisons


def read_fluxiae(data: bytes, name: str, expected: Iterable[str]) -> list[dict]:
    """Rows of a fluxIAE file: pipe-delimited, no quoting, `DEB…` first and `FIN…` last line
    (the latter sometimes missing), plain, gzipped or zipped whatever its name says."""
    try:
        data = unpack(data)
    except ReadError as exc:
        raise ReadError(f"{name}: {exc}") from exc
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise ReadError(f"{name}: not UTF-8: {exc}") from exc
    first = 1 if lines and lines[0].startswith("DEB") else 0
    last = len(lines) - 1 if lines and lines[-1].startswith("FIN") else len(lines)
    body = [ln for ln in lines[first:last] if ln.strip()]
    if not body:
        raise ReadError(f"{name}: no header line")
    header = body[0].split("|")
    missing = [f for f in expected if f not in header]
    if missing:
        raise ReadError(f"{name}: expected column(s) {', '.join(missing)} missing")
    rows = []
    for n, line in enumerate(body[1:], start=first + 2):
        cells = line.split("|")
        if len(cells) != len(header):
            raise ReadError(f"{name}: line {n} has {len(cells)} fields for {len(header)}")
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def _asp_date(value: str) -> dt.date | None:
    m = re.match(r"(\d{2})/(\d{2})/(\d{4})", value or "")
    return dt.date(int(m.group(3)), int(m.group(2)), int(m.group(1))) if m else None


def annex_summary(annexes: list[dict]) -> dict[str, str]:
    """asp_id → its annexes as text (measure, state, end date), to say why none is active."""
    out: dict[str, list[str]] = {}
    for a in annexes:
        end = a["af_date_fin_effet"].strip() or "no end date"
        measure = a["af_mesure_dispositif_code"].strip()
        state = a["af_etat_annexe_financiere_code"].strip()
        out.setdefault(a["af_id_structure"].strip(), []).append(f"{measure} {state} until {end}")
    return {k: ", ".join(sorted(v)) for k, v in out.items()}


def active_kinds(annexes: list[dict], today: dt.date) -> dict[str, list[str]]:
    """asp_id → kinds of its active annexes (VALIDE/PROVISOIRE, end date not past)."""
    out: dict[str, set[str]] = {}
    for a in annexes:
        m = _MEASURE.match(a["af_mesure_dispositif_code"].strip())
        end = _asp_date(a["af_date_fin_effet"])
        if m and a["af_etat_annexe_financiere_code"].strip() in _ACTIVE_STATES and (
                end is None or end >= today):
            out.setdefault(a["af_id_structure"].strip(), set()).add(m.group(1))
    return {k: sorted(v) for k, v in out.items()}


def asp_table(structures: bytes, structures_name: str, annexes: bytes, annexes_name: str,
              today: dt.date) -> Table:
    """One row per ASP structure, kinds from its active financial annexes."""
    srows = read_fluxiae(structures, structures_name, _ASP_STRUCTURE_FIELDS)
    arows = read_fluxiae(annexes, annexes_name, _ASP_ANNEX_FIELDS)
    kinds, described = active_kinds(arows, today), annex_summary(arows)
    insee_col = next((c for c in (srows[0] if srows else {})
                      if c.startswith("structure_code_insee")), None)
    rows = []
    for r in srows:
        g = lambda k, r=r: _s(r.get(f"structure_adresse_gestion_{k}"))  # noqa: E731
        street = " ".join(p for p in (g("numero"), g("cplt_num_voie"), g("type_voie"),
                                      g("nom_voie")) if p)
        complement = " ".join(p for p in (g("cplt_adresse"), g("entree"), g("numero_apt"))
                              if p)
        asp_id = r["structure_id_siae"].strip()
        rows.append({
            "source_id": asp_id,
            "siret": r["structure_siret_actualise"] or r["structure_siret_signature"],
            "siret_signature": r["structure_siret_signature"],
            "nom": r["structure_denomination"],
            "types": ", ".join(kinds.get(asp_id, [])),
            "adresse": street,
            "complement_adresse": complement,
            "code_postal": g("cp"),
            "commune": g("commune"),
            "code_insee": r.get(insee_col) if insee_col else "",
        })
    table = _table("asp_fluxiae", rows)
    for number, r in zip(table.row_numbers, rows, strict=True):
        if not r["types"]:
            annexes_text = described.get(r["source_id"])
            table.row_notes[number] = (
                f"no active financial annex on {today.isoformat()} "
                f"({annexes_text})" if annexes_text else
                "no financial annex for this structure in the AnnexeFinanciere file")
    return table


def source_table(spec, parts: list[tuple[str, bytes]], today: dt.date) -> Table:
    """The table of a source from its landed parts [(file name, bytes)], whatever its kind."""
    name, data = parts[0]
    if spec.kind in ("file", "http"):
        fmt = spec.format or guess_format(name)
        if fmt is None:
            raise ReadError(f"cannot guess the format of {name!r}; set format")
        return read_table(data, fmt, spec.mapping.values(), encoding=spec.encoding,
                          delimiter=spec.delimiter, sheet=spec.sheet,
                          records_path=spec.records_path)
    if spec.kind == "datainclusion":
        fmt = spec.format or guess_format(name) or "parquet"
        return datainclusion_table(data, fmt)
    if spec.kind == "recherche_entreprises":
        return recherche_entreprises_table(data)
    if spec.kind == "emplois":
        return emplois_table(data)
    if spec.kind == "asp_fluxiae":
        if len(parts) != 2:
            raise ReadError("the ASP export needs a Structure file and an AnnexeFinanciere file")
        (sname, sdata), (aname, adata) = parts
        return asp_table(sdata, sname, adata, aname, today)
    raise ReadError(f"no reader for kind '{spec.kind}'")
