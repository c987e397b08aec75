"""Fetching over HTTP and from files, against a local HTTP server."""

import os
import time
from pathlib import Path

import pytest
from werkzeug import Response

from flows.fetch import FetchError, Payload, fetch_payloads, land, newest_match
from transforms.spec import parse_spec

UA = "SIAE-Atlas/test"


def fetch_payload(spec, user_agent):
    (payload,) = fetch_payloads(spec, user_agent)
    return payload


def http_spec(url: str, **extra) -> object:
    lines = "".join(f'{k} = "{v}"\n' for k, v in extra.items())
    text = f"""
[sources.partner]
kind = "http"
url = "{url}"
retries = 2
timeout = 5
{lines}[sources.partner.columns]
nom = "Nom"
"""
    return parse_spec(text, Path("/tmp/sources.toml")).sources["partner"]


def test_http_payload_with_user_agent_and_token_from_environment(httpserver, monkeypatch):
    monkeypatch.setenv("PARTNER_TOKEN", "s3cret")
    httpserver.expect_request(
        "/export.csv", headers={"Authorization": "Bearer s3cret", "User-Agent": UA}
    ).respond_with_data("Nom\nA\n", content_type="text/csv")
    payload = fetch_payload(
        http_spec(httpserver.url_for("/export.csv"), token_env="PARTNER_TOKEN"), UA
    )
    assert payload.data == b"Nom\nA\n" and payload.name == "export.csv"
    assert "s3cret" not in payload.location


def test_missing_token_names_the_variable_not_a_value(httpserver, monkeypatch):
    monkeypatch.delenv("PARTNER_TOKEN", raising=False)
    with pytest.raises(FetchError, match="source 'partner': environment variable PARTNER_TOKEN"):
        fetch_payload(http_spec(httpserver.url_for("/x.csv"), token_env="PARTNER_TOKEN"), UA)


def test_a_503_then_success_is_retried(httpserver):
    httpserver.expect_ordered_request("/x.csv").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/x.csv").respond_with_data("Nom\nA\n")
    assert fetch_payload(http_spec(httpserver.url_for("/x.csv")), UA).data == b"Nom\nA\n"


def test_429_retry_after_is_honoured(httpserver):
    httpserver.expect_ordered_request("/x.csv").respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": "1"})
    )
    httpserver.expect_ordered_request("/x.csv").respond_with_data("Nom\nA\n")
    t0 = time.perf_counter()
    assert fetch_payload(http_spec(httpserver.url_for("/x.csv")), UA).data == b"Nom\nA\n"
    assert time.perf_counter() - t0 >= 0.9


def test_persistent_error_and_html_page_fail_the_source_clearly(httpserver):
    httpserver.expect_request("/gone.csv").respond_with_data("nope", status=404)
    with pytest.raises(FetchError, match="source 'partner'.*HTTP 404"):
        fetch_payload(http_spec(httpserver.url_for("/gone.csv")), UA)
    httpserver.expect_request("/page.csv").respond_with_data(
        "<html>maintenance</html>", content_type="text/html; charset=utf-8"
    )
    with pytest.raises(FetchError, match="HTML page instead of csv"):
        fetch_payload(http_spec(httpserver.url_for("/page.csv")), UA)


def test_unreachable_host_fails_with_the_source_name():
    with pytest.raises(FetchError, match="source 'partner': GET"):
        fetch_payload(http_spec("http://127.0.0.1:9/x.csv"), UA)


def test_newest_file_matching_the_glob_is_read(tmp_path):
    old, new = tmp_path / "liste_2025.csv", tmp_path / "liste_2026.csv"
    old.write_text("old")
    new.write_text("new")
    os.utime(old, (1_000_000, 1_000_000))
    assert newest_match(tmp_path / "liste_*.csv") == new
    assert newest_match(tmp_path / "absent_*.csv") is None


def test_landing_is_by_content_hash_and_idempotent(tmp_path):
    payload = Payload(b"Nom\nA\n", "/x/liste.csv", "liste.csv")
    first = land(tmp_path, "partner", payload)
    assert first.name == f"{payload.sha256}.csv" and first.read_bytes() == payload.data
    assert land(tmp_path, "partner", payload) == first
    assert len(list((tmp_path / "partner").iterdir())) == 1


def test_the_asp_export_is_restaged_each_day_so_expired_annexes_are_noticed():
    import datetime as dt

    from flows.fingerprints import staging_fingerprint
    from transforms.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[2] / "samples" / "sources.toml")
    day, next_day = dt.date(2026, 11, 26), dt.date(2026, 11, 27)
    asp, reseau = spec.sources["asp_fluxiae"], spec.sources["reseau_iae_aura"]
    assert staging_fingerprint(asp, day) != staging_fingerprint(asp, next_day)
    assert staging_fingerprint(reseau, day) == staging_fingerprint(reseau, next_day)
