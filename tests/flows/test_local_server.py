"""The temporary Prefect server of `siae sync`: the flows are imported while it starts."""

import os

import requests

from flows.local_server import temporary_server


def test_work_given_to_do_meanwhile_sees_the_url_the_server_then_answers_on(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    seen = []
    # Prefect, imported meanwhile, must read this server's URL, not start one of its own
    with temporary_server(meanwhile=lambda: seen.append(os.environ.get("PREFECT_API_URL"))
                          ) as url:
        assert requests.get(f"{url}/health", timeout=5).status_code == 200
    assert seen == [url]
    assert "PREFECT_API_URL" not in os.environ  # the command's environment as it was


def test_with_a_configured_server_nothing_starts_and_the_work_is_still_done(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    done = []
    with temporary_server(meanwhile=lambda: done.append(True)) as url:
        assert url == "http://prefect.example:4200/api"
    assert done == [True]
