"""Merge: records clustered into places (rules, judgements, matcher edges), then one golden
record per place by survivorship.

Each field comes from the highest-priority source that has it, then the freshest (`date_maj`),
then by source name and source_id so that the result never depends on the order of rows or
sources. The address fields travel together (a postcode from one source and a street from
another would describe no real place). The source of each field is kept.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from transforms.components import components
from transforms.fields import FIELDS, merged_by
from transforms.frames import rows_of
from transforms.keys import identity_key, record_key, record_key_parts, signature_link
from transforms.kinds import KNOWN_KINDS
from transforms.postes import open_titles

# What survivorship fills (the field table's `merge`), and the golden record's columns: the
# merged fields, then the candidate points that locating chooses from.
SINGLE_FIELDS = merged_by("first")
ADDRESS_FIELDS = merged_by("address")
# The other strategies' fields, looked up once (not once per place).
_KIND_FIELDS = merged_by("kinds")
_CANDIDATE_FIELDS = merged_by("candidates")
_LATEST_FIELDS = merged_by("latest")
_CLOSED_FIELDS = merged_by("closed")
_POSTES = bool(merged_by("postes"))
_SOURCE_FIELDS = merged_by("sources")
STRUCTURE_COLUMNS = [
    "structure_id",
    "identity_key",
    *(f.name for f in FIELDS if f.merge),
    "provenance",
    "coordinate_candidates",
]
LINK_COLUMNS = ["structure_id", "source", "source_id", "rule", "score"]


def new_structure_id(key: str, taken: set[str]) -> str:
    """A short ID derived from the identity key, so that it does not depend on run order."""
    salt = 0
    while True:
        digest = hashlib.sha256(f"{key}#{salt}".encode() if salt else key.encode()).hexdigest()
        candidate = f"siae-{digest[:10]}"
        if candidate not in taken:
            return candidate
        salt += 1


def _present(value: object) -> bool:
    if value is None:
        return False
    kind = type(value)
    if kind is str:  # the common case, without pandas
        return True
    if kind is float:
        return value == value  # NaN is not
    try:
        return not pd.isna(value)
    except (TypeError, ValueError):
        return True  # lists


def _rank(r: dict, priority: Mapping[str, int]) -> tuple:
    """A record's survivorship rank: priority, then freshest date_maj, then source and
    source_id."""
    return (-priority.get(r["source"], 0),
            -r["date_maj"].toordinal() if _present(r["date_maj"]) else 0,
            r["source"], str(r["source_id"]))


@dataclass(frozen=True)
class Edge:
    """Two records judged one place by the matcher (rule "match") with its score."""

    left: str  # record keys
    right: str
    score: float


@dataclass
class MergeResult:
    structures: pd.DataFrame
    link_table: pa.Table  # core.links' rows (LINK_COLUMNS), in the places' order
    known_ids: Mapping[str, str]  # the merge's `known_ids`, as given
    redirects: dict[str, str]  # structure_id no longer used → the one it was merged into
    # matcher pairs held back for an analyst: (pair of record keys) → why
    demoted: dict[frozenset[str], str] = field(default_factory=dict)
    # the keys of this run's places (those still in use) → structure_id
    current: dict[str, str] = field(default_factory=dict)
    # known keys moved to a new ID: those of a place split off the one that kept their ID
    moved: dict[str, str] = field(default_factory=dict)

    @property
    def links(self) -> pd.DataFrame:
        """`link_table` as a frame (the flow writes the table: at 1M a frame's object per
        cell of 1.1 million links was 50 MB more at the merge's peak)."""
        return self.link_table.to_pandas()

    @property
    def ids(self) -> dict[str, str]:
        """Every key → structure_id, known and new: what the next merge knows. Made on
        demand (the flow reads `current`): at 1M a second dict of a million and a half
        keys was 150 MB more at the merge's peak."""
        return {**self.known_ids, **self.current}


class _Clusters:
    """Union-find over keys that refuses unions joining two records judged different, or two
    places carrying different SIRETs (unless the caller says a known succession links
    them)."""

    def __init__(self, different: set[frozenset[str]], nodes: Iterable[str] | None = None):
        self.parent: dict[str, str] = {}
        self.different = different
        self.sirets: dict[str, set[str]] = {}  # root → the SIRET keys of its cluster
        self.kinds: dict[str, set[str]] = {}  # root → the confirmed kinds of its records
        # root → the keys of its cluster that a "different" judgement names: a union looks
        # at judgements only when both sides hold some (not at every judgement each time)
        self.judged: dict[str, set[str]] = {}
        self._judged_keys = {k for pair in different for k in pair}
        # the judged keys are places of their own even without records (unless the caller
        # clusters part of the keys: then only its own)
        for key in sorted(self._judged_keys if nodes is None else nodes):
            self.add(key)

    def add(self, key: str) -> None:
        if key not in self.parent:
            self.parent[key] = key
            if key.startswith("siret:"):
                self.sirets[key] = {key}
            if key in self._judged_keys:
                self.judged[key] = {key}

    def find(self, key: str) -> str:
        parent = self.parent
        up = parent.get(key)
        if up is None:  # a key met for the first time (add() on every find was a tenth)
            self.add(key)
            return key
        while up != key:  # path halving: each key on the way points to its grandparent
            grand = parent[up]
            parent[key] = grand
            key, up = grand, parent[grand]
        return key

    def sirets_of(self, key: str) -> set[str]:
        return self.sirets.get(self.find(key), set())

    def kinds_of(self, key: str) -> set[str]:
        return self.kinds.get(self.find(key), set())

    def add_kinds(self, key: str, kinds) -> None:
        if kinds:
            self.kinds.setdefault(self.find(key), set()).update(kinds)

    def kinds_disagree(self, a: str, b: str) -> bool:
        """Both clusters have confirmed kinds and none in common."""
        ka, kb = self.kinds_of(a), self.kinds_of(b)
        return bool(ka and kb and not ka & kb)

    def union(self, a: str, b: str, linked: bool = False) -> bool:
        """Join the clusters of a and b; False when refused. `linked`: a known succession
        (the ASP's signature and current SIRETs, an analyst's "same") may join places with
        different SIRETs."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        ja, jb = self.judged.get(ra), self.judged.get(rb)
        if ja and jb and any(frozenset((x, y)) in self.different for x in ja for y in jb):
            return False
        sa, sb = self.sirets.get(ra), self.sirets.get(rb)
        if sa and sb and not linked:
            return False  # two places with their own SIRETs are never one by resemblance
        # the smaller key becomes the root, so the result does not depend on the order
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        for sets in (self.sirets, self.kinds, self.judged):
            moved = sets.pop(rb, None)
            if moved:
                kept = sets.get(ra)
                if kept is None:
                    sets[ra] = moved
                else:
                    kept |= moved
        return True

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key in sorted(self.parent):
            out.setdefault(self.find(key), []).append(key)
        return out


def _assign_ids(clusters: list[list[str]], known: Mapping[str, str],
                first_seen: Mapping[str, object],
                ) -> tuple[list[str], dict[str, str], set[int]]:
    """One ID per cluster: the oldest known ID among its keys (a merge keeps the oldest and
    redirects the others), or a new one derived from its smallest key. Also the clusters
    that claimed IDs and kept none, all staying with other places (a place split off, or
    made of records that left theirs): their keys must move to their new ID."""
    ages: dict[str, tuple[str, str]] = {}

    def age(sid: str) -> tuple[str, str]:
        # once per ID: formatting a timestamp costs more than the rest of the sort
        found = ages.get(sid)
        if found is None:
            found = ages[sid] = (str(first_seen.get(sid, "")), sid)
        return found

    claims = []
    for keys in clusters:
        ids = {known[k] for k in keys if k in known}
        claims.append(sorted(ids, key=age) if len(ids) > 1 else list(ids))
    claimed = [c[0] for c in claims if c]
    if all(len(c) <= 1 for c in claims) and len(set(claimed)) == len(claimed):
        # most runs: every place claims at most one ID and no two claim the same, so each
        # keeps its own and nothing is redirected; the new IDs are made in the same order
        # as _ids_by_age's (the places without a claim, by their smallest key)
        return _own_ids(clusters, claims, set(known.values())), {}, set()
    return _ids_by_age(clusters, claims, known, age)


def carry_redirects(previous: Mapping[str, str], found: Mapping[str, str],
                    live: Iterable[str]) -> dict[str, str]:
    """The redirects to publish: those this run's clustering `found`, and the `previous`
    ones whose ID is still not in use, each followed to the place it now leads to.

    A merge's redirect is found again at every run only while the merged place's records
    are there; when a source then drops its duplicate row, the old ID would otherwise
    vanish from redirects.json and a map site's stored link would break. An ID in use again
    (a split) is no longer redirected; a redirect whose place is gone altogether is dropped
    (the place was removed, as its changes say)."""
    live = set(live)
    step = {**previous, **found}
    out = {}
    for start in sorted(step):
        if start in live:
            continue
        seen, sid = {start}, step[start]
        while sid not in live and sid in step and sid not in seen:
            seen.add(sid)
            sid = step[sid]
        if sid in live:
            out[start] = sid
    return out


def _ids_by_age(clusters: list[list[str]], claims: list[list[str]], known: Mapping[str, str],
                age: Callable[[str], tuple[str, str]],
                ) -> tuple[list[str], dict[str, str], set[int]]:
    """Each place takes the oldest ID it claims that is still free, the oldest IDs given
    first; an ID several places claim goes to the one more of whose keys name it (the bulk
    of the place that had it: a record that moves to another place does not carry its old
    place's ID along), then to the one that claims fewer IDs (the other has one of its own),
    then to the smallest key. The others get a new ID; the IDs claimed and not kept
    redirect to their place's."""
    pairs = []
    for i, keys in enumerate(clusters):
        named = Counter(known[k] for k in keys if k in known)
        pairs.extend((age(sid), -n, len(named), keys[0], i, sid) for sid, n in named.items())
    chosen: dict[int, str] = {}
    used: set[str] = set()
    for *_, i, sid in sorted(pairs):
        if i not in chosen and sid not in used:
            chosen[i] = sid
            used.add(sid)
    order = sorted(range(len(clusters)), key=lambda i: (age(claims[i][0]) if claims[i]
                                                        else ("~", ""), clusters[i][0]))
    taken = set(known.values())
    for i in order:
        if i not in chosen:
            chosen[i] = new_structure_id(clusters[i][0], taken)
            taken.add(chosen[i])
    redirects = {}
    kept = set(chosen.values())
    for i in range(len(clusters)):
        for sid in claims[i]:
            if sid != chosen[i] and sid not in kept:
                redirects[sid] = chosen[i]
    lost = {i for i in range(len(clusters)) if claims[i] and chosen[i] not in claims[i]}
    return [chosen[i] for i in range(len(clusters))], redirects, lost


def _own_ids(clusters: list[list[str]], claims: list[list[str]], taken: set[str]) -> list[str]:
    chosen = [c[0] if c else "" for c in claims]
    for i in sorted((i for i, c in enumerate(claims) if not c), key=lambda i: clusters[i][0]):
        chosen[i] = new_structure_id(clusters[i][0], taken)
        taken.add(chosen[i])
    return chosen


class Cluster(NamedTuple):
    """One place as the clustering makes it, before it gets its ID: its keys (sorted), its
    golden record (STRUCTURE_COLUMNS after structure_id; None for a judged key without
    records) and its links in survivorship order, flat: record key, rule, score for each
    record (`link_rows` reads them). A tuple: a national memo holds 370,000 of them,
    pickled by C code (a dataclass's state went through two Python calls each way, 2.6 s
    at 1M). The links name their records by the key objects `keys` holds, which pickles
    keep shared: a tuple per link with its own source_id was 167 MB of the places at 1M,
    against 41."""

    keys: tuple[str, ...]
    golden: tuple | None
    links: tuple

    def link_rows(self) -> list[tuple[str, str, float | None]]:
        """(record key, rule, score) of each of its records, in survivorship order."""
        flat = self.links
        return list(zip(flat[0::3], flat[1::3], flat[2::3], strict=True))


@dataclass(frozen=True)
class Spread:
    """How to cluster groups of components side by side (components never interact, so
    apart or together is the same): `groups(n)`, how many groups for `n` records to
    cluster; `run(jobs)`, each job's result in order (the flows fork a process per job);
    `rows(mask)`, the rows of the records under a mask as rows_of() gives them, made where
    the job runs (default: from the records frame). A forked process that reads the
    parent's Python objects copies the memory pages they sit on (their reference counts
    change): rows made from Arrow buffers leave the parent's pages shared."""

    groups: Callable[[int], int]
    run: Callable[[list[Callable[[], object]]], list]
    rows: Callable[[np.ndarray], list[dict]] | None = None


def component_groups(record_part: np.ndarray, chosen: np.ndarray, n: int) -> np.ndarray:
    """Each component's group (0 to n-1; -1 for a component not `chosen`), the `chosen`
    ones cut in order into `n` runs of about as many records each."""
    sizes = np.bincount(record_part, minlength=len(chosen)) * chosen
    before = np.cumsum(sizes) - sizes  # the records of the chosen components before each
    total = max(int(sizes.sum()), 1)
    groups = np.minimum(before * n // total, n - 1)
    return np.where(chosen, groups, -1)


@dataclass
class ClusterMemo:
    """Clusterings by component digest (transforms.components): `known` from the last run,
    `kept` filled by this one for the next. A component whose digest is known is not
    clustered again."""

    known: dict = field(default_factory=dict)  # digest → (clusters, demoted pairs)
    kept: dict = field(default_factory=dict)
    reused: int = 0  # components taken from `known`
    clustered: int = 0  # components clustered anew


def merge_records(
    records: pd.DataFrame,
    priority: Mapping[str, int],
    known_ids: Mapping[str, str],
    edges: Iterable[Edge] = (),
    judgements: Mapping[frozenset[str], str] | None = None,
    first_seen: Mapping[str, object] | None = None,
    memo: ClusterMemo | None = None,
    row_digests: Sequence[int] | None = None,
    spread: Spread | None = None,
) -> MergeResult:
    """Cluster records into places and build their golden records.

    Rules, in order: a record and its usable SIRET are one place; an ASP record's signature
    and current SIRETs are one place; analysts' "same" judgements; the matcher's edges, best
    score first. No union ever joins two records an analyst judged "different" (that wins over
    every rule), nor two places with different SIRETs except through the ASP's succession or
    an analyst's "same"; a record without a SIRET that resembles places with different
    SIRETs is merged with none of them (its pairs go to review). `known_ids` is the persisted
    key → ID map: a key seen before keeps its ID.

    With a `memo` and each record's `row_digests` (a hash of the whole record), only the
    components whose inputs changed since the memo's run are clustered; the result is the
    one a clustering of every record gives. With a `spread` as well, the components to
    cluster are cut into groups clustered side by side, with the same result.
    """
    judgements = judgements or {}
    edges = list(edges)
    if memo is None or row_digests is None:
        clusters, demoted = cluster_records(rows_of(records), priority, edges, judgements)
    else:
        clusters, demoted = _cluster_with_memo(records, row_digests, priority, edges,
                                               judgements, memo, spread)
    # A judged key without a record is a node of the clustering only: it is no place, and an
    # ID it still names stays with the place that has records (it would otherwise compete
    # for it, and win when its key sorts first).
    clusters = sorted((c for c in clusters if c.golden is not None), key=lambda c: c.keys[0])
    structure_ids, redirects, lost = _assign_ids([c.keys for c in clusters], known_ids,
                                                 first_seen or {})
    current: dict[str, str] = {}
    moved: dict[str, str] = {}
    for n, (c, sid) in enumerate(zip(clusters, structure_ids, strict=True)):
        if n in lost:
            # Split off a place that kept the ID its keys name: they move to the new ID, or
            # both places would claim the old one at every run, and the first new key that
            # sorts first would hand it to the other place.
            moved.update((k, sid) for k in c.keys if k in known_ids)
            current.update((k, sid) for k in c.keys)
        else:
            # a key belongs to one place: a known one keeps its ID
            current.update((k, known_ids.get(k, sid)) for k in c.keys)
    return MergeResult(_structures_frame(structure_ids, [c.golden for c in clusters]),
                       link_table(clusters, structure_ids), known_ids, redirects, demoted,
                       current, moved)


def link_table(clusters: Sequence[Cluster], structure_ids: Sequence[str]) -> pa.Table:
    """core.links' rows (LINK_COLUMNS) of these places, in their order and each place's
    survivorship order: source and source_id read from the record keys, column by column
    in Arrow."""
    counts = np.fromiter((len(c.links) // 3 for c in clusters), dtype=np.int64,
                         count=len(clusters))
    place = np.repeat(np.arange(len(clusters)), counts)
    sources, source_ids = record_key_parts(
        pa.array([k for c in clusters for k in c.links[0::3]], type=pa.string()))
    return pa.table({
        "structure_id": pa.array(structure_ids, type=pa.string()).take(place),
        "source": sources,
        "source_id": source_ids,
        "rule": pa.array([r for c in clusters for r in c.links[1::3]], type=pa.string()),
        "score": pa.array([s for c in clusters for s in c.links[2::3]], type=pa.float64()),
    })


def _structures_frame(structure_ids: list[str], goldens: list[tuple]) -> pd.DataFrame:
    """The places' frame (STRUCTURE_COLUMNS), filled column by column into the one object
    array the frame keeps: a list per place, then the frame's copy of them, were 300 MB
    more at 1M, at the merge's peak."""
    values = np.empty((len(STRUCTURE_COLUMNS), len(goldens)), dtype=object)
    values[0] = np.fromiter(structure_ids, dtype=object, count=len(goldens))
    for j in range(1, len(STRUCTURE_COLUMNS)):
        # fromiter: an item that is a list stays one value (an array made from a list of
        # lists would take them for a second dimension)
        values[j] = np.fromiter((g[j - 1] for g in goldens), dtype=object, count=len(goldens))
    return pd.DataFrame(values.T, columns=STRUCTURE_COLUMNS, dtype=object, copy=False)


def cluster_records(rows: list[dict], priority: Mapping[str, int], edges: list[Edge],
                    judgements: Mapping[frozenset[str], str],
                    nodes: Iterable[str] | None = None, seen: dict | None = None,
                    ) -> tuple[list[Cluster], dict[frozenset[str], str]]:
    """(clusters, matcher pairs held back and why) of these records by the rules of
    `merge_records`, without IDs. `nodes`: the judged keys that are places of their own
    even without records (default: every key a "different" judgement names); `seen`: the
    values places share (`_share`), kept across calls whose places travel together."""
    different = {pair for pair, d in judgements.items() if d == "different"}
    uf = _Clusters(different, nodes)
    how: dict[str, tuple[str, float | None]] = {}
    record_keys = [record_key(r["source"], r["source_id"]) for r in rows]
    for r, rk in zip(rows, record_keys, strict=True):
        uf.add(rk)
        key, rule = identity_key(r["siret"], r["source"], r["source_id"])
        if key != rk and not uf.union(key, rk):
            rule = "source_record"  # split from its SIRET by a "different" judgement
        how[rk] = (rule, None)
        uf.add_kinds(rk, r.get("types"))
    for r in rows:
        signature = r.get("siret_signature")
        if (signature_link(r["siret"], signature)
                and uf.union(f"siret:{signature}", f"siret:{r['siret']}", linked=True)):
            how[record_key(r["source"], r["source_id"])] = ("asp_siret", None)
    present = set(how)
    for pair, decision in sorted(judgements.items(), key=lambda kv: sorted(kv[0])):
        a, b = sorted(pair)
        if decision == "same" and a in present and b in present and uf.union(a, b,
                                                                            linked=True):
            how[a] = how[b] = ("judgement", None)
    edges = [e for e in edges if e.left in present and e.right in present]
    set_aside = {record_key(r["source"], r["source_id"]): r["siret_ecarte"] for r in rows
                 if _present(r.get("siret_ecarte"))}
    demoted = _ambiguous(uf, edges, set_aside)
    for e in sorted(edges, key=lambda e: (-e.score, e.left, e.right)):
        pair = frozenset((e.left, e.right))
        if pair in demoted:
            continue
        if uf.kinds_disagree(e.left, e.right):
            demoted[pair] = "types_differents"
            continue
        if uf.union(e.left, e.right):
            # the record the match brought in (the one without a SIRET) joined by it
            for k in (e.left, e.right):
                if how[k][0] == "source_record":
                    how[k] = ("match", e.score)
        elif uf.find(e.left) != uf.find(e.right) and uf.sirets_of(e.left) \
                and uf.sirets_of(e.right):
            demoted[pair] = "sirets_differents"

    members: dict[str, list[int]] = {}  # root → its records' positions
    for i, rk in enumerate(record_keys):
        members.setdefault(uf.find(rk), []).append(i)
    clusters = []
    seen = {} if seen is None else seen  # one object per distinct value places share
    for root, keys in uf.groups().items():
        if root not in members:
            clusters.append(Cluster(tuple(keys), None, ()))
            continue
        positions = sorted(members[root], key=lambda i: _rank(rows[i], priority))
        ordered = [rows[i] for i in positions]
        # The identity shown to analysts: a SIRET key when the place has one.
        identity = next((k for k in keys if k.startswith("siret:")), keys[0])
        out = _golden(ordered)
        out["identity_key"] = identity
        _share(out, seen)
        links = tuple(v for i in positions for v in (record_keys[i], *how[record_keys[i]]))
        clusters.append(Cluster(tuple(keys), tuple(out[c] for c in STRUCTURE_COLUMNS[1:]),
                                links))
    return clusters, demoted


# Golden values that many places hold: codes, communes, kinds, source lists, the provenance
# map. Each row of a source is its own object, so each place held its own copy: at 1M, half
# a gigabyte of the clustering memo's 1.2 GB (and as much in the flow while it clusters).
SHARED_FIELDS = ("types", "types_candidats", "code_postal", "commune", "code_insee",
                 "code_arrondissement", "departement", "region", "postes_ouverts", "date_maj",
                 "sources", "provenance")


def _share(golden: dict[str, object], seen: dict) -> None:
    """Replace the SHARED_FIELDS values of `golden` by the equal object first met in `seen`
    (lists by their items). Golden records are never changed in place, so places may share
    a value; pickles (the memo, a forked process's result) then keep one copy of it too.
    Values are found by equality, so the fields hold text, lists of text and dates only
    (1 and True are one key)."""
    for f in SHARED_FIELDS:
        value = golden[f]
        if value is None:
            continue
        if type(value) is list:
            golden[f] = seen.setdefault(("list", *value), value)
        else:
            golden[f] = seen.setdefault(value, value)


def _cluster_with_memo(records: pd.DataFrame, row_digests: Sequence[int],
                       priority: Mapping[str, int], edges: list[Edge],
                       judgements: Mapping[frozenset[str], str], memo: ClusterMemo,
                       spread: Spread | None = None,
                       ) -> tuple[list[Cluster], dict[frozenset[str], str]]:
    """The clusters of every component: the memo's for a known component, the rest
    clustered in one call, or one per group of a `spread` (components never interact, so
    together or apart is the same)."""
    parts = components(records, row_digests, edges, judgements)
    known = [d in memo.known for d in parts.digests]
    clusters: list[Cluster] = []
    demoted: dict[frozenset[str], str] = {}
    for d, reuse in zip(parts.digests, known, strict=True):
        if reuse:
            found, held = memo.known[d]
            clusters.extend(found)
            demoted.update(held)
            memo.kept[d] = memo.known[d]
    fresh = np.flatnonzero(~np.asarray(known, dtype=bool))
    memo.reused, memo.clustered = len(parts.digests) - len(fresh), len(fresh)
    if not len(fresh):
        return clusters, demoted
    redo = np.zeros(len(parts.digests), dtype=bool)
    redo[fresh] = True
    record_redo = redo[parts.record_part]
    count = spread.groups(int(record_redo.sum())) if spread else 1
    group_of = component_groups(parts.record_part, redo, count)
    record_group = group_of[parts.record_part]
    edge_group = np.where(parts.edge_part >= 0, group_of[parts.edge_part], -1)
    node_group = group_of[parts.judged_part]
    rows_for = spread.rows if spread and spread.rows else partial(_rows_under, records)
    jobs = [partial(_cluster_group, rows_for, record_group == g,
                    parts.record_part[record_group == g], priority,
                    [e for e, eg in zip(edges, edge_group.tolist(), strict=True) if eg == g],
                    parts.edge_part[edge_group == g], judgements,
                    [k for k, ng in zip(parts.judged_nodes, node_group.tolist(), strict=True)
                     if ng == g],
                    parts.judged_part[node_group == g])
            for g in range(count)]
    done = spread.run(jobs) if spread and count > 1 else [job() for job in jobs]
    by_part: dict[int, tuple[list, dict]] = {int(p): ([], {}) for p in fresh}
    for found, held, where in done:
        for c, p in zip(found, where[:len(found)].tolist(), strict=True):
            by_part[p][0].append(c)
        for (pair, why), p in zip(held.items(), where[len(found):].tolist(), strict=True):
            by_part[p][1][pair] = why
        clusters.extend(found)
        demoted.update(held)
    for p, value in by_part.items():
        memo.kept[parts.digests[p]] = value
    return clusters, demoted


def _rows_under(records: pd.DataFrame, mask: np.ndarray) -> list[dict]:
    return rows_of(records[mask])


# The records a clustering job makes rows of at once: it clusters its group's components in
# batches of about this many records (components never interact), so that a job holds the
# dicts of one batch, not of its whole group (at 1M, two forked processes held 4 GB of their
# own, most of it their group's rows; on one core, the flow's process held every row).
CLUSTER_BATCH_RECORDS = 50_000


def component_batches(record_part: np.ndarray, other_parts: Sequence[np.ndarray],
                      size: int = CLUSTER_BATCH_RECORDS) -> tuple[np.ndarray, list[np.ndarray]]:
    """The batch of each record, then of each item of `other_parts` (the components of
    edges or judged keys): whole components, in order, cut into runs of about `size`
    records (more when one component is larger). Components without records share the
    batch of the components around them."""
    every = np.unique(np.concatenate([record_part, *other_parts]).astype(np.int64))
    sizes = np.bincount(np.searchsorted(every, record_part), minlength=len(every))
    before = np.cumsum(sizes) - sizes
    batch_of = before // max(size, 1)
    return (batch_of[np.searchsorted(every, record_part)],
            [batch_of[np.searchsorted(every, p)] for p in other_parts])


def _cluster_group(rows_for: Callable[[np.ndarray], list[dict]], chosen: np.ndarray,
                   record_part: np.ndarray, priority: Mapping[str, int], edges: list[Edge],
                   edge_part: np.ndarray, judgements: Mapping[frozenset[str], str],
                   nodes: list[str], node_part: np.ndarray, batch: int | None = None,
                   ) -> tuple[list[Cluster], dict[frozenset[str], str], np.ndarray]:
    """The clusters and held pairs of a group's records (the `chosen` ones, of components
    `record_part`), its `edges` (of components `edge_part`) and its judged `nodes` (of
    components `node_part`), with the component of each cluster then each held pair: found
    here, where the group's keys are (the caller holds no key → component map: at 1M,
    200 MB at the merge's peak). Clustered `batch` records at a time (default:
    CLUSTER_BATCH_RECORDS)."""
    picked = np.flatnonzero(chosen)
    record_batch, (edge_batch, node_batch) = component_batches(
        record_part, [edge_part, node_part], batch or CLUSTER_BATCH_RECORDS)
    clusters: list[Cluster] = []
    demoted: dict[frozenset[str], str] = {}
    cluster_where: list[int] = []
    held_where: list[int] = []
    seen: dict = {}  # shared values across batches: the group's places travel together
    edge_batch, node_batch = edge_batch.tolist(), node_batch.tolist()
    for b in np.unique(np.concatenate([record_batch, np.asarray(node_batch, np.int64)])):
        in_batch = record_batch == b
        mask = np.zeros(len(chosen), dtype=bool)
        mask[picked[in_batch]] = True
        # the rows become dicts here, a batch at a time: in a forked process, only its own
        rows = rows_for(mask)
        batch_nodes = [k for k, nb in zip(nodes, node_batch, strict=True) if nb == b]
        part = dict(zip(batch_nodes, node_part[np.asarray(node_batch) == b].tolist(),
                        strict=True))
        part.update(zip((record_key(r["source"], r["source_id"]) for r in rows),
                        record_part[in_batch].tolist(), strict=True))
        found, held = cluster_records(
            rows, priority, [e for e, eb in zip(edges, edge_batch, strict=True) if eb == b],
            judgements, batch_nodes, seen)
        del rows
        cluster_where += [next(part[k] for k in c.keys if k in part) for c in found]
        held_where += [part[next(iter(pair))] for pair in held]
        clusters += found
        demoted.update(held)
    return clusters, demoted, np.asarray(cluster_where + held_where, dtype=np.int64)


def one_typo_apart(a: str, b: str) -> bool:
    """Two 14-digit SIRETs one mistyped digit or one swap of neighbours apart."""
    if len(a) != 14 or len(b) != 14:
        return False
    diff = [i for i in range(14) if a[i] != b[i]]
    return len(diff) <= 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                              and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])


def pointed_siret(hint: str, sirets: set[str]) -> set[str]:
    """Which of these SIRET keys a mistyped SIRET points to: one typo apart, else the one
    of the same SIREN."""
    typo = {s for s in sirets if one_typo_apart(hint, s.removeprefix("siret:"))}
    if len(typo) == 1:
        return typo
    return {s for s in sirets if s.removeprefix("siret:")[:9] == hint[:9]}


def _ambiguous(uf: _Clusters, edges: list[Edge],
               set_aside: Mapping[str, str]) -> dict[frozenset[str], str]:
    """Edges of a record without a SIRET that resembles places carrying different SIRETs
    (siblings at one address: "X AI", "X EI"): which one it is, only an analyst can say, so
    none of its edges merges, unless the SIRET the record's source gave (set aside as
    mistyped) points to exactly one of them."""
    reach: dict[str, set[str]] = {}
    for e in edges:
        for here, there in ((e.left, e.right), (e.right, e.left)):
            # a place whose confirmed kinds are not this record's is no candidate for it
            if not uf.kinds_disagree(here, there):
                reach.setdefault(here, set()).update(uf.sirets_of(there))
    pointed: dict[str, set[str]] = {}
    for k, sirets in reach.items():
        hint = set_aside.get(k)
        if hint and len(sirets) > 1:
            pointed[k] = pointed_siret(hint, sirets)
    out = {}
    for e in edges:
        for k, other in ((e.left, e.right), (e.right, e.left)):
            if uf.sirets_of(k) or len(reach.get(k, ())) <= 1:
                continue
            close = pointed.get(k, set())
            if len(close) != 1 or not uf.sirets_of(other) & close:
                out[frozenset((e.left, e.right))] = "siret_ambigu"
    return out


# json.dumps(…, sort_keys=True) without a new encoder per place
_PROVENANCE_JSON = json.JSONEncoder(sort_keys=True)


def _golden(rows: list[dict]) -> dict[str, object]:
    """Survivorship over records already in priority order."""
    out: dict[str, object] = {}
    provenance: dict[str, str] = {}
    for f in SINGLE_FIELDS:
        out[f] = None
        for r in rows:
            value = r[f]
            # (_present() inlined for text: a call per field and record was a tenth)
            if value is not None and (type(value) is str or _present(value)):
                out[f] = value
                provenance[f] = r["source"]
                break
    block = next((r for r in rows if _present(r["code_insee"])), None) or next(
        (r for r in rows if _present(r["adresse"]) or _present(r["code_postal"])), None)
    for f in ADDRESS_FIELDS:
        out[f] = block[f] if block and _present(block[f]) else None
        if block and _present(block[f]):
            provenance[f] = block["source"]
    confirmed: set[str] = set()
    for f in _KIND_FIELDS:
        confirmed = {k for r in rows for k in (r[f] or [])}
        out[f] = [k for k in KNOWN_KINDS if k in confirmed]
        # which source gave each kind (confirmed or only proposed)
        for k in out[f]:
            provenance[f"{f}:{k}"] = ", ".join(sorted({r["source"] for r in rows
                                                       if k in (r[f] or [])}))
    for f in _CANDIDATE_FIELDS:
        proposed = {k for r in rows for k in (r.get(f) or [])} - confirmed
        out[f] = [k for k in KNOWN_KINDS if k in proposed]
        for k in out[f]:
            provenance[f"{f}:{k}"] = ", ".join(sorted({r["source"] for r in rows
                                                       if k in (r.get(f) or [])}))
    for f in _LATEST_FIELDS:
        values = [r[f] for r in rows if _present(r[f])]
        out[f] = max(values) if values else None
    for f in _CLOSED_FIELDS:
        # A place is closed as soon as one source (SIRENE through the annuaire) says so.
        states = {r[f] for r in rows if _present(r[f])}
        out[f] = "F" if "F" in states else ("A" if states else None)
    if _POSTES:
        out["recrute"], out["postes_ouverts"] = open_titles(r.get("postes") for r in rows)
    for f in _SOURCE_FIELDS:
        out[f] = sorted({r["source"] for r in rows})
    # SIRETs a source gave but that were set aside (invalid, filler): kept for the record
    set_aside = sorted({f"{r['source']}: {r['siret_ecarte']}" for r in rows
                        if _present(r.get("siret_ecarte"))})
    if set_aside:
        provenance["siret_ecarte"] = "; ".join(set_aside)
    out["provenance"] = _PROVENANCE_JSON.encode(provenance)
    # flat, (lon, lat, source) after (lon, lat, source) (transforms.location's
    # candidate_points): a list of tuples was 94 MB of a national memo's places, against
    # 60, and a place without a point shares the one empty tuple
    out["coordinate_candidates"] = tuple(
        v for r in rows if _present(r["latitude"]) and _present(r["longitude"])
        for v in (float(r["longitude"]), float(r["latitude"]), r["source"]))
    return out
