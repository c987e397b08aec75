"""Probabilistic matching of records that have no usable SIRET, with blocking.

Candidates are compared only within a commune and only when they share a distinctive name
word, the address, a phone or an e-mail (a block); in a crowded block a pair needs more
evidence, so the pairs grow with the records, not with their square. Each pair gets features
(name and address similarity with rapidfuzz, shared contacts, distance) and a score in
[0, 1]; thresholds from the configuration cut it into three bands: merge, review, distinct.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz, process

from transforms.geocoding import clean_address, distance_km
from transforms.identifiers import is_placeholder_siret
from transforms.kinds import fold
from transforms.settings import MatchingSettings

# Words that say nothing about which structure it is: legal forms, kinds, articles.
_NOISE = {
    "ASSOCIATION", "ASSOC", "ASSO", "ASS", "SARL", "SAS", "SASU", "EURL", "SA", "SCOP", "SCIC",
    "GIP", "GIE", "SEM", "COOPERATIVE", "COOP", "ACI", "AI", "EI", "ETTI", "EITI", "GEIQ",
    "ATELIER", "ATELIERS", "CHANTIER", "CHANTIERS", "INSERTION", "ENTREPRISE", "INTERMEDIAIRE",
    "TRAVAIL", "TEMPORAIRE", "DE", "DU", "DES", "LA", "LE", "LES", "L", "D", "ET", "EN", "AU",
    "AUX", "POUR", "SUR", "PAR", "A",
}
_SAINT = re.compile(r"\b(ST|STE)\b")
# Kind words in a name: siblings of one organisation are often named "X AI", "X EI", "X
# INTERIM" at one address; different kind words say they are different structures.
_NAME_KINDS = (
    (re.compile(r"\bETTI\b|\bINTERIM\b|\bTRAVAIL TEMPORAIRE\b"), "ETTI"),
    (re.compile(r"\bEITI\b|\bTRAVAIL INDEPENDANT\b"), "EITI"),
    (re.compile(r"\bACI\b|\bCHANTIERS? D INSERTION\b|\bATELIERS? CHANTIERS?\b"), "ACI"),
    (re.compile(r"\bAI\b|\bASSOCIATION INTERMEDIAIRE\b"), "AI"),
    (re.compile(r"\bEI\b|\bENTREPRISE D INSERTION\b"), "EI"),
)


# Names and addresses repeat: one place's records from several sources, and each record in
# several candidate pairs (its features compute both sides' tokens). Kept by value; the
# blocking keys of a national matching took 24 µs a record, most of it these.
_BY_VALUE = 1 << 17


@lru_cache(maxsize=_BY_VALUE)
def name_kinds(name: str | None) -> frozenset[str]:
    """The kinds a name says (its kind words), folded."""
    folded = fold(name or "")
    return frozenset(kind for pattern, kind in _NAME_KINDS if pattern.search(folded))


def record_kinds(r: Mapping) -> set[str]:
    """The kinds a record gives, confirmed or proposed."""
    return set(r.get("types") or []) | set(r.get("types_candidats") or [])


_SPACED_ACRONYM = re.compile(r"\b(?:[A-Z] ){2,}[A-Z]\b")


def name_tokens(name: str | None) -> list[str]:
    """Distinctive tokens of a structure's name (folded, without legal forms or kind words);
    an acronym written with spaces ("I D E O") counts as one token."""
    return list(_name_tokens(name or ""))


@lru_cache(maxsize=_BY_VALUE)
def _name_tokens(name: str) -> tuple[str, ...]:
    return tuple(t for t in _token_text(name).split() if len(t) > 1 and not _is_noise(t))


def _token_text(name: str) -> str:
    folded = _SAINT.sub(lambda m: "SAINT" if m.group(1) == "ST" else "SAINTE", fold(name))
    return _SPACED_ACRONYM.sub(lambda m: m.group(0).replace(" ", ""), folded)


_LONG_NOISE = sorted(w for w in _NOISE if len(w) >= 7)


@lru_cache(maxsize=65536)
def _is_noise(token: str) -> bool:
    # a mistyped long noise word ("INSRTION") is noise too, not a distinctive token
    return token in _NOISE or (len(token) >= 6 and process.extractOne(
        token, _LONG_NOISE, scorer=fuzz.ratio, score_cutoff=85) is not None)


def _soft_similarity(a: list[str], b: list[str]) -> float:
    """Each token's best match in the other name, weighted by length, the weaker of the two
    directions: a typo inside one word costs that word only ("ITNERIM" / "INTERIM")."""
    def one_way(x, y):
        total = sum(len(t) for t in x)
        # extractOne: the best of y in one call, not a Python loop over y
        return sum(len(t) * process.extractOne(t, y, scorer=fuzz.ratio)[1] / 100
                   for t in x) / total
    return min(one_way(a, b), one_way(b, a))


@lru_cache(maxsize=_BY_VALUE)
def address_key(adresse: str | None) -> str:
    """An address folded for comparison (abbreviations expanded, postal mentions removed)."""
    return fold(clean_address(adresse) or "")


def website_domain(url: str | None) -> str | None:
    if not url:
        return None
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.") or None


def usable_siret(siret: str | None) -> str | None:
    return siret if siret and not is_placeholder_siret(siret) else None


# The record fields the matcher reads (its blocks and features): the records it scores are
# turned into rows of these only (tests/unit/test_matching.py checks that this module names
# no other record field).
MATCHED_FIELDS = ("adresse", "code_insee", "code_postal", "courriel", "enseigne", "latitude",
                  "longitude", "nom", "siret", "site_web", "telephone", "types",
                  "types_candidats")

# A block of up to this many records has all its pairs compared, when the settings do not say
# (`[matching] whole_blocks_up_to`, which defaults to the number of sources).
WHOLE_BLOCKS_UP_TO = 6
# A key shared by more records than this in one commune is no evidence at all.
_IGNORED_FROM = 200


def _block_keys(r: Mapping) -> tuple[set[str], int]:
    """A record's blocking keys, and how many of them come from its name (what
    `_block_entries` computes for a whole partition at once).

    One key per piece of evidence: a name word (by its first four letters, so that a typo
    late in a word still meets), the address, the phone, the e-mail; each within the
    commune."""
    commune = r.get("code_insee") or r.get("code_postal")
    if not commune:
        return set(), 0
    tokens = name_tokens(r.get("nom")) + name_tokens(r.get("enseigne"))
    keys = {f"{commune}|p:{t[:4]}" if len(t) >= 4 else f"{commune}|n:{t}" for t in tokens}
    names = len(keys)
    if r.get("adresse"):
        keys.add(f"{commune}|a:{address_key(r['adresse'])}")
    for field in ("telephone", "courriel"):
        if r.get(field):
            keys.add(f"{commune}|{field}:{r[field]}")
    return keys, names


# Names whose every character is at most U+024F (Latin, with its accents) are folded by
# Arrow: their NFKD forms are fixed by Unicode's stability policy, and the only combining
# marks these give are U+0300-U+036F. Any other name is folded by fold() itself.
_BEYOND_LATIN = r"[^\x{0}-\x{24F}]"


def _token_texts(names: pa.Array) -> pa.Array:
    """For each name, the text that `_name_tokens` splits into words (fold(), then "ST" and
    "STE" as SAINT and SAINTE, then spaced acronyms joined), in C for most names: at 1M, one
    name at a time was half of finding the candidate pairs (most names are distinct)."""
    text = pc.utf8_normalize(names, "NFKD")
    text = pc.replace_substring_regex(text, r"[\x{300}-\x{36F}]", "")
    text = pc.utf8_trim(pc.ascii_upper(pc.replace_substring_regex(text, r"[^0-9A-Za-z]+", " ")),
                        " ")
    text = pc.replace_substring_regex(text, r"\bST\b", "SAINT")
    text = pc.replace_substring_regex(text, r"\bSTE\b", "SAINTE")
    # the rare names with an acronym to join, or beyond Latin: one by one
    redo = pc.or_(pc.match_substring_regex(names, _BEYOND_LATIN),
                  pc.match_substring_regex(text, _SPACED_ACRONYM.pattern))
    rows = np.flatnonzero(pc.fill_null(redo, False).to_numpy(zero_copy_only=False))
    if not len(rows):
        return text
    values = text.to_pylist()
    for k, name in zip(rows.tolist(), names.take(pa.array(rows)).to_pylist(), strict=True):
        values[k] = _token_text(name)
    return pa.array(values, pa.string())


def _name_words(names: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(row, word) of each distinctive word of each name: `name_tokens` of every name."""
    words = pc.split_pattern(_token_texts(names), " ")
    rows = pc.list_parent_indices(words).to_numpy()
    flat = pc.list_flatten(words)
    # each distinct word is judged once (a mistyped noise word is found by rapidfuzz)
    encoded = flat.dictionary_encode()
    noise = np.fromiter((len(w) <= 1 or _is_noise(w) for w in encoded.dictionary.to_pylist()),
                        dtype=bool, count=len(encoded.dictionary))
    kept = ~noise[encoded.indices.to_numpy()]
    return rows[kept], flat.filter(pa.array(kept))


