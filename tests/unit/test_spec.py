"""sources.toml: strict loading, errors that name the source and the key."""

from pathlib import Path

import pytest

from transforms.spec import SpecError, load_spec, parse_spec, spec_settings_repr

BASE = """
[defaults]
kinds = ["ACI", "EI"]
[defaults.expect]
min_rows = 3

[sources.reseau]
kind = "file"
path = "exports/*.csv"
[sources.reseau.columns]
nom = "Raison sociale"
siret = "N° SIRET"
"""


def parse(text: str):
    return parse_spec(text, Path("/data/conf/sources.toml"))


def test_valid_file_gives_defaults_and_resolves_paths_from_its_folder():
    spec = parse(BASE)
    src = spec.sources["reseau"]
    assert src.path == Path("/data/conf/exports/*.csv")
    assert src.min_rows == 3
    assert spec.defaults.kinds == ("ACI", "EI")
    assert src.columns == {"nom": "Raison sociale", "siret": "N° SIRET"}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (
            "[sources.reseau.expect]\nmax_rows = 3\n",
            "source 'reseau'.expect: unknown key 'max_rows'",
        ),
        (
            "[sources.reseau.lookups.types]\nChantier = 1\n",
            "lookups.types.Chantier must be a string",
        ),
        (
            "[sources.other]\npath = 'x.csv'\n[sources.other.columns]\nnom='n'\n",
            "source 'other': missing required key 'kind'",
        ),
        ("[sources.other]\nkind = 'ftp'\npath='x'\n", "kind 'ftp' is not supported"),
        (
            "[sources.other]\nkind = 'http'\n[sources.other.columns]\nnom='n'\n",
            "kind 'http' needs the key 'url'",
        ),
        (
            "[sources.other]\nkind = 'file'\npath='x'\n[sources.other.columns]\nnom='n'\nfoo='b'\n",
            "source 'other': 'foo' is not a canonical field",
        ),
        (
            "[sources.other]\nkind = 'file'\npath='x'\n[sources.other.columns]\nsiret='s'\n",
            "source 'other': missing required key 'columns.nom'",
        ),
        ("[sources.Other-1]\nkind = 'file'\npath='x'\n", "source 'Other-1': a source name"),
    ],
    ids=[
        "unknown-expect-key",
        "lookup-not-string",
        "missing-kind",
        "unsupported-kind",
        "http-without-url",
        "unknown-canonical-field",
        "missing-nom",
        "bad-source-name",
    ],
)
def test_errors_name_the_source_and_the_key(patch, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(BASE + patch)


def test_unknown_top_level_and_source_keys_are_errors():
    with pytest.raises(SpecError, match="unknown key 'sourcs'"):
        parse(BASE + "[sourcs.x]\nkind='file'\n")
    with pytest.raises(SpecError, match="source 'reseau': unknown key 'pth'"):
        parse(BASE.replace('path = "exports/*.csv"', 'path = "a"\npth = "b"'))


def test_unknown_kind_of_structure_in_defaults_is_an_error():
    with pytest.raises(SpecError, match="kinds has 'SIAE'"):
        parse(BASE.replace('["ACI", "EI"]', '["SIAE"]'))


def test_fingerprint_changes_with_the_mapping_only():
    a = parse(BASE).sources["reseau"]
    b = parse(BASE.replace('nom = "Raison sociale"', 'nom = "Nom"')).sources["reseau"]
    c = parse(BASE.replace("min_rows = 3", "min_rows = 3\n")).sources["reseau"]
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == c.fingerprint()


@pytest.mark.parametrize("setting, shapes", [
    ("min_score = 0.9", True),  # other answers are kept
    ("base_url = \"http://addok.local\"", True),  # another geocoder
    ("batch_size = 100", False),  # each address is answered alone
    ("batches_in_flight = 4", False),
    ("rate_per_second = 40", False),
    ("timeout = 10", False),
    ("retries = 5", False),
], ids=["min-score", "base-url", "batch-size", "in-flight", "rate", "timeout", "retries"])
def test_only_the_geocoder_settings_that_change_answers_call_for_a_new_consolidation(
        setting, shapes):
    # a run whose inputs are unchanged publishes what it has: asking the geocoder faster or
    # more patiently is no reason to consolidate again
    before = spec_settings_repr(parse(BASE))
    after = spec_settings_repr(parse(BASE + f"\n[geocoder]\n{setting}\n"))
    assert (before != after) is shapes


def test_only_selects_named_sources_and_rejects_unknown_names():
    spec = parse(BASE)
    assert [s.name for s in spec.selected(["reseau"])] == ["reseau"]
    with pytest.raises(SpecError, match="unknown source"):
        spec.selected(["nope"])


def test_missing_file_and_broken_toml_are_clear(tmp_path):
    with pytest.raises(SpecError, match="sources file not found"):
        load_spec(tmp_path / "absent.toml")
    bad = tmp_path / "sources.toml"
    bad.write_text("[sources\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)


def test_the_repository_sources_files_are_valid():
    root = Path(__file__).resolve().parents[2]
    for path in (root / "sources.toml", root / "samples" / "sources.toml"):
        assert load_spec(path).sources


def test_alerts_repeat_after_defaults_to_a_day_and_reads_a_duration():
    import datetime as dt

    assert parse(BASE).alerts.repeat_after == dt.timedelta(days=1)
    assert parse(BASE + '[alerts]\nrepeat_after = "12h"\n').alerts.repeat_after == \
        dt.timedelta(hours=12)
    with pytest.raises(SpecError, match=r"\[alerts\]: repeat_after: 'soon' is not a duration"):
        parse(BASE + '[alerts]\nrepeat_after = "soon"\n')


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ("encoding = 'klingon'\n", "source 'reseau': encoding: 'klingon' is not a known text"),
        ("delimiter = ';;'\n", "source 'reseau': delimiter: must be one character"),
        ("schedule = 'every day'\n", "source 'reseau': schedule: 'every day' is not a cron"),
        ("timeout = 'long'\n", "source 'reseau': timeout must be a number, got 'long'"),
        ("enabled = 1\n", "source 'reseau': enabled must be a boolean"),
        ("sheet = -1\n", "source 'reseau': sheet: a sheet number counts from 0"),
    ],
    ids=["unknown-encoding", "two-character-delimiter", "bad-cron", "timeout-not-number",
         "enabled-not-boolean", "negative-sheet"],
)
def test_values_that_would_fail_later_are_refused_up_front(patch, message):
    text = BASE.replace('path = "exports/*.csv"\n', 'path = "exports/*.csv"\n' + patch)
    with pytest.raises(SpecError, match=message):
        parse(text)


