"""The BAN client and the cache, against a local server speaking the CSV contract."""

import datetime as dt
import threading
import time

import duckdb
import pytest
from werkzeug import Response

from flows.geocoder import BanClient, GeocodeError, ReplayClient, _answers, geocode_structures
from tests.helpers import ban_handler
from transforms.spec import GeocoderSettings
from warehouse.db import apply_schema

UA = "SIAE-Atlas/test"


def structure(i, adresse):
    return {"structure_id": f"s{i}", "adresse": adresse, "code_postal": "07200",
            "commune": "Aubenas", "code_insee": "07019"}


STRUCTURES = [structure(1, "3 rue Neuve"), structure(2, "12 av. Jean Jaurès"),
              structure(3, "Lieu-dit introuvable"), structure(4, "chemin vague"),
              structure(5, "5 place douteux"), structure(6, None)]


@pytest.fixture
def con():
    c = duckdb.connect()
    apply_schema(c)
    yield c
    c.close()


def settings(httpserver, **kw):
    return GeocoderSettings(base_url=httpserver.url_for("/geocodage"), retries=2,
                            rate_per_second=50, **kw)


def run(con, s, structures=STRUCTURES, now=None, resend_all=False):
    client = BanClient(s, UA)
    try:
        return geocode_structures(con, structures, s, client, now=now, resend_all=resend_all)
    finally:
        client.close()


def test_accepts_street_level_answers_and_says_why_others_are_not_kept(con, httpserver):
    httpserver.expect_request("/geocodage/search/csv/", method="POST").respond_with_handler(
        ban_handler())
    accepted, stats = run(con, settings(httpserver))
    assert set(accepted) == {"s1", "s2"}
    assert accepted["s1"][2:] == ("housenumber", 0.93, "07019")  # with the citycode
    assert stats.addresses == 5 and stats.requests == 1 and stats.sent == 5
    assert stats.refused == {"status": 1, "type": 1, "score": 1}


def test_rerun_sends_nothing_and_failures_are_asked_again_after_the_delay(con, httpserver):
    httpserver.expect_request("/geocodage/search/csv/").respond_with_handler(ban_handler())
    s = settings(httpserver, retry_failed_after_days=7)
    run(con, s)
    _, again = run(con, s)
    assert (again.requests, again.sent, again.cache_hits) == (0, 0, 5)
    _, later = run(con, s, now=dt.datetime.now() + dt.timedelta(days=8))
    assert later.sent == 3  # not-found, municipality and low score; the two good ones stay
    _, everything = run(con, s, resend_all=True)
    assert everything.sent == 5


def test_batches_respect_the_configured_size(con, httpserver):
    sizes = []
    httpserver.expect_request("/geocodage/search/csv/").respond_with_handler(
        ban_handler(log=sizes))
    _, stats = run(con, settings(httpserver, batch_size=2))
    assert sizes == [2, 2, 1] and stats.requests == 3


@pytest.mark.parametrize(
    "variant", [{"reorder": True}, {"bom": True}, {"addok": True}],
    ids=["reordered-header", "bom", "addok-without-status"],
)
def test_answer_variants_are_read_by_name(con, httpserver, variant):
    httpserver.expect_request("/geocodage/search/csv/").respond_with_handler(
        ban_handler(**variant))
    accepted, _ = run(con, settings(httpserver))
    assert set(accepted) == {"s1", "s2"}


def test_batches_are_sent_two_at_a_time_and_stored_as_if_one_by_one(con):
    """The BAN takes seconds to answer a batch: two are in flight at once, and what is
    stored is what sending them one by one stores."""
    from pytest_httpserver import HTTPServer

    answer, lock, busy = ban_handler(), threading.Lock(), {"now": 0, "most": 0}

    def slow(request):
        with lock:
            busy["now"] += 1
            busy["most"] = max(busy["most"], busy["now"])
        time.sleep(0.2)  # long enough for the next batch to arrive meanwhile
        with lock:
            busy["now"] -= 1
        return answer(request)

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.expect_request("/geocodage/search/csv/").respond_with_handler(slow)
    server.start()
    try:
        s = settings(server, batch_size=1)
        accepted, stats = run(con, s)
        cached = con.execute("SELECT * FROM core.geocodes ORDER BY ALL").fetchall()
        one_by_one = duckdb.connect()
        apply_schema(one_by_one)
        alone, _ = run(one_by_one, s.model_copy(update={"batches_in_flight": 1}))
        assert busy["most"] == 2
        assert stats.requests == 5 and stats.sent == 5 and stats.error is None
        assert accepted == alone and set(accepted) == {"s1", "s2"}
        assert len(cached) == 5 and [r[:-1] for r in cached] == [
            r[:-1] for r in one_by_one.execute(
                "SELECT * FROM core.geocodes ORDER BY ALL").fetchall()]  # but the date
    finally:
        server.stop()