# Below this many records, folding names in Arrow costs more than it saves (a pair that
# `evaluate` checks: 1.1 ms through Arrow, 65 µs one record at a time).
_COLUMNS_FROM = 64


def _entries_one_by_one(records: Sequence[Mapping]) -> tuple[np.ndarray, np.ndarray,
                                                              np.ndarray, np.ndarray]:
    """`_block_entries` from `_block_keys`, record by record."""
    codes: dict[str, int] = {}
    record, key, name_keys = [], [], []
    for i, r in enumerate(records):
        keys, names = _block_keys(r)
        name_keys.append(names)
        for k in sorted(keys):
            record.append(i)
            key.append(codes.setdefault(k, len(codes)))
    is_name = np.fromiter((k.split("|", 1)[1][:2] in ("p:", "n:") for k in codes), dtype=bool,
                          count=len(codes))
    return (np.asarray(record, dtype=np.int64), np.asarray(key, dtype=np.int64), is_name,
            np.asarray(name_keys, dtype=np.int64))


def _block_entries(records: Sequence[Mapping]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                        np.ndarray]:
    """The blocking keys of every record, as `_block_keys` gives them one record at a time:
    (record, key number) of each distinct key of each record, in record order; whether each
    key number is a name word's; and how many name keys each record has."""
    n = len(records)
    if n < _COLUMNS_FROM:
        return _entries_one_by_one(records)
    communes = [r.get("code_insee") or r.get("code_postal") or None for r in records]
    has_commune = np.fromiter((c is not None for c in communes), dtype=bool, count=n)
    commune = pa.array(communes, pa.string())
    entry_rows, entry_keys = [], []
    for field in ("nom", "enseigne"):
        rows, words = _name_words(pa.array([r.get(field) or None for r in records],
                                           pa.string()))
        keep = has_commune[rows]
        rows, words = rows[keep], words.filter(pa.array(keep))
        part = pc.if_else(pc.greater_equal(pc.utf8_length(words), 4),
                          pc.binary_join_element_wise(
                              "p:", pc.utf8_slice_codeunits(words, 0, 4), ""),
                          pc.binary_join_element_wise("n:", words, ""))
        entry_rows.append(rows)
        entry_keys.append(pc.binary_join_element_wise(commune.take(pa.array(rows)), part, "|"))
    for field in ("adresse", "telephone", "courriel"):
        values = pa.array([r.get(field) or None for r in records], pa.string())
        rows = np.flatnonzero(has_commune & pc.is_valid(values).to_numpy(zero_copy_only=False))
        values = values.take(pa.array(rows)).dictionary_encode()
        # few distinct addresses: each folded once
        parts = [f"a:{address_key(v)}" if field == "adresse" else f"{field}:{v}"
                 for v in values.dictionary.to_pylist()]
        entry_rows.append(rows)
        entry_keys.append(pc.binary_join_element_wise(
            commune.take(pa.array(rows)),
            pa.array(parts, pa.string()).take(values.indices), "|"))
    record = np.concatenate(entry_rows).astype(np.int64)
    encoded = pa.chunked_array(entry_keys, pa.string()).combine_chunks().dictionary_encode()
    keys = encoded.dictionary
    key = encoded.indices.to_numpy().astype(np.int64)
    # one entry per distinct key of a record (a word in both nom and enseigne counts once)
    unique = _distinct(record * len(keys) + key)
    record, key = unique // len(keys), unique % len(keys)
    kind = pc.utf8_slice_codeunits(pc.list_element(pc.split_pattern(keys, "|", max_splits=1),
                                                   1), 0, 2)
    is_name = pc.is_in(kind, value_set=pa.array(["p:", "n:"])).to_numpy(zero_copy_only=False)
    name_keys = np.bincount(record[is_name[key]], minlength=n)
    return record, key, is_name, name_keys


