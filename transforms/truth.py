"""Scoring a whole resolution against labelled records: which records are truly one place.

The labelled set gives, for each source record, the real place it describes and the kinds that
place really has. Against what the pipeline made of them (record → structure, the published
structures and their kinds) it measures what a map user meets: pairs of records wrongly put
together (precision) or left apart (recall), places split over several points or points
mixing several places, kinds that are not the place's, and places that vanished.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Labelled:
    source: str
    source_id: str  # empty for a source without ids: then row_number says which row
    place: str  # the real place's id
    kinds: frozenset[str]  # the place's real kinds
    row_number: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        """How `structure_of` knows the record: its id, or its row (#row<n>)."""
        return (self.source, self.source_id or f"#row{self.row_number}")


@dataclass
class ResolutionScore:
    records: int = 0
    places: int = 0
    true_pairs: int = 0  # pairs of records of one place
    predicted_pairs: int = 0  # pairs of records put in one structure
    correct_pairs: int = 0
    split: list[str] = field(default_factory=list)  # places over several structures
    mixed: list[str] = field(default_factory=list)  # structures holding several places
    kinds_checked: int = 0
    kinds_wrong: list[tuple[str, list[str], list[str]]] = field(default_factory=list)
    lost: list[tuple[str, str]] = field(default_factory=list)  # (place, why)
    left_out: int = 0  # places rightly not published (kinds out of scope)

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def kinds_exact(self) -> float:
        if not self.kinds_checked:
            return 1.0
        return 1 - len(self.kinds_wrong) / self.kinds_checked


def _pairs(groups: Iterable[list]) -> set[frozenset]:
    out = set()
    for members in groups:
        members = sorted(members)
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                out.add(frozenset((members[i], members[j])))
    return out


def score_resolution(labelled: Iterable[Labelled], structure_of: Mapping[tuple[str, str], str],
                     published: Mapping[str, list[str]], scope: Iterable[str],
                     why_missing: Mapping[tuple[str, str], str] | None = None,
                     ) -> ResolutionScore:
    """Score a resolution.

    structure_of: (source, source_id) → structure_id of every record the merge kept (and
    (source, "#row<n>") for the records of sources without ids);
    published: structure_id → published kinds, for the structures on the published list;
    scope: the kinds the publication covers (a place of other kinds is rightly left out);
    why_missing: (source, source_id) → the reason a record was not kept (a reject).
    """
    labelled = list(labelled)
    scope = set(scope)
    why_missing = why_missing or {}
    out = ResolutionScore(records=len(labelled))
    by_place: dict[str, list[tuple[str, str]]] = defaultdict(list)
    kinds: dict[str, frozenset[str]] = {}
    for r in labelled:
        by_place[r.place].append(r.key)
        kinds[r.place] = r.kinds
    out.places = len(by_place)
    kept = [r.key for r in labelled if r.key in structure_of]
    place_of = {r.key: r.place for r in labelled}
    truth_pairs = _pairs([k for k in keys if k in structure_of] for keys in by_place.values())
    by_structure: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for key in kept:
        by_structure[structure_of[key]].append(key)
    predicted = _pairs(by_structure.values())
    out.true_pairs, out.predicted_pairs = len(truth_pairs), len(predicted)
    out.correct_pairs = len(truth_pairs & predicted)
    for place, keys in sorted(by_place.items()):
        structures = {structure_of[k] for k in keys if k in structure_of}
        if len(structures) > 1:
            out.split.append(place)
        in_scope = kinds[place] & scope
        if not in_scope:
            out.left_out += 1
            continue
        shown = sorted(s for s in structures if s in published)
        if not shown:
            reasons = sorted({why_missing.get(k, "kept but not published") for k in keys})
            out.lost.append((place, "; ".join(reasons)))
            continue
        out.kinds_checked += 1
        got = sorted(set().union(*(published[s] for s in shown)))
        if set(got) != in_scope:
            out.kinds_wrong.append((place, sorted(in_scope), got))
    for sid, keys in sorted(by_structure.items()):
        if len({place_of[k] for k in keys}) > 1:
            out.mixed.append(sid)
    return out


def score_text(score: ResolutionScore) -> str:
    """The score as the lines `siae evaluate --truth` prints."""
    lines = [
        f"{score.records} labelled records of {score.places} places "
        f"({score.left_out} rightly left out: kinds not published)",
        f"pairwise precision {score.precision:.3f}  recall {score.recall:.3f}  "
        f"({score.correct_pairs} of {score.predicted_pairs} pairs merged are right; "
        f"{score.true_pairs} true pairs)",
        f"places split over several structures: {len(score.split)}; structures mixing "
        f"several places: {len(score.mixed)}",
        f"kinds exact: {score.kinds_exact:.3%} of {score.kinds_checked} published places",
        f"places lost: {len(score.lost)}",
    ]
    lines += [f"  lost {place}: {why}" for place, why in score.lost[:20]]
    lines += [f"  kinds of {place}: expected {', '.join(e)}, published {', '.join(g)}"
              for place, e, g in score.kinds_wrong[:20]]
    return "\n".join(lines) + "\n"