class Batches:
    """A geocoder that fails on one batch and notes what it was sent."""

    def __init__(self, failing: str):
        self.failing, self.sent = failing, []

    def search_csv(self, batch):
        self.sent.append(batch)
        if batch == self.failing:
            raise GeocodeError("geocoder: HTTP 500")
        return {batch: "answer"}


@pytest.mark.parametrize("in_flight, sent, answered", [
    (1, ["a", "b"], ["a"]),  # one at a time: nothing after the failure
    (2, ["a", "b", "c"], ["a", "c"]),  # c was sent when a came back: it is still read
    (3, ["a", "b", "c", "d"], ["a", "c", "d"]),
], ids=["one-at-a-time", "two-in-flight", "three-in-flight"])
def test_after_a_failed_batch_nothing_more_is_sent_and_batches_in_flight_are_kept(
        in_flight, sent, answered):
    client = Batches(failing="b")
    out = list(_answers(client, ["a", "b", "c", "d", "e"], in_flight))
    assert sorted(client.sent) == sent
    assert [b for b, a in out if not isinstance(a, GeocodeError)] == answered
    assert [b for b, a in out if isinstance(a, GeocodeError)] == ["b"]


def test_429_with_retry_after_then_503_then_success(con, httpserver):
    expect = httpserver.expect_ordered_request
    expect("/geocodage/search/csv/").respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": "1"}))
    expect("/geocodage/search/csv/").respond_with_data("overloaded", status=503)
    expect("/geocodage/search/csv/").respond_with_handler(ban_handler())
    t0 = time.perf_counter()
    accepted, stats = run(con, settings(httpserver))
    assert time.perf_counter() - t0 >= 0.9
    assert set(accepted) == {"s1", "s2"} and stats.error is None


def test_a_geocoder_down_keeps_cached_answers_and_reports_the_error(con, httpserver):
    httpserver.expect_ordered_request("/geocodage/search/csv/").respond_with_handler(
        ban_handler())
    s = settings(httpserver)
    run(con, s, STRUCTURES[:2])
    httpserver.expect_request("/geocodage/search/csv/").respond_with_data("down", status=500)
    accepted, stats = run(con, s, STRUCTURES)
    assert "HTTP 500" in stats.error
    assert set(accepted) == {"s1", "s2"}  # from the cache


def test_answers_are_cached_by_groups_and_those_before_a_failure_are_all_kept(
        con, httpserver, monkeypatch):
    # written two addresses at a time: the third answer, alone in its group when the
    # fourth batch fails, is written too
    monkeypatch.setattr("flows.geocoder.STORE_EVERY", 2)
    for _ in range(3):
        httpserver.expect_ordered_request("/geocodage/search/csv/").respond_with_handler(
            ban_handler())
    httpserver.expect_ordered_request("/geocodage/search/csv/").respond_with_data(
        "down", status=500)
    _, stats = run(con, GeocoderSettings(base_url=httpserver.url_for("/geocodage"), retries=0,
                                         rate_per_second=50, batch_size=1,
                                         batches_in_flight=1))
    assert stats.sent == 3 and "HTTP 500" in stats.error
    stored = con.execute("SELECT count(*), count(*) FILTER (WHERE status = 'ok') "
                         "FROM core.geocodes").fetchone()
    assert stored == (3, 3)


def test_cache_rows_no_longer_referenced_are_pruned(con, httpserver):
    httpserver.expect_request("/geocodage/search/csv/").respond_with_handler(ban_handler())
    s = settings(httpserver)
    run(con, s)
    _, stats = run(con, s, STRUCTURES[:2])
    assert stats.pruned == 3
    assert con.execute("SELECT count(*) FROM core.geocodes").fetchone()[0] == 2


