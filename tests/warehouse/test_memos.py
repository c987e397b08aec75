"""The clustering memo on disk: a base file, and a small delta for a day's changes."""

import pickle

import pytest

from warehouse import memos
from warehouse.memos import cluster_memo_path, load_layered, save_layered


def _entries(n, tag="v"):
    return {f"d{i}": f"{tag}{i}" for i in range(n)}


def test_a_small_change_writes_a_delta_and_leaves_the_base_alone(tmp_path):
    path = cluster_memo_path(tmp_path)
    save_layered(path, "f", _entries(100), load_layered(path, "f"))
    base = path.read_bytes()
    loaded = load_layered(path, "f")
    kept = {**{k: v for k, v in loaded.entries.items() if k != "d0"}, "new": "n"}
    save_layered(path, "f", kept, loaded)
    assert path.read_bytes() == base  # the large file is not written again
    again = load_layered(path, "f")
    assert all(again.entries[k] == v for k, v in kept.items())
    # the next change replaces the delta (the earlier one's entries are kept in it)
    kept2 = {**kept, "newer": "m"}
    save_layered(path, "f", kept2, again)
    assert {k: v for k, v in load_layered(path, "f").entries.items() if k in kept2} == kept2


def test_a_large_change_rewrites_the_base_without_stale_entries(tmp_path):
    path = cluster_memo_path(tmp_path)
    save_layered(path, "f", _entries(100), load_layered(path, "f"))
    kept = _entries(100, tag="w") | {f"x{i}": i for i in range(40)}
    kept = {k: v for k, v in kept.items() if not k.startswith("d")}  # every old one gone
    save_layered(path, "f", kept, load_layered(path, "f"))
    assert load_layered(path, "f").entries == kept


def test_another_fingerprint_or_a_delta_of_another_base_is_not_read(tmp_path):
    path = cluster_memo_path(tmp_path)
    save_layered(path, "f", _entries(100), load_layered(path, "f"))
    loaded = load_layered(path, "f")
    save_layered(path, "f", {**loaded.entries, "new": "n"}, loaded)  # a delta
    assert load_layered(path, "g").entries == {}
    save_layered(path, "f", _entries(10), load_layered(path, "g"))  # a new base
    assert load_layered(path, "f").entries == _entries(10)  # the old delta ignored
    path.write_bytes(b"damaged")
    assert load_layered(path, "f").entries == {}


def test_a_memo_of_many_chunks_reads_back_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(memos, "CHUNK", 7)  # 100 entries: 15 pickles after the header
    path = cluster_memo_path(tmp_path)
    entries = {f"d{i}": ([f"cluster{i}"], {frozenset((i, i + 1)): "why"}) for i in range(100)}
    save_layered(path, "f", entries, load_layered(path, "f"))
    assert load_layered(path, "f").entries == entries


@pytest.mark.parametrize("damage", ["cut", "extra"])
def test_a_memo_cut_short_or_followed_by_more_is_not_read(tmp_path, monkeypatch, damage):
    monkeypatch.setattr(memos, "CHUNK", 7)
    path = cluster_memo_path(tmp_path)
    save_layered(path, "f", _entries(100), load_layered(path, "f"))
    whole = path.read_bytes()
    path.write_bytes(whole[:len(whole) // 2] if damage == "cut"
                     else whole + pickle.dumps([("d0", "other")]))
    assert load_layered(path, "f").entries == {}