def test_max_drop_share_defaults_to_half_is_inherited_and_bounded():
    assert parse(BASE).sources["reseau"].max_drop_share == 0.5
    inherited = parse(BASE.replace("min_rows = 3", "min_rows = 3\nmax_drop_share = 0.2"))
    assert inherited.sources["reseau"].max_drop_share == 0.2
    with pytest.raises(SpecError, match=r"expect.max_drop_share: .*less than or equal to 1"):
        parse(BASE.replace("min_rows = 3", "max_drop_share = 1.5"))


def test_negative_min_rows_and_a_bad_timezone_are_refused():
    with pytest.raises(SpecError, match=r"\[defaults\]: expect.min_rows: .*greater than or equal"):
        parse(BASE.replace("min_rows = 3", "min_rows = -1"))
    with pytest.raises(SpecError, match="'Mars/Olympus' is not a time zone"):
        parse(BASE.replace("[defaults]\n", "[defaults]\ntimezone = 'Mars/Olympus'\n"))


def test_every_problem_of_a_file_is_reported_at_once():
    text = (BASE.replace('path = "exports/*.csv"\n', 'path = "exports/*.csv"\ndelimiter = "ab"\n')
            + "[sources.other]\nkind = 'ftp'\n[geocoder]\nmin_score = 2\n")
    with pytest.raises(SpecError) as err:
        parse(text)
    problems = err.value.problems
    assert len(problems) == 3, problems
    assert any("source 'reseau': delimiter" in p for p in problems)
    assert any("source 'other': kind 'ftp' is not supported" in p for p in problems)
    assert any("[geocoder]: min_score" in p for p in problems)


def test_a_source_inherits_the_defaults_it_does_not_set():
    spec = parse(BASE.replace("[defaults]\n", "[defaults]\npriority = 70\ntimeout = 5\n")
                 .replace("min_rows = 3", "min_rows = 3\nmax_age = '2d'"))
    src = spec.sources["reseau"]
    assert (src.priority, src.timeout, src.min_rows) == (70, 5.0, 3)
    assert src.max_age.days == 2 and src.title == "reseau"