def test_replay_answers_from_a_saved_file(con, tmp_path):
    saved = tmp_path / "answers.csv"
    saved.write_text("adresse,code_postal,commune,code_insee,latitude,longitude,result_score,"
                     "result_type,result_status\n"
                     "3 rue Neuve,07200,Aubenas,07019,44.62,4.39,0.95,housenumber,ok\n")
    s = GeocoderSettings(replay=saved)
    accepted, stats = geocode_structures(con, STRUCTURES, s, ReplayClient(saved))
    assert set(accepted) == {"s1"} and stats.requests == 1


def test_the_geocode_step_keeps_its_queries_for_the_next_run(tmp_path, httpserver,
                                                             monkeypatch):
    """The second run reads each address's query from the memo and gives the same answers;
    a memo made by other code is left unread."""
    import pandas as pd

    from flows import consolidation
    from transforms import geocoding
    from warehouse.memos import query_memo_path

    httpserver.expect_request("/geocodage/search/csv/").respond_with_handler(ban_handler())
    frame = pd.DataFrame([{**r, "complement_adresse": None} for r in STRUCTURES], dtype=object)
    s = settings(httpserver)
    first = consolidation.geocode.fn(tmp_path, s, frame, UA)
    assert query_memo_path(tmp_path).exists()
    made = []
    real = geocoding.make_query
    monkeypatch.setattr(geocoding, "make_query", lambda r: made.append(r) or real(r))
    second = consolidation.geocode.fn(tmp_path, s, frame, UA)
    assert second.accepted == first.accepted and second.stats.sent == 0
    assert made == []  # every query read from the memo
    monkeypatch.setattr(consolidation, "GEOCODING_CODE", "other code")
    third = consolidation.geocode.fn(tmp_path, s, frame, UA)
    assert third.accepted == first.accepted and len(made) == len(STRUCTURES)


class Counted:
    """The structures, noting how many were read when each batch was sent."""

    def __init__(self, structures):
        self.structures, self.read, self.read_at_send = structures, 0, []

    def __iter__(self):
        for s in self.structures:
            self.read += 1
            yield s


def test_the_first_batch_goes_out_before_every_query_is_made(con, httpserver, monkeypatch):
    """The geocoder answers the first batches while the next queries are made."""
    monkeypatch.setattr("flows.geocoder.QUERY_CHUNK", 2)
    httpserver.expect_request("/geocodage/search/csv/").respond_with_handler(ban_handler())
    rows = Counted(STRUCTURES)
    s = settings(httpserver, batch_size=2, batches_in_flight=1)
    client = BanClient(s, UA)
    real = client.search_csv
    client.search_csv = lambda batch: (rows.read_at_send.append(rows.read), real(batch))[1]
    seen = []
    try:
        accepted, stats = geocode_structures(con, rows, s, client, total=len(STRUCTURES),
                                             progress=lambda done, total: seen.append(
                                                 (done, total)))
    finally:
        client.close()
    assert rows.read_at_send[0] < len(STRUCTURES)  # sent with 2 of 6 structures read
    assert set(accepted) == {"s1", "s2"} and stats.sent == 5 and stats.requests == 3
    assert seen == sorted(seen) and seen[-1] == (6, 6)  # the bar ends full


def test_after_a_failure_the_later_structures_still_get_their_cached_answers(
        con, httpserver, monkeypatch):
    """Queries made a chunk at a time: a batch failing early leaves the structures of the
    chunks not yet made, and they are still made and read from the cache."""
    monkeypatch.setattr("flows.geocoder.QUERY_CHUNK", 1)
    httpserver.expect_ordered_request("/geocodage/search/csv/").respond_with_handler(
        ban_handler())
    s = settings(httpserver, batch_size=1, batches_in_flight=1)
    run(con, s, [STRUCTURES[1]])  # s2's answer is cached
    httpserver.expect_request("/geocodage/search/csv/").respond_with_data("down", status=500)
    accepted, stats = run(con, s, [STRUCTURES[0], STRUCTURES[1]])  # s1 fails first
    assert "HTTP 500" in stats.error and stats.sent == 0
    assert set(accepted) == {"s2"} and stats.cache_hits == 1 and stats.addresses == 2
