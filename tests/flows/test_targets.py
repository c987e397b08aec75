"""Publication targets against a local S3 server (moto in server mode, real HTTP): releases
under their own prefix, current.json switched last, headers, the drop guard, failures."""

import gzip
import hashlib
import json
import threading

import boto3
import pytest

from flows.publish import PublishRefused, publish_release
from flows.targets import open_store, publish_to_targets, read_pointer
from tests.helpers import BASE, load, structure
from transforms.spec import Publication

REGION = "eu-west-3"


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_server, monkeypatch, request):
    """A fresh bucket on the local server, and the environment a deployment would set."""
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                 "AWS_REGION": REGION, "AWS_ENDPOINT_URL": s3_server}.items():
        monkeypatch.setenv(k, v)
    name = "maps-" + hashlib.sha1(request.node.name.encode()).hexdigest()[:10]
    client = boto3.client("s3", endpoint_url=s3_server, region_name=REGION)
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return client, name


def _settings(name: str, **kw) -> Publication:
    return Publication(targets=[f"s3://{name}/siae"], max_drop_share=0.10, **kw)


def _get(client, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def _complete(client, bucket: str) -> str:
    """The release current.json points to, after checking every file it names."""
    pointer = json.loads(_get(client, bucket, "siae/current.json"))
    for name, meta in pointer["files"].items():
        data = _get(client, bucket, f"siae/{pointer['base']}{name}")
        assert hashlib.sha256(data).hexdigest() == meta["sha256"], name
    return pointer["release"]


def test_two_releases_then_a_refused_one(tmp_path, bucket):
    client, name = bucket
    settings = _settings(name)
    load(tmp_path, BASE)
    first = publish_release(tmp_path, settings)
    (r,) = publish_to_targets(tmp_path, settings)
    assert (r.status, r.release) == ("uploaded", first["release"])
    assert _complete(client, name) == first["release"]
    load(tmp_path, [*BASE[:-1], structure(22, nom="Renamed")])
    second = publish_release(tmp_path, settings)
    (r,) = publish_to_targets(tmp_path, settings)
    assert (r.status, r.release) == ("uploaded", second["release"])
    assert _complete(client, name) == second["release"]
    # the previous release stays under its prefix (keep), for readers still on it
    assert client.list_objects_v2(Bucket=name, Prefix=f"siae/releases/{first['release']}/")[
        "KeyCount"] > 0
    # nothing changed: nothing uploaded
    assert publish_to_targets(tmp_path, settings)[0].status == "unchanged"
    # a third release that loses a third of the structures: refused locally…
    load(tmp_path, BASE[:15])
    with pytest.raises(PublishRefused):
        publish_release(tmp_path, settings)
    assert publish_to_targets(tmp_path, settings)[0].release == second["release"]
    # …and forced through locally only, the target's own guard still refuses it
    publish_release(tmp_path, settings, force=True)
    (r,) = publish_to_targets(tmp_path, settings)
    assert r.status == "refused" and r.release == second["release"]
    assert "15 structures against 22" in r.message
    assert _complete(client, name) == second["release"]
    (r,) = publish_to_targets(tmp_path, settings, force=True)
    assert r.status == "uploaded" and _complete(client, name) == r.release


def test_current_json_always_points_to_a_complete_release(tmp_path, bucket, monkeypatch):
    import obstore

    client, name = bucket
    settings = _settings(name, keep=1)
    load(tmp_path, BASE)
    publish_release(tmp_path, settings)
    publish_to_targets(tmp_path, settings)
    seen, stop, errors = [], threading.Event(), []

    def reader():
        while not stop.is_set():
            try:
                seen.append(_complete(client, name))
            except Exception as exc:  # noqa: BLE001 — any failure is what the test looks for
                errors.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(3):
            load(tmp_path, [*BASE[:-1], structure(22, nom=f"Renamed {n}")])
            publish_release(tmp_path, settings)
            assert publish_to_targets(tmp_path, settings)[0].status == "uploaded"
        # an upload that breaks halfway: the pointer stays on the last complete release
        real_put, calls = obstore.put, []

        def failing_put(store, key, data, **kw):
            calls.append(key)
            if len(calls) == 5:
                raise ConnectionError("connection reset by peer")
            return real_put(store, key, data, **kw)

        before = read_pointer(open_store(f"s3://{name}/siae"))["release"]
        load(tmp_path, [*BASE[:-1], structure(22, nom="Broken upload")])
        publish_release(tmp_path, settings)
        monkeypatch.setattr(obstore, "put", failing_put)
        (r,) = publish_to_targets(tmp_path, settings)
        monkeypatch.setattr(obstore, "put", real_put)
        assert r.status == "failed" and "connection reset" in r.message
        assert r.release == before and _complete(client, name) == before
        # the next publication step catches up
        (r,) = publish_to_targets(tmp_path, settings)
        assert r.status == "uploaded" and _complete(client, name) == r.release
    finally:
        stop.set()
        thread.join()
    assert errors == [] and len(seen) > 5


def test_objects_carry_their_type_encoding_and_cache_headers(tmp_path, bucket):
    client, name = bucket
    settings = _settings(name, pointer_max_age=30)
    load(tmp_path, BASE)
    release = publish_release(tmp_path, settings)["release"]
    publish_to_targets(tmp_path, settings)
    base = f"siae/releases/{release}/"
    expected = {"siae.geojson": "application/geo+json", "siae.csv": "text/csv; charset=utf-8",
                "siae.parquet": "application/vnd.apache.parquet",
                "siae.gpkg": "application/geopackage+sqlite3",
                "datapackage.json": "application/json",
                "regions/84.geojson": "application/geo+json"}
    for key, ctype in expected.items():
        head = client.head_object(Bucket=name, Key=base + key)
        assert head["ContentType"] == ctype, key
        assert head["CacheControl"] == "public, max-age=31536000, immutable"
        assert "ContentEncoding" not in head
    gz = client.get_object(Bucket=name, Key=base + "siae.geojson.gz")
    assert gz["ContentEncoding"] == "gzip" and gz["ContentType"] == "application/geo+json"
    assert gzip.decompress(gz["Body"].read()) == (tmp_path / "publish" /
                                                   "siae.geojson").read_bytes()
    pointer = client.head_object(Bucket=name, Key="siae/current.json")
    assert pointer["CacheControl"] == "public, max-age=30, must-revalidate"
    assert pointer["ContentType"] == "application/json"


def test_an_unreachable_target_fails_alone_and_says_what_it_keeps(tmp_path, bucket,
                                                                  monkeypatch):
    _, name = bucket
    settings = _settings(name)
    load(tmp_path, BASE)
    publish_release(tmp_path, settings)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    (r,) = publish_to_targets(tmp_path, settings)
    assert r.status == "failed" and "keeps" in r.message
    assert (tmp_path / "publish" / "siae.geojson").exists()  # the local release is untouched


def test_a_sync_uploads_and_a_lost_target_fails_the_run_but_not_the_publication(
        demo, tmp_path, bucket, monkeypatch):
    from flows.outcome import consolidation_state
    from flows.sync import sync_direct

    client, name = bucket
    toml = demo / "sources.toml"
    toml.write_text(toml.read_text(encoding="utf-8")
                    + f'\n[publication]\ntargets = ["s3://{name}/aura"]\n', encoding="utf-8")
    home = tmp_path / "wh"
    first = sync_direct(str(toml), home=str(home))
    (step,) = [s for s in first.steps if s.step == "upload"]
    assert step.status == "ok" and first.exit_code == 0
    pointer = json.loads(_get(client, name, "aura/current.json"))
    assert pointer["release"] == (home / "publish").resolve().name
    assert pointer["features"] == first.features
    # the bucket's endpoint goes away: the local publication is made, the run says the target
    # did not get it, exits 2 and ends Failed in Prefect
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    second = sync_direct(str(toml), home=str(home), force_publish=True)
    assert second.published and second.failed_targets == [f"s3://{name}/aura"]
    assert second.exit_code == 2
    state = consolidation_state(second)
    assert state.is_failed() and "published locally, not to every target" in state.message