def candidate_pairs(records: Sequence[Mapping],
                    whole_blocks_up_to: int | None = None) -> list[tuple[int, int]]:
    """Index pairs (i < j) worth comparing: same commune, a shared name word, address or
    contact, and not two different usable SIRETs (those are different places by definition).

    A block of up to `whole_blocks_up_to` records has all its pairs. A larger one holds
    several places (one place has one record per source), so its key alone is weak: a pair
    from it also needs a second shared key, or one name's words all in the other's. Without
    that, the pairs of a commune grow with the square of its records."""
    whole = whole_blocks_up_to or WHOLE_BLOCKS_UP_TO
    record, key, is_name, name_keys = _block_entries(records)
    if not len(key):
        return []
    has_siret = np.fromiter((usable_siret(r.get("siret")) is not None for r in records),
                            dtype=bool, count=len(records))
    # Every pair of every block of up to _IGNORED_FROM records, in C: at 1M the loops over
    # the blocks' members were a third of the matching.
    size = np.bincount(key)
    kept = size[key] <= _IGNORED_FROM
    order = np.lexsort((record[kept], key[kept]))  # by block, members in record order
    key, record = key[kept][order], record[kept][order]
    left, right = _pairs_within_runs(key)
    block = key[left]
    i, j = record[left], record[right]
    # same SIRET is merged by rule; different SIRETs never
    worth = ~(has_siret[i] & has_siret[j])
    block, i, j = block[worth], i[worth], j[worth]
    n = np.int64(len(records))
    in_whole = size[block] <= whole
    pairs = [i[in_whole] * n + j[in_whole]]
    # a crowded block's pair: by how many crowded keys it shares, of which name words
    crowded, crowded_name = i[~in_whole] * n + j[~in_whole], is_name[block[~in_whole]]
    found, shared = np.unique(crowded, return_counts=True)
    named, in_names = np.unique(crowded[crowded_name], return_counts=True)
    names_shared = np.zeros(len(found), dtype=np.int64)
    names_shared[np.searchsorted(found, named)] = in_names
    fewest = np.minimum(name_keys[found // n], name_keys[found % n])
    pairs.append(found[(shared >= 2) | ((names_shared > 0) & (names_shared >= fewest))])
    chosen = _distinct(np.concatenate(pairs))
    return list(zip((chosen // n).tolist(), (chosen % n).tolist(), strict=True))


def _distinct(values: np.ndarray) -> np.ndarray:
    """np.unique(values), by sorting: numpy's hashing unique took seconds on millions."""
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def _pairs_within_runs(run: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) positions of every pair left < right within each run of equal values
    of a sorted `run`, the left positions in order, each one's rights in order."""
    starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
    ends = np.r_[starts[1:], len(run)]
    # each position pairs with the positions after it in its run
    after = np.repeat(ends, ends - starts) - np.arange(len(run)) - 1
    left = np.repeat(np.arange(len(run)), after)
    # the k-th partner of a position is k + 1 after it
    first = np.cumsum(after) - after
    right = left + np.arange(len(left)) - np.repeat(first, after) + 1
    return left, right


def features(a: Mapping, b: Mapping) -> dict[str, float | None]:
    """Similarities in [0, 1] (None when a side lacks the field)."""
    def both(field):
        return a.get(field) and b.get(field)

    # a name made only of common words ("ASSOC M O ENTREPRISE") is compared whole
    na = " ".join(name_tokens(a.get("nom"))) or fold(a.get("nom") or "")
    nb = " ".join(name_tokens(b.get("nom"))) or fold(b.get("nom") or "")
    out: dict[str, float | None] = {
        # set ratio forgives extra words, sort ratio does not: their mean keeps "AINTERIM"
        # and "AINTER JOB AINTERIM" apart while "ASSOC X" and "X" stay alike.
        # ...and the letters without the spaces, for a typo that moved one ("TRAI TD'UNION")
        "name": max((fuzz.token_set_ratio(na, nb) + fuzz.token_sort_ratio(na, nb)) / 200,
                    _soft_similarity(na.split(), nb.split()),
                    fuzz.ratio(na.replace(" ", ""), nb.replace(" ", "")) / 100)
        if na and nb else None,
        "address": None, "same_number": None, "contact": None, "distance_km": None,
        "kinds": None, "name_kinds": None,
    }
    ka_, kb_ = record_kinds(a), record_kinds(b)
    if ka_ and kb_:
        out["kinds"] = float(bool(ka_ & kb_))
    wa, wb = name_kinds(a.get("nom")), name_kinds(b.get("nom"))
    if wa and wb:
        out["name_kinds"] = float(bool(wa & wb))
    if both("adresse"):
        ka, kb = address_key(a["adresse"]), address_key(b["adresse"])
        out["address"] = fuzz.token_sort_ratio(ka, kb) / 100
        num_a, num_b = re.match(r"\d+", ka), re.match(r"\d+", kb)
        if num_a and num_b:
            out["same_number"] = float(num_a.group() == num_b.group())
    shared = [a.get(f) == b.get(f) for f in ("telephone", "courriel") if both(f)]
    da, db = website_domain(a.get("site_web")), website_domain(b.get("site_web"))
    if da and db:
        shared.append(da == db)
    if shared:
        out["contact"] = float(any(shared))
    if a.get("latitude") is not None and b.get("latitude") is not None:
        out["distance_km"] = distance_km((a["longitude"], a["latitude"]),
                                         (b["longitude"], b["latitude"]))
    return out


def score(f: Mapping[str, float | None]) -> float:
    """Evidence that two records are one place, in [0, 1].

    A weighted mean of what both sides have: the name (0.5), the address (0.25), shared
    contacts (0.25), the distance (0.15); a missing field neither helps nor hurts. A different
    street number caps the address at 0.3 and points over 1 km apart count 0: those are the
    antennes of one organisation, separate places. A shared phone, e-mail or website with a
    near-identical name is one place even at another address (it moved). The same name at the
    same address is one place even with another phone or e-mail (sources often carry a head
    office's). A name alone, with nothing to confirm it, or a clearly different name at the
    same address (another structure in the building) stays below the merge band.

    Kinds that disagree (disjoint `types`, or different kind words in the names: "X AI" and
    "X EI") make one place unlikely: such a pair goes to review at most, and below it when
    both disagree; nothing then overrides it.
    """
    if f["name"] is None:
        return 0.0
    parts = [(f["name"], 0.5)]
    if f["address"] is not None:
        address = f["address"]
        if f["same_number"] == 0.0:
            address = min(address, 0.3)
        parts.append((address, 0.25))
    if f["contact"] is not None:
        # at the same address another phone or e-mail says little (a head office's)
        weak = f["contact"] == 0.0 and f["address"] is not None and f["address"] >= 0.9
        parts.append((f["contact"], 0.1 if weak else 0.25))
    if f["distance_km"] is not None:
        d = f["distance_km"]
        parts.append((1.0 if d < 0.15 else 0.6 if d < 1.0 else 0.0, 0.15))
    value = sum(v * w for v, w in parts) / sum(w for _, w in parts)
    if f["contact"] == 1.0 and f["name"] >= 0.9:
        value = max(value, 0.9)
    if (f["name"] >= 0.97 and f["address"] is not None and f["address"] >= 0.97
            and f["same_number"] != 0.0 and (f["distance_km"] is None or f["distance_km"] < 1)):
        value = max(value, 0.9)
    if f["name"] < 0.5 and f["contact"] != 1.0:
        value = min(value, 0.55)  # another name altogether: another structure
    if len(parts) == 1 or (f["name"] < 0.8 and f["contact"] != 1.0):
        # a name alone, or another name at the same address (another structure in the same
        # building), is for an analyst to judge
        value = min(value, 0.80)
    conflicts = (f.get("kinds") == 0.0) + (f.get("name_kinds") == 0.0)
    if conflicts:
        value = min(value, 0.70 if conflicts == 1 else 0.50)
    return round(value, 4)


def classify(value: float, thresholds: MatchingSettings) -> str:
    """merge | review | distinct."""
    if value >= thresholds.merge_threshold:
        return "merge"
    if value >= thresholds.review_threshold:
        return "review"
    return "distinct"


def score_pairs(records: Sequence[Mapping], thresholds: MatchingSettings,
                known: Callable[[int, int], tuple | None] | None = None,
                keep_distinct: bool = False) -> list[tuple[int, int, float, str, str | None]]:
    """(i, j, score, band, features) for every candidate pair above the distinct band, the
    features rounded as JSON text (`features_text`). `known(i, j)`: the (score, band,
    features) an earlier scoring gave the pair when neither record changed since, else None
    (the pair is scored). `keep_distinct`: the pairs below the review band too, with band
    "distinct" and no features (what a cache keeps)."""
    out = []
    for i, j in candidate_pairs(records, thresholds.whole_blocks_up_to):
        found = known(i, j) if known is not None else None
        if found is not None:
            s, band, rounded = found
        else:
            f = features(records[i], records[j])
            s = score(f)
            band = classify(s, thresholds)
            rounded = None if band == "distinct" else features_text(f)
        if band != "distinct" or keep_distinct:
            out.append((i, j, s, band, rounded))
    return out


def features_text(features: Mapping[str, float | None]) -> str:
    """A pair's features as core.match_candidates keeps them: rounded to 4 decimals, NaN as
    null, keys sorted, as JSON text. Text from the scoring on: at 1M the flow held a
    quarter of a million pairs' dicts through the clustering (about 85 MB more)."""
    return orjson.dumps(
        {k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, 4))
         for k, v in features.items()},
        option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()


@dataclass(frozen=True)
class Evaluation:
    pairs: int
    true_positives: int
    false_positives: int
    false_negatives: int
    review: int  # pairs left for an analyst (counted as not merged)
    by_kind: dict[str, dict[str, int]]

    @property
    def precision(self) -> float:
        merged = self.true_positives + self.false_positives
        return self.true_positives / merged if merged else 1.0

    @property
    def recall(self) -> float:
        same = self.true_positives + self.false_negatives
        return self.true_positives / same if same else 1.0


def evaluate(labelled: Sequence[tuple[str, str, Mapping, Mapping]],
             thresholds: MatchingSettings) -> Evaluation:
    """Precision and recall of "same place" on (label, kind, left, right) pairs; a pair the
    blocking never proposes counts as not merged."""
    tp = fp = fn = review = 0
    by_kind: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for label, kind, left, right in labelled:
        proposed = bool(candidate_pairs([left, right]))
        band = classify(score(features(left, right)), thresholds) if proposed else "distinct"
        by_kind[kind][band] += 1
        review += band == "review"
        if band == "merge":
            tp += label == "same"
            fp += label != "same"
        elif label == "same":
            fn += 1
    return Evaluation(len(labelled), tp, fp, fn, review,
                      {k: dict(v) for k, v in sorted(by_kind.items())})


@dataclass(frozen=True)
class CrossValidation:
    precision: float
    recall: float
    merge_thresholds: tuple[float, ...]  # the one chosen on the other folds, per fold


def cross_validate(labelled: Sequence[tuple[str, str, Mapping, Mapping]],
                   min_precision: float = 0.99, folds: int = 5) -> CrossValidation:
    """How well choosing the merge threshold generalises: for each fold, the lowest threshold
    keeping precision >= min_precision on the other folds is applied to the held-out one.

    Pairs are grouped into folds by their left record's place (SIRET, else name), so the
    variations of one structure never sit on both sides of a split.
    """
    scored = []
    for label, _, left, right in labelled:
        value = score(features(left, right)) if candidate_pairs([left, right]) else 0.0
        group = left.get("siret") or (left.get("nom") or "").casefold()
        fold = int(hashlib.sha256(group.encode()).hexdigest(), 16) % folds
        scored.append((fold, value, label == "same"))

    def lowest_threshold(rows) -> float:
        for t in sorted({v for _, v, _ in rows if v > 0}):
            merged = [same for _, v, same in rows if v >= t]
            if merged and sum(merged) / len(merged) >= min_precision:
                return t
        return 1.0

    tp = fp = fn = 0
    chosen = []
    for k in range(folds):
        t = lowest_threshold([r for r in scored if r[0] != k])
        chosen.append(t)
        for fold, value, same in scored:
            if fold != k:
                continue
            if value >= t:
                tp += same
                fp += not same
            else:
                fn += same
    return CrossValidation(tp / (tp + fp) if tp + fp else 1.0,
                           tp / (tp + fn) if tp + fn else 1.0, tuple(chosen))
